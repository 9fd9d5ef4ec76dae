"""Harness for cvmm integration tests: a real cvmmd on a temp config, the
real cvmm CLI, real QEMU guests (TCG). Stdlib only.

Environment (set by ctest, see tests/integration/CMakeLists.txt):
  CVMM_BUILD_DIR   the build tree (core/cvmmd, core/cvmm, plugins/, tests/plugins/)
  CVMM_IMAGE_PATH  where image 'tiny' is (scripts/build-test-guest.sh)
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BUILD = os.environ.get("CVMM_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
IMAGES = os.environ.get("CVMM_IMAGE_PATH", "/var/lib/cvmm/images")
CVMMD = os.path.join(BUILD, "core", "cvmmd")
CVMM = os.path.join(BUILD, "core", "cvmm")
READY = "cvmm-tiny: ready"
BOOT_TIMEOUT = float(os.environ.get("CVMM_BOOT_TIMEOUT", "90"))


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


def wait_for(cond, timeout, what, interval=0.2):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def qemu_pids_for(vm_id):
    """QEMU processes whose command line names this VM's UUID."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and b"qemu-system" in cmd[0] and vm_id.encode() in cmd and pid_alive(int(p)):
            pids.append(int(p))
    return pids


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def http_get(port, host="127.0.0.1", timeout=3):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


class Daemon:
    """One cvmmd with its own config, sockets and data under a temp dir."""

    def __init__(self, plugins=("backend-qemu", "net-user"), extra="", plugin_sections="",
                 auto_restart="enabled = true; interval = 5; max_retries = 3; "
                              "initial_backoff = 1.0; max_backoff = 4.0; reset_window = 300.0;",
                 auth_tokens=None):
        self.dir = tempfile.mkdtemp(prefix="cvmm-it-")
        self.sock = os.path.join(self.dir, "run", "cvmm.sock")
        self.run = os.path.join(self.dir, "run")
        self.data = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "cvmm.conf")
        self.log = os.path.join(self.dir, "cvmmd.log")
        self.token = None
        auth = "auth = { enabled = false; };"
        if auth_tokens:
            self.token = auth_tokens[0]
            auth = "auth = { enabled = true; tokens = [ %s ]; };" % ", ".join(
                '"%s"' % t for t in auth_tokens)
        plugin_dirs = [os.path.join(BUILD, "plugins"), os.path.join(BUILD, "tests", "plugins")]
        # Test plugins live in their own dir; link them next to the real ones.
        self.plugin_dir = os.path.join(self.dir, "plugins")
        os.makedirs(self.plugin_dir)
        for d in plugin_dirs:
            if os.path.isdir(d):
                for f in os.listdir(d):
                    if f.endswith(".so"):
                        os.symlink(os.path.join(d, f), os.path.join(self.plugin_dir, f))
        with open(self.conf, "w") as f:
            f.write("""
address = "unix:%(sock)s";
run_path = "%(run)s";
data_dir = "%(data)s";
plugin_dir = "%(pdir)s";
log_level = "debug";
workers = 4;
image = { path = "%(images)s"; };
cvm = {
  max_allocable_vcpu = 16; max_allocable_memory_in_mb = 16384;
  cid_start = 1000; cid_pool_size = 100;
  networking = { mode = "user"; };
  port_mapping = { enabled = true; address = "127.0.0.1";
    range = ( { protocol = "tcp"; from = 20000; to = 40000; },
              { protocol = "udp"; from = 20000; to = 40000; } ); };
  auto_restart = { %(ar)s };
};
%(auth)s
%(extra)s
plugins = [ %(plugins)s ];
plugin = { backend-qemu = { accel = "tcg"; }; %(sections)s };
""" % dict(sock=self.sock, run=self.run, data=self.data, pdir=self.plugin_dir, images=IMAGES,
                ar=auto_restart, auth=auth, extra=extra, sections=plugin_sections,
                plugins=", ".join('"%s"' % p for p in plugins)))
        self.proc = None

    # -- process --
    def start(self, timeout=30):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen([CVMMD, "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.proc.poll() is not None or self._answers(), timeout,
                 "cvmmd to answer on " + self.sock)
        if self.proc.poll() is not None:
            raise AssertionError("cvmmd exited with %d:\n%s" % (self.proc.returncode,
                                                                self.read_log()[-3000:]))
        return self

    def _answers(self):
        try:
            return self.api("GET", "/v1/host")[0] == 200
        except OSError:
            return False

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.logf.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.logf.close()

    def read_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def cleanup(self):
        """Stop the daemon, then kill whatever VM it left (a test failed)."""
        self.stop()
        leftovers = []
        vms_dir = os.path.join(self.data, "vms")
        if os.path.isdir(vms_dir):
            for vm_id in os.listdir(vms_dir):
                for pid in qemu_pids_for(vm_id):
                    leftovers.append(pid)
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)
        return leftovers

    # -- API and CLI --
    def api(self, method, path, body=None, token=None, raw=None):
        c = UnixHTTPConnection(self.sock)
        headers = {}
        tok = token if token is not None else self.token
        if tok:
            headers["Authorization"] = "Bearer " + tok
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            text = r.read().decode(errors="replace")
        finally:
            c.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    def cli(self, *args, check=True, timeout=60):
        env = dict(os.environ, CVMM_SOCKET=self.sock)
        if self.token:
            env["CVMM_TOKEN"] = self.token
        p = subprocess.run([CVMM] + list(args), env=env, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("cvmm %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
        return p

    def vm(self, name):
        st, o = self.api("GET", "/v1/vms/" + name)
        return o if st == 200 else None

    def wait_state(self, name, states, timeout=60):
        if isinstance(states, str):
            states = (states,)
        return wait_for(lambda: (self.vm(name) or {}).get("state") in states and self.vm(name),
                        timeout, "VM %s to be %s" % (name, "/".join(states)))

    def logs(self, name):
        return self.cli("logs", name).stdout

    def wait_ready(self, name, timeout=BOOT_TIMEOUT):
        return wait_for(lambda: READY in self.logs(name), timeout,
                        "VM %s to print '%s'" % (name, READY), interval=0.5)

    def create(self, name, **kw):
        body = {"name": name, "image": "tiny"}
        body.update(kw)
        st, o = self.api("POST", "/v1/vms", body)
        if st != 201:
            raise AssertionError("create %s: %d %s" % (name, st, o))
        return o


class DaemonTest(unittest.TestCase):
    """Starts one daemon per test; tearDown fails the test if a VM leaked."""
    daemon_args = {}

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s: run scripts/build-test-guest.sh" % IMAGES)
        self.d = Daemon(**self.daemon_args).start()

    def tearDown(self):
        log = self.d.read_log()
        leftovers = self.d.cleanup()
        if leftovers:
            self.fail("QEMU processes left behind: %s\n%s" % (leftovers, log[-2000:]))
