"""Harness for cvmm integration tests: a real cvmmd on a temp config, the
real cvmm CLI, real QEMU guests (TCG). Stdlib only.

Environment (set by ctest, see tests/integration/CMakeLists.txt):
  CVMM_BUILD_DIR   the build tree (core/cvmmd, core/cvmm, plugins/, tests/plugins/)
  CVMM_IMAGE_PATH  where image 'tiny' is (scripts/build-test-guest.sh)
  CVMM_BACKENDS    backends the per-backend suites run on (default "qemu,libvirt")

The same suites run against a sanitizer build (CVMM_BUILD_DIR=build-asan or
build-tsan): SANITIZER says which one cvmmd was built with, Daemon gives it
the environment it needs (daemon_env), and Daemon.cleanup() fails the test
when the daemon's log (its stderr) holds a sanitizer report.

The libvirt backend's runs share one private libvirtd + virtlogd per test
process (tests/integration/libvirtd.py), started on first use.
"""
import atexit
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

import openapi_check

BUILD = os.environ.get("CVMM_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
IMAGES = os.environ.get("CVMM_IMAGE_PATH", "/var/lib/cvmm/images")
CVMMD = os.path.join(BUILD, "core", "cvmmd")
CVMM = os.path.join(BUILD, "core", "cvmm")
READY = "cvmm-tiny: ready"
BOOT_TIMEOUT = float(os.environ.get("CVMM_BOOT_TIMEOUT", "90"))
BACKENDS = tuple(b for b in os.environ.get("CVMM_BACKENDS", "qemu,libvirt").split(",") if b)


def _sanitizer():
    """"asan" (ASan+UBSan), "tsan" or None: what cvmmd was built with, read
    from the runtime's entry point linked into the binary."""
    try:
        with open(CVMMD, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"__asan_init" in data:
        return "asan"
    if b"__tsan_init" in data:
        return "tsan"
    return None


SANITIZER = _sanitizer()
# What a sanitizer prints when it finds something (UBSan: "file:line:col:
# runtime error: ..."); any of these in a daemon's log fails the test.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer", "ThreadSanitizer:")


def sanitizer_reports(text):
    """The lines of a daemon's log that are sanitizer reports."""
    return [l for l in text.splitlines() if any(m in l for m in SANITIZER_MARKS)]


def sanitizer_report_text(text, limit=12000):
    """The first whole sanitizer report of a log (from its WARNING/ERROR line
    to its SUMMARY line), for a failure message: the stacks say where."""
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if any(m in l for m in SANITIZER_MARKS):
            out = []
            for m in lines[i:]:
                out.append(m)
                if m.startswith("SUMMARY:"):
                    break
            return "\n".join(out)[:limit]
    return ""


def _libtirpc():
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"):
        p = os.path.join(d, "libtirpc.so.3")
        if os.path.exists(p):
            return p
    return None


def daemon_env(plugins=()):
    """The environment of a cvmmd (and so of what it runs).

    ASan build + backend-libvirt: the sanitizer runtime intercepts the sunrpc
    XDR functions (xdrmem_create, xdr_int, ...: sanitizer_common's XDR
    interceptors) and looks the real ones up once, when it starts, with
    dlsym(RTLD_NEXT). glibc 2.32+ no longer exports them (compat symbols
    only, e.g. xdrmem_create@GLIBC_2.2.5 without a default version, which
    dlsym does not return) and libtirpc, which does, only arrives later,
    with the dlopen of backend-libvirt.so -> libvirt.so. The interceptors
    stay bound to NULL, libvirt's calls resolve to them (the ASan runtime
    comes before libtirpc in symbol lookup) and the first RPC to libvirtd
    jumps to address 0 (SEGV in virNetMessageEncodeHeader). Preloading
    libtirpc puts it in the initial link map ahead of the runtime, so
    libvirt's XDR calls go straight to libtirpc. verify_asan_link_order=0:
    the runtime otherwise refuses to run when it is not first in that map,
    which matters only for the functions libtirpc defines (XDR, not malloc).
    (Preloading the runtime first as well would also be correct, but the
    preload reaches every child: QEMU, passt and dnsmasq would then run
    under ASan's allocator.)
    Leak checking stays on; reports go to stderr, which is the log."""
    env = dict(os.environ)
    if SANITIZER == "asan":
        opts = "" if "ASAN_OPTIONS" in env else "detect_leaks=1:abort_on_error=1:print_summary=1"
        tirpc = _libtirpc()
        if "backend-libvirt" in plugins and tirpc:
            env["LD_PRELOAD"] = " ".join(p for p in (env.get("LD_PRELOAD"), tirpc) if p)
            opts += ":verify_asan_link_order=0" if opts else "verify_asan_link_order=0"
        env["ASAN_OPTIONS"] = ":".join(o for o in (env.get("ASAN_OPTIONS"), opts) if o)
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    elif SANITIZER == "tsan":
        # Report every race (not only the first) and keep running: the
        # test reads them all from the log.
        env.setdefault("TSAN_OPTIONS", "halt_on_error=0:second_deadlock_stack=1")
    return env


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError:
            s.close()  # the daemon is not up yet: do not leak the socket
            raise
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
                 auth_tokens=None, backend="qemu", libvirt_uri=None, libvirt_options="",
                 image_path=IMAGES):
        """backend: cvm.backend. "libvirt" adds backend-libvirt to the plugins,
        with plugin.backend-libvirt.uri = libvirt_uri plus libvirt_options.
        image_path: image.path (default: where image 'tiny' was built)."""
        self.dir = tempfile.mkdtemp(prefix="cvmm-it-")
        self.backend = backend
        cvm_backend = ""
        if backend == "libvirt" or libvirt_uri:
            if "backend-libvirt" not in plugins:
                plugins = tuple(plugins) + ("backend-libvirt",)
            plugin_sections += ' backend-libvirt = { uri = "%s"; %s };' % (libvirt_uri,
                                                                            libvirt_options)
        if backend != "qemu":
            cvm_backend = 'backend = "%s";' % backend
        self.sock = os.path.join(self.dir, "run", "cvmm.sock")
        self.run = os.path.join(self.dir, "run")
        self.data = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "cvmm.conf")
        self.log = os.path.join(self.dir, "cvmmd.log")
        self.token = None
        self.openapi_checked = 0  # answers checked against doc/openapi.json
        self.openapi_violations = []
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
  %(cvm_backend)s
  max_allocable_vcpu = 16; max_allocable_memory_in_mb = 16384;
  cid_start = 1000; cid_pool_size = 100;
  %(networking)s
  port_mapping = { enabled = true; address = "127.0.0.1";
    range = ( { protocol = "tcp"; from = 20000; to = 40000; },
              { protocol = "udp"; from = 20000; to = 40000; } ); };
  auto_restart = { %(ar)s };
};
%(auth)s
%(extra)s
plugins = [ %(plugins)s ];
plugin = { backend-qemu = { accel = "tcg"; }; %(sections)s };
""" % dict(sock=self.sock, run=self.run, data=self.data, pdir=self.plugin_dir, images=image_path,
                ar=auto_restart, auth=auth, extra=extra, sections=plugin_sections,
                cvm_backend=cvm_backend,
                # A default mode no loaded plugin provides is refused.
                networking='networking = { mode = "user"; };' if "net-user" in plugins else "",
                plugins=", ".join('"%s"' % p for p in plugins)))
        self.proc = None
        self.plugins = tuple(plugins)

    # -- process --
    def start(self, timeout=30):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen([CVMMD, "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env=daemon_env(self.plugins))
        wait_for(lambda: self.proc.poll() is not None or self._answers(), timeout,
                 "cvmmd to answer on " + self.sock)
        if self.proc.poll() is not None:
            raise AssertionError("cvmmd exited with %d:\n%s" % (self.proc.returncode,
                                                                self.read_log()[-3000:]))
        return self

    def _answers(self):
        try:
            return self.api("GET", "/v1/host", timeout=5)[0] == 200
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
        """Stop the daemon, then kill whatever VM it left (a test failed).
        Returns the QEMUs it had to kill; raises AssertionError, once all is
        cleaned, when the daemon's log holds a sanitizer report."""
        self.stop()
        leftovers = []
        vms_dir = os.path.join(self.data, "vms")
        if os.path.isdir(vms_dir):
            for vm_id in os.listdir(vms_dir):
                for pid in qemu_pids_for(vm_id):
                    leftovers.append(pid)
                    os.kill(pid, signal.SIGKILL)
        openapi = self.openapi_report()
        reports = sanitizer_reports(self.read_log()) if os.path.exists(self.log) else []
        log_tail = self.read_log()[-6000:] if reports else ""
        keep = os.environ.get("CVMM_KEEP_LOG")
        if keep and os.path.exists(self.log):
            shutil.copy(self.log, keep)  # to look at after a failure
        shutil.rmtree(self.dir, ignore_errors=True)
        if reports:
            raise AssertionError("cvmmd (%s build) reported:\n%s\n--- log tail ---\n%s" % (
                SANITIZER, "\n".join(reports[:20]), log_tail))
        if openapi:
            raise AssertionError(openapi)
        return leftovers

    def openapi_report(self):
        """What the answers checked against doc/openapi.json did not match
        (None: all did); CVMM_OPENAPI_STATS names a file that gets a line
        of counts per daemon."""
        stats = os.environ.get("CVMM_OPENAPI_STATS")
        if stats and self.openapi_checked:
            with open(stats, "a") as f:
                f.write("%d %d\n" % (self.openapi_checked, len(self.openapi_violations)))
        v, self.openapi_violations = self.openapi_violations, []
        if not v:
            return None
        seen = list(dict.fromkeys(v))
        return ("%d answer(s) of cvmmd do not match doc/openapi.json (fix the daemon or the "
                "description):\n  %s" % (len(v), "\n  ".join(seen[:30])))

    # -- API and CLI --
    def connection(self, timeout):
        """An HTTP connection to the daemon's API (a daemon configured to
        listen elsewhere overrides this)."""
        return UnixHTTPConnection(self.sock, timeout=timeout)

    def api(self, method, path, body=None, token=None, raw=None, timeout=30):
        """(status, JSON or text); the answer's Content-Type in last_ctype."""
        c = self.connection(timeout)
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
            self.last_ctype = r.getheader("Content-Type", "")
        finally:
            c.close()
        try:
            out = json.loads(text)
        except ValueError:
            out = text
        if body is None and raw is not None:
            try:
                body = json.loads(raw)
            except (ValueError, TypeError):
                pass
        self.openapi_check(method, path, r.status, r.getheader("Content-Type"), out, body)
        return r.status, out

    def openapi_check(self, method, path, status, ctype, body, request=None):
        """Checks an answer against doc/openapi.json; what does not match
        fails the test at cleanup() (openapi_check.py)."""
        if not openapi_check.enabled():
            return
        self.openapi_checked += 1
        try:
            spec = openapi_check.spec(self.plugins)
            self.openapi_violations += spec.check(method, path, status, ctype, body, request)
        except Exception as e:  # a broken description is a violation too
            self.openapi_violations.append("%s %s -> %s: checking it failed: %r" % (
                method, path, status, e))

    def refuse(self, name, status, says=(), **body):
        """POST /v1/vms of VM name (image "tiny", not started, body the rest)
        must be refused with status, the message holding each of says, and
        leave no VM of that name. Returns the message."""
        req = {"name": name, "image": "tiny", "start": False}
        req.update(body)
        st, o = self.api("POST", "/v1/vms", req)
        msg = o.get("error", {}).get("message", "") if isinstance(o, dict) else str(o)
        if st != status or any(s not in msg for s in says):
            raise AssertionError("create %s: wanted %d saying %s, got %d %s" % (name, status,
                                                                               list(says), st, o))
        if self.vm(name) is not None:
            raise AssertionError("create %s was refused (%d) but the VM exists" % (name, st))
        return msg

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


