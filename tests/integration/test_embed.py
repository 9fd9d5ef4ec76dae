"""The embedding API (libcvmm-core, cvmm/cvmm.h) as an appliance uses it:
`cmake --install` into a temp prefix, tests/embed/embed_boot.c compiled
out of tree against the INSTALLED header with `pkg-config cvmm` only, run
on a config with the installed plugins. It boots the tiny guest through
backend-qemu with no API listener (no socket at the config's address, no
listening socket in the process), the guest prints its ready line, and the
program stops and removes the VM."""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import BUILD, IMAGES, READY, BOOT_TIMEOUT, qemu_pids_for, wait_for

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "embed", "embed_boot.c")


def install_prefix(prefix):
    """cmake --install of the build tree into prefix; returns its pkgconfig dir."""
    p = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("cmake --install: %s" % (p.stderr or p.stdout))
    for lib in ("lib", "lib64", "lib/x86_64-linux-gnu"):
        pc = os.path.join(prefix, lib, "pkgconfig")
        if os.path.exists(os.path.join(pc, "cvmm.pc")):
            return os.path.join(prefix, lib)
    raise AssertionError("no cvmm.pc installed under %s" % prefix)


def listening_sockets(pid):
    """Inodes of the listening sockets (unix or TCP) among pid's descriptors."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    found = []
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[6] in inodes and int(cols[3], 16) & 0x10000:  # __SO_ACCEPTCON
                found.append("unix " + (cols[7] if len(cols) > 7 else "(unnamed)"))
    for proto in ("tcp", "tcp6"):
        with open("/proc/net/" + proto) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[9] in inodes and cols[3] == "0A":  # LISTEN
                    found.append(proto + " " + cols[1])
    return found


class Embed(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root: run the tests as root (a test that cannot run fails)")
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s: run scripts/build-test-guest.sh" % IMAGES)
        self.dir = tempfile.mkdtemp(prefix="cvmm-embed-")
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        vms = os.path.join(self.dir, "data", "vms")
        left = []
        if os.path.isdir(vms):
            for vm_id in os.listdir(vms):
                for pid in qemu_pids_for(vm_id):
                    left.append(pid)
                    os.kill(pid, 9)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.assertEqual(left, [], "QEMU left behind")

    def test_boot_without_socket(self):
        prefix = os.path.join(self.dir, "prefix")
        libdir = install_prefix(prefix)
        header = os.path.join(prefix, "include", "cvmm", "cvmm.h")
        self.assertTrue(os.path.exists(header), "cvmm/cvmm.h not installed")
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "cvmm"], env=env,
                               capture_output=True, text=True, check=True).stdout.split()
        # Only the installed prefix: no include path of the source tree.
        self.assertFalse([f for f in flags if "/core" in f or "plugin-api" in f], flags)
        exe = os.path.join(self.dir, "embed_boot")
        cc = subprocess.run(["cc", "-Wall", "-Wextra", "-Werror", "-o", exe, SRC] + flags,
                            capture_output=True, text=True)
        self.assertEqual(cc.returncode, 0, cc.stderr)

        run, data = os.path.join(self.dir, "run"), os.path.join(self.dir, "data")
        sock = os.path.join(run, "cvmm.sock")
        conf = os.path.join(self.dir, "embed.conf")
        with open(conf, "w") as f:
            f.write("""
address = "unix:%s";
run_path = "%s";
data_dir = "%s";
plugin_dir = "%s";
log_level = "info";
image = { path = "%s"; };
cvm = { max_allocable_vcpu = 4; max_allocable_memory_in_mb = 4096;
        networking = { mode = "user"; }; };
plugins = [ "backend-qemu", "net-user" ];
plugin = { backend-qemu = { accel = "tcg"; }; };
""" % (sock, run, data, os.path.join(libdir, "cvmm", "plugins"), IMAGES))
        log = open(os.path.join(self.dir, "embed.log"), "w")
        self.proc = subprocess.Popen([exe, conf, "appliance1", "tiny"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
        lines = []

        def until(prefix):
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    log.flush()
                    with open(log.name) as f:
                        raise AssertionError("embed_boot ended before %r:\n%s\n%s" % (
                            prefix, "".join(lines), f.read()[-3000:]))
                lines.append(line)
                if line.startswith(prefix):
                    return line[len(prefix):].strip()

        refused = until("REFUSED ")
        self.assertTrue(refused.startswith("-22 vcpu: must be between 1"), refused)
        import json
        vm = json.loads(until("RUNNING "))
        self.assertEqual(vm["state"], "running")
        self.assertEqual(vm["name"], "appliance1")
        self.assertEqual(json.loads(until("LIST ")),
                         {"vms": [{"name": "appliance1", "state": "running"}]})
        self.assertEqual(qemu_pids_for(vm["id"]), [vm["pid"]])
        # The guest boots: its console line is in the VM's log.
        console = os.path.join(data, "vms", vm["id"], "console.log")
        wait_for(lambda: os.path.exists(console) and READY in open(console, errors="replace").read(),
                 BOOT_TIMEOUT, "the guest's ready line in " + console, interval=0.5)
        # No API: nothing at the address, nothing listening in the process.
        self.assertFalse(os.path.exists(sock), "a socket at the config's address")
        self.assertEqual(listening_sockets(self.proc.pid), [])
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        again = until("START-AGAIN ")
        self.assertTrue(again.startswith("-16 "), again)  # -EBUSY: already running (409)
        until("OK wait stopped")
        wait_for(lambda: not qemu_pids_for(vm["id"]), 10, "QEMU to be gone")
        gone = until("GONE ")
        self.assertTrue(gone.startswith("-2 no VM"), gone)
        until("DONE")
        self.assertEqual(self.proc.wait(timeout=30), 0)
        self.assertFalse(os.path.exists(os.path.join(data, "vms", vm["id"])),
                         "the removed VM's folder is still there")
        log.close()


if __name__ == "__main__":
    unittest.main()