def cleanup_daemons(daemons, log_tail=3000):
    """tearDown of a test that starts daemons of its own: each cleaned up,
    even after another's failed. The problems found: QEMUs left behind
    (with the tail of that daemon's log) and sanitizer reports."""
    problems = []
    for d in daemons:
        log = d.read_log() if os.path.exists(d.log) else ""
        try:
            left = d.cleanup()
        except AssertionError as e:  # a sanitizer report
            problems.append(str(e))
            left = []
        if left:
            problems.append("QEMU left behind: %s\n%s" % (left, log[-log_tail:]))
    return problems


_libvirtd = None


def shared_libvirtd():
    """This test process's private libvirtd (started on first use, stopped at
    exit). Skips the test when libvirt's daemons or the plugin are missing."""
    global _libvirtd
    if _libvirtd is None:
        from libvirtd import Libvirtd, missing_tools
        missing = missing_tools()
        if missing:
            raise unittest.SkipTest("libvirt backend: %s missing (libvirt-daemon-system)"
                                    % ", ".join(missing))
        if not os.path.exists(os.path.join(BUILD, "plugins", "backend-libvirt.so")):
            raise unittest.SkipTest("libvirt backend: backend-libvirt.so not built (libvirt-dev)")
        _libvirtd = Libvirtd().start()
        atexit.register(_libvirtd.stop)
    return _libvirtd


def per_backend(*classes, namespace):
    """For each test class (written for backend "qemu"), adds a copy running
    on every other backend of BACKENDS to namespace: BootAndStop_libvirt, ...
    A class's own backend is dropped when it is not in BACKENDS."""
    for cls in classes:
        for b in BACKENDS:
            if b != cls.backend:
                name = "%s_%s" % (cls.__name__, b)
                namespace[name] = type(name, (cls,), {"backend": b, "__module__": cls.__module__})
        if cls.backend not in BACKENDS:
            del namespace[cls.__name__]


class DaemonTest(unittest.TestCase):
    """Starts one daemon per test; tearDown fails the test if a VM leaked.
    backend: the daemon's cvm.backend ("qemu" or "libvirt", see per_backend)."""
    daemon_args = {}
    backend = "qemu"

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root: run the tests as root (a test that cannot run fails)")
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s: run scripts/build-test-guest.sh" % IMAGES)
        args = dict(self.daemon_args)
        args.setdefault("backend", self.backend)
        self.lv = None
        if args["backend"] == "libvirt":
            self.lv = shared_libvirtd()
            args.setdefault("libvirt_uri", self.lv.uri)
        self.d = Daemon(**args)
        try:
            self.d.start()
        except BaseException:
            self.d.cleanup()  # tearDown does not run after a failed setUp
            raise

    # -- what differs between backends --
    def qemu_pid(self, name, timeout=30):
        """The pid of the running VM's QEMU: the VM's "pid" for the QEMU
        backend; for libvirt (whose QEMU is libvirtd's child) the QEMU whose
        command line carries the VM's UUID."""
        def find():
            vm = self.d.vm(name)
            if not vm or vm["state"] != "running":
                return None
            if self.backend == "qemu":
                return vm["pid"] or None
            pids = qemu_pids_for(vm["id"])
            return pids[0] if len(pids) == 1 else None
        return wait_for(find, timeout, "the QEMU of VM %s" % name)

    def end_from_outside(self, name):
        """Ends a running VM behind cvmm's back: SIGKILL to its QEMU, or for
        libvirt `virsh destroy` of its domain."""
        if self.backend == "libvirt":
            self.lv.virsh("destroy", "cvmm-" + name)
        else:
            os.kill(self.qemu_pid(name), signal.SIGKILL)

    def tearDown(self):
        log = self.d.read_log()
        leftovers = self.d.cleanup()
        if leftovers:
            self.fail("QEMU processes left behind: %s\n%s" % (leftovers, log[-2000:]))


# ---- leak checks (appended; shared by the network-mode suites) ----

def procs_mentioning(text, exe=None):
    """Live (non-zombie) processes whose command line contains text and,
    if exe is given, whose argv[0] contains exe: {pid: [arg, ...]}."""
    found = {}
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if not args or (exe and exe not in args[0]):
            continue
        if any(text in a for a in args) and pid_alive(int(p)):
            found[int(p)] = args
    return found


def files_under(root):
    """Every file and directory under root, relative, sorted ([] if absent)."""
    out = []
    for base, dirs, files in os.walk(root):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(base, n), root))
    return sorted(out)


def fd_count(pid):
    """How many file descriptors the process has open."""
    return len(os.listdir("/proc/%d/fd" % pid))


# ---- network namespaces as hosts (appended; net-host and net-overlay suites) ----

def sh(*args, check=True, timeout=60):
    """Runs a command; returns its CompletedProcess (text). check: raise on failure."""
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(map(str, args)), p.returncode,
                                                  (p.stderr or p.stdout).strip()))
    return p


class Netns:
    """A network namespace standing in for a host or a network segment.
    The name gets a per-process suffix so parallel runs cannot clash;
    close() kills what still runs in it and deletes it (idempotent)."""

    made = 0

    def __init__(self, name):
        Netns.made += 1
        self.name = "%s-%d-%d" % (name, os.getpid(), Netns.made)
        sh("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args, check=True):
        return sh("ip", "-n", self.name, *args, check=check)

    def run(self, *args, check=True, timeout=60):
        return sh("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def popen(self, args, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name] + [str(a) for a in args], **kw)

    def links(self):
        """[(name, kind, master, mtu)] of every link, sorted: ifindexes left out."""
        out = json.loads(self.ip("-j", "-d", "link", "show").stdout or "[]")
        return sorted((l["ifname"], (l.get("linkinfo") or {}).get("info_kind", ""),
                       l.get("master", ""), l.get("mtu", 0)) for l in out)

    def link(self, name):
        """`ip -j -d link show NAME` as a dict, or None if there is no such link."""
        p = self.ip("-j", "-d", "link", "show", "dev", name, check=False)
        if p.returncode != 0:
            return None
        out = json.loads(p.stdout or "[]")
        return out[0] if out else None

    def fdb(self):
        """`bridge fdb show` lines, sorted."""
        return sorted(sh("bridge", "-n", self.name, "fdb", "show").stdout.splitlines())

    def snapshot(self):
        """What a leak would change: links, bridges, FDB entries, addresses."""
        addrs = json.loads(self.ip("-j", "addr", "show").stdout or "[]")
        return {
            "links": self.links(),
            "bridges": sorted(l[0] for l in self.links() if l[1] == "bridge"),
            "fdb": self.fdb(),
            "addresses": sorted((a["ifname"], i["local"], i["prefixlen"])
                                for a in addrs for i in a.get("addr_info", [])),
        }

    def settled_snapshot(self, timeout=15):
        """snapshot() once two taken 0.5 s apart agree: a link just brought up
        still gains its IPv6 link-local address and multicast entries."""
        last = self.snapshot()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            time.sleep(0.5)
            now = self.snapshot()
            if now == last:
                return now
            last = now
        return last

    def http_get(self, host, port, timeout=3):
        """GET / from inside the namespace: (status, body), or None if it failed."""
        code = ("import http.client,sys\n"
                "c=http.client.HTTPConnection(sys.argv[1],int(sys.argv[2]),timeout=%f)\n"
                "c.request('GET','/');r=c.getresponse()\n"
                "sys.stdout.write('%%d\\n' %% r.status+r.read().decode(errors='replace'))\n"
                % timeout)
        p = self.run("python3", "-c", code, host, port, check=False, timeout=timeout + 10)
        if p.returncode != 0:
            return None
        status, _, body = p.stdout.partition("\n")
        return int(status), body

    def close(self):
        p = sh("ip", "netns", "pids", self.name, check=False)
        for pid in p.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        sh("ip", "netns", "del", self.name, check=False)


class NetnsDaemon(Daemon):
    """A Daemon whose cvmmd (and so its VMs) runs inside a network namespace
    (`ip netns exec`, which execs: the Popen pid is cvmmd's)."""

    def __init__(self, netns, **kw):
        super().__init__(**kw)
        self.netns = netns

    def start(self, timeout=30):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns.name, CVMMD, "-c",
                                      self.conf], stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=daemon_env(self.plugins))
        wait_for(lambda: self.proc.poll() is not None or self._answers(), timeout,
                 "cvmmd to answer on " + self.sock)
        if self.proc.poll() is not None:
            raise AssertionError("cvmmd exited with %d:\n%s" % (self.proc.returncode,
                                                                self.read_log()[-3000:]))
        return self

    def fds(self):
        """The daemon's open descriptors as targets, socket/pipe numbers left
        out, once they hold still (three equal readings 0.2 s apart): the
        API answers on a thread per connection, and the connection that
        just got its answer may still be closing."""
        def read():
            d = "/proc/%d/fd" % self.proc.pid
            out = []
            for fd in os.listdir(d):
                try:
                    t = os.readlink(os.path.join(d, fd))
                except OSError:
                    continue
                out.append(t.split(":[")[0] if t.startswith(("socket:[", "pipe:[")) else t)
            return sorted(out)
        readings = []
        end = time.monotonic() + 10
        while time.monotonic() < end:
            readings.append(read())
            if len(readings) >= 3 and readings[-1] == readings[-2] == readings[-3]:
                break
            time.sleep(0.2)
        return readings[-1]


class NetSoak:
    """The leak soak of a network mode, mixed into its suite's TestCase: VMs
    with one NIC of NETWORKS created, started, stopped and removed again and
    again, and starts made to fail, must leave the host as they found it.
    The test case gives soak_ns (the Netns whose settled snapshot counts)."""
    CYCLES = int(os.environ.get("CVMM_SOAK_CYCLES", "50"))
    NETWORKS = None  # e.g. [{"mode": "host"}]

    def state(self, d):
        """What a leak would change."""
        s = self.soak_ns.settled_snapshot()
        s["run files"] = files_under(d.run)
        s["daemon fds"] = d.fds()
        return s

    def cycle(self, d, name, running=None):
        """create (and start), stop, remove; running(vm) is called in between."""
        vm = d.create(name, networks=self.NETWORKS, memory_mb=128)
        vm = d.wait_state(name, ("running", "failed"), timeout=60)
        self.assertEqual(vm["state"], "running", vm["reason"])
        if running:
            running(vm)
        st, o = d.api("POST", "/v1/vms/%s/stop" % name, {"force": True})
        self.assertEqual(st, 202, o)
        d.wait_state(name, "stopped", timeout=60)
        st, o = d.api("DELETE", "/v1/vms/" + name)
        self.assertEqual(st, 200, o)
        return vm

    def fail_start(self, d, name, event):
        """A start the test-fail plugin fails at event: nothing of it runs."""
        vm = d.create(name, networks=self.NETWORKS, memory_mb=128)
        vm = d.wait_state(name, ("failed", "running"), timeout=60)
        self.assertEqual(vm["state"], "failed")
        self.assertIn("failing on purpose at " + event, vm["reason"])
        self.assertEqual(qemu_pids_for(vm["id"]), [])
        self.assertEqual(d.api("DELETE", "/v1/vms/" + name)[0], 200)

    def warmed_up(self, d):
        """The state after one warm-up cycle, the soak's reference: the core
        makes <run>/vms at the first start and keeps it; that directory is
        the only thing the first cycle may add."""
        pristine = self.state(d)
        self.cycle(d, "warmup")
        before = self.state(d)
        self.assertEqual(before["run files"], sorted(pristine["run files"] + ["vms"]))
        pristine["run files"] = before["run files"]
        self.assertEqual(before, pristine)
        return before

    def run_soak(self, what, running, nic_log, data_gone=None):
        """CYCLES cycles (running(vm) checks every tenth VM while it runs);
        five starts failed at PRE_START after the NIC was set up (nic_log:
        what the log says of that setup), then five at STARTED: each time
        the state after is the state before, and data_gone (a directory of
        the data dir) does not exist."""
        t0 = time.monotonic()
        d = self.soak_daemon("pre_start")
        before = self.warmed_up(d)
        for k in range(self.CYCLES):
            self.cycle(d, "s%d" % k, running if k % 10 == 0 else None)
        for k in range(5):
            self.fail_start(d, "bad%d" % k, "pre_start")
        log = d.read_log()
        # They failed after the network was set up, and it was undone.
        self.assertIn("VM 'bad4': networks[0]: " + nic_log, log)
        self.assertIn("VM 'bad4': undo post_stop ran", log)
        self.assertEqual(self.state(d), before)
        if data_gone:
            self.assertFalse(os.path.exists(os.path.join(d.data, data_gone)))
        d.stop()

        # Failing after QEMU runs (STARTED): the launch and the network undone.
        d = self.soak_daemon("started")
        self.cycle(d, "warmup")
        before = self.state(d)
        for k in range(5):
            self.fail_start(d, "bad%d" % k, "started")
        self.assertEqual(self.state(d), before)
        print("\n    %s soak: %d cycles + 10 failed starts in %.0f s, nothing left"
              % (what, self.CYCLES, time.monotonic() - t0))


class LibvirtInNetns:
    """Mixin for a network-mode test class: the libvirt backend, with a
    private libvirtd started inside each namespace libvirt_netns() names, so
    that libvirt's QEMUs see the TAPs and macvtaps cvmmd makes there.
    self.lvs holds them, self.lv the first; tearDown fails the test if a
    domain is left."""
    backend = "libvirt"

    def libvirt_netns(self):
        raise NotImplementedError

    def setUp(self):
        from libvirtd import Libvirtd, missing_tools
        if missing_tools():
            self.skipTest("libvirt backend: %s missing" % ", ".join(missing_tools()))
        if not os.path.exists(os.path.join(BUILD, "plugins", "backend-libvirt.so")):
            self.skipTest("libvirt backend: backend-libvirt.so not built")
        super().setUp()
        self.lvs = []
        try:
            for ns in self.libvirt_netns():
                self.lvs.append(Libvirtd(prefix=("ip", "netns", "exec", ns.name)))
                self.lvs[-1].start()
        except BaseException:
            self.tearDown()
            raise
        self.lv = self.lvs[0]

    def tearDown(self):
        left = []
        try:
            for d in self.daemons:
                d.stop()
            for lv in self.lvs:
                if lv.running():
                    left += lv.domains(all=True)
        finally:
            for lv in self.lvs:
                lv.stop()
            super().tearDown()
        self.assertEqual(left, [], "libvirt domains left behind")


# ---- invariants after stress, crashes and faults (appended) ----

BUSY_STATES = ("starting", "stopping", "removing")


def list_vms(d, timeout=30):
    """GET /v1/vms: {name: vm}."""
    st, o = d.api("GET", "/v1/vms", timeout=timeout)
    if st != 200:
        raise AssertionError("GET /v1/vms: %d %s" % (st, o))
    return {v["name"]: v for v in o["vms"]}


def _busy(v):
    # A VM that should run but is stopped or only defined has a start still
    # to come (queued, or the next step of a resumed job): not settled.
    # A job running or waiting (its manifest write may be under way).
    return v["state"] in BUSY_STATES or v.get("job") is not None or (
        v.get("desired") == "running" and v["state"] in ("stopped", "defined"))


def settle(d, timeout=180, what="jobs to settle"):
    """Waits until no VM is starting, stopping or removing, nor waiting for
    a start it should get; returns the list."""
    def quiet():
        vms = list_vms(d)
        return vms if not [n for n, v in vms.items() if _busy(v)] else None
    try:
        return wait_for(quiet, timeout, what, interval=0.3)
    except AssertionError:
        busy = {n: v["state"] for n, v in list_vms(d).items() if _busy(v)}
        raise AssertionError("%s: still busy after %.0f s: %s" % (what, timeout, busy))


def manifest_problems(d, vms):
    """What is wrong with the data dir, given the listed VMs {name: vm}: a
    listed VM without a valid manifest.json naming it, a VM folder nobody
    lists, a manifest.json.tmp.* anywhere."""
    problems = []
    vms_dir = os.path.join(d.data, "vms")
    folders = set(os.listdir(vms_dir)) if os.path.isdir(vms_dir) else set()
    for name, vm in vms.items():
        path = os.path.join(vms_dir, vm["id"], "manifest.json")
        try:
            with open(path) as f:
                m = json.load(f)
        except (OSError, ValueError) as e:
            problems.append("VM %s: manifest %s unreadable: %s" % (name, path, e))
            continue
        defn = m.get("definition") if isinstance(m, dict) else None
        if not isinstance(defn, dict) or defn.get("name") != name or defn.get("id") != vm["id"]:
            problems.append("VM %s: manifest %s does not define it: %s" % (
                name, path, json.dumps(defn)[:200]))
            continue
        # The persisted intent is the one the API shows (once settled, as
        # callers use this).
        if "want_running" in m and "desired" in vm and \
                m["want_running"] != (vm["desired"] == "running"):
            problems.append("VM %s: manifest says want_running %s, API says desired %s" % (
                name, m["want_running"], vm["desired"]))
    ids = {v["id"] for v in vms.values()}
    for f in sorted(folders - ids):
        problems.append("folder %s/%s belongs to no listed VM (holds %s)" % (
            vms_dir, f, files_under(os.path.join(vms_dir, f))))
    for f in files_under(d.data):
        if ".tmp" in os.path.basename(f):
            problems.append("temp file left: %s" % f)
    return problems


def process_problems(d, vms):
    """QEMU processes against the listed VMs: exactly one per running VM,
    none for any other VM, none of this daemon's (its data dir is on the
    command line) that no listed VM owns."""
    problems = []
    owned = set()
    for name, vm in vms.items():
        pids = qemu_pids_for(vm["id"])
        owned.update(pids)
        if vm["state"] == "running" and len(pids) != 1:
            problems.append("VM %s is running with QEMUs %s" % (name, pids))
        if vm["state"] != "running" and pids:
            problems.append("VM %s is %s but QEMUs %s run" % (name, vm["state"], pids))
    for pid, args in procs_mentioning(d.dir, exe="qemu-system").items():
        if pid not in owned:
            problems.append("QEMU %d of no listed VM: %s" % (pid, " ".join(args)[:300]))
    return problems


def quiet_fd_count(pid, timeout=10):
    """The process's descriptor count once it holds still (three equal
    readings 0.2 s apart): a connection just answered may still be closing."""
    readings = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        readings.append(fd_count(pid))
        if len(readings) >= 3 and len(set(readings[-3:])) == 1:
            return readings[-1]
        time.sleep(0.2)
    return min(readings)


def fd_targets(pid):
    """{fd: target} of a process, for messages."""
    out = {}
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            out[int(fd)] = os.readlink(os.path.join(d, fd))
        except OSError:
            pass
    return out
