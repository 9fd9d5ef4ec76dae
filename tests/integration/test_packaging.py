"""Packaging: what `cmake --install` puts on a host, used as a host uses it.

Install: into a temp prefix: binaries, plugins, headers, cvmm.pc and
cvmm-plugin.pc, the unit, the config, man pages (mandoc -T lint and man
--warnings clean), bash completion (commands, options and VM names from
the daemon). The example plugin examples/syslog-hook is built from the
installed header and pkg-config only, loaded by the INSTALLED cvmmd, and
its syslog lines (to a datagram socket the test binds, set with
plugin.syslog-hook.socket) follow a VM through create, start, stop, remove.

Deb: a tree configured for /usr is built and packed with CPack; lintian
reports no error; the package installs on this host (apt, then purged at
the end); the installed unit passes systemd-analyze verify; and, systemd
not being PID 1 here, the unit's ExecStartPre and ExecStart are run by
hand as systemd would (NOTIFY_SOCKET set): READY=1 arrives, the installed
cvmm answers on the daemon's socket, STOPPING=1 at SIGTERM."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BUILD, IMAGES, qemu_pids_for, wait_for
from test_embed import install_prefix

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def run(*args, env=None, timeout=120, check=True, cwd=None):
    p = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=timeout, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s\n%s" % (" ".join(map(str, args)), p.returncode,
                                                      p.stdout[-3000:], p.stderr[-3000:]))
    return p


class Receiver:
    """A unix datagram socket standing in for /dev/log or $NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.s.settimeout(0.2)
        self.got = []

    def drain(self):
        while True:
            try:
                self.got.append(self.s.recv(65536).decode(errors="replace"))
            except socket.timeout:
                return self.got

    def wait(self, pred, timeout, what):
        return wait_for(lambda: any(pred(m) for m in self.drain()), timeout, what)

    def close(self):
        self.s.close()


def daemon_conf(path, tmp, plugin_dir, plugins, sections=""):
    with open(path, "w") as f:
        f.write("""
address = "unix:%(tmp)s/run/cvmm.sock";
run_path = "%(tmp)s/run";
data_dir = "%(tmp)s/data";
plugin_dir = "%(pdir)s";
log_level = "info";
image = { path = "%(images)s"; };
cvm = { max_allocable_vcpu = 4; max_allocable_memory_in_mb = 4096;
        networking = { mode = "user"; }; };
auth = { enabled = false; };
plugins = [ %(plugins)s ];
plugin = { backend-qemu = { accel = "tcg"; }; %(sections)s };
""" % dict(tmp=tmp, pdir=plugin_dir, images=IMAGES, sections=sections,
           plugins=", ".join('"%s"' % p for p in plugins)))


def cli(cvmm, sock, *args, check=True):
    return run(cvmm, "--socket", sock, *args, check=check, timeout=60)


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cvmm-pkg-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        cls.libdir = install_prefix(cls.prefix)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_installed_files(self):
        p, lib = self.prefix, self.libdir
        want = ["bin/cvmmd", "bin/cvmm", "include/cvmm/plugin.h", "include/cvmm/cvmm.h",
                "share/man/man1/cvmm.1.gz", "share/man/man5/cvmm.conf.5.gz",
                "share/man/man8/cvmmd.8.gz", "share/bash-completion/completions/cvmm",
                "lib/systemd/system/cvmmd.service", "etc/cvmm/cvmm.conf"]
        missing = [w for w in want if not os.path.exists(os.path.join(p, w))]
        for w in ("pkgconfig/cvmm.pc", "pkgconfig/cvmm-plugin.pc", "libcvmm-core.a",
                  "cvmm/plugins/backend-qemu.so", "cvmm/plugins/net-user.so"):
            if not os.path.exists(os.path.join(lib, w)):
                missing.append(w)
        self.assertEqual(missing, [])
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(lib, "pkgconfig"))
        pd = run("pkg-config", "--variable=plugindir", "cvmm-plugin", env=env).stdout.strip()
        self.assertEqual(os.path.realpath(pd), os.path.realpath(os.path.join(lib, "cvmm/plugins")))

    def test_man_pages(self):
        for page in glob.glob(os.path.join(self.prefix, "share/man/man*/*.gz")):
            lint = run("mandoc", "-T", "lint", "-W", "warning", page, check=False)
            self.assertEqual((lint.returncode, lint.stdout + lint.stderr), (0, ""), page)
            man = run("man", "--warnings", "-l", page,
                      env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING=""))
            self.assertEqual(man.stderr, "", page)
            name = os.path.basename(page).split(".")[0]
            self.assertIn(name, man.stdout)
        self.assertEqual(len(glob.glob(os.path.join(self.prefix, "share/man/man*/*.gz"))), 3)

    def complete(self, line, env=None):
        """COMPREPLY of the installed completion for the words of line (the
        last one being completed)."""
        words = line.split(" ")
        script = "source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _cvmm; printf '%%s\\n' \"${COMPREPLY[@]}\"" % (
            os.path.join(self.prefix, "share/bash-completion/completions/cvmm"),
            " ".join("'%s'" % w for w in words), len(words) - 1)
        env = dict(env or os.environ)
        env["PATH"] = os.path.join(self.prefix, "bin") + ":" + env["PATH"]
        return sorted(l for l in run("bash", "-c", script, env=env).stdout.splitlines() if l)

    def test_bash_completion_commands(self):
        self.assertEqual(self.complete("cvmm st"), ["start", "stop"])
        self.assertEqual(self.complete("cvmm --so"), ["--socket"])
        self.assertEqual(self.complete("cvmm stop web1 --f"), ["--force"])
        self.assertEqual(self.complete("cvmm create x --net b"), ["bridge"])

    def test_example_plugin_syslog(self):
        """examples/syslog-hook built out of tree, loaded by the installed
        cvmmd; its lines follow a VM's life. Boots a guest (QEMU)."""
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s" % IMAGES)
        t = tempfile.mkdtemp(prefix="cvmm-syslog-", dir=self.tmp)
        src = os.path.join(t, "syslog-hook")
        shutil.copytree(os.path.join(SRC, "examples", "syslog-hook"), src)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(self.libdir, "pkgconfig"))
        flags = run("pkg-config", "--cflags", "cvmm-plugin", env=env).stdout
        self.assertNotIn(SRC, flags)  # the installed header, not the tree's
        run("make", "-C", src, "CFLAGS=-O2 -Wall -Wextra -Werror", env=env)
        # plugin_dir: the installed plugins and the vendor's one.
        pdir = os.path.join(t, "plugins")
        os.makedirs(pdir)
        for so in glob.glob(os.path.join(self.libdir, "cvmm/plugins/*.so")):
            os.symlink(so, os.path.join(pdir, os.path.basename(so)))
        shutil.copy(os.path.join(src, "syslog-hook.so"), pdir)
        log = Receiver(os.path.join(t, "log.sock"))
        conf = os.path.join(t, "cvmm.conf")
        daemon_conf(conf, t, pdir, ("backend-qemu", "net-user", "syslog-hook"),
                    'syslog-hook = { socket = "%s"; ident = "cvmm-test"; };' % log.path)
        cvmmd = os.path.join(self.prefix, "bin", "cvmmd")
        cvmm = os.path.join(self.prefix, "bin", "cvmm")
        sock = os.path.join(t, "run", "cvmm.sock")
        self.assertIn("OK", run(cvmmd, "--check-config", conf).stdout)
        dlog = open(os.path.join(t, "cvmmd.log"), "w")
        d = subprocess.Popen([cvmmd, "-c", conf], stdout=dlog, stderr=subprocess.STDOUT,
                             start_new_session=True)
        vm_id = None
        try:
            wait_for(lambda: d.poll() is not None or cli(cvmm, sock, "host", check=False).returncode == 0,
                     30, "the installed cvmmd to answer")
            self.assertIsNone(d.poll(), open(dlog.name).read())
            out = cli(cvmm, sock, "plugins").stdout
            self.assertIn("syslog-hook", out)
            cli(cvmm, sock, "create", "vendor1", "--image", "tiny")
            vm_id = json.loads(cli(cvmm, sock, "--json", "info", "vendor1").stdout)["id"]
            wait_for(lambda: json.loads(cli(cvmm, sock, "--json", "info", "vendor1").stdout)["state"] == "running",
                     60, "vendor1 running")
            # Completion names the daemon's VMs.
            self.assertEqual(self.complete("cvmm --socket %s info ven" % sock), ["vendor1"])
            cli(cvmm, sock, "stop", "vendor1", "--force")
            wait_for(lambda: json.loads(cli(cvmm, sock, "--json", "info", "vendor1").stdout)["state"] == "stopped",
                     60, "vendor1 stopped")
            cli(cvmm, sock, "remove", "vendor1")
            d.send_signal(signal.SIGTERM)
            self.assertEqual(d.wait(timeout=60), 0)
            log.wait(lambda m: m.endswith("daemon stopping"), 10, "the daemon's stop line")
            lines = log.drain()
            self.assertTrue(all(re.match(r"<30>\w{3} [ \d]\d \d\d:\d\d:\d\d cvmm-test\[%d\]: " % d.pid, l)
                                for l in lines), lines)
            events = [l.split(": ", 1)[1] for l in lines]
            mine = [e.rsplit(": ", 1)[1] for e in events if e.startswith("VM vendor1 (%s): " % vm_id)]
            self.assertEqual(events[0], "daemon started")
            self.assertEqual(events[-1], "daemon stopping")
            self.assertEqual(mine, ["defined", "prepared", "starting", "started",
                                    "stopping", "stopped", "cleaned up", "undefined"])
        finally:
            if d.poll() is None:
                d.kill()
                d.wait()
            dlog.close()
            if vm_id:
                for pid in qemu_pids_for(vm_id):
                    os.kill(pid, signal.SIGKILL)
            log.close()


class Deb(unittest.TestCase):
    """Builds, lints, installs and runs the Debian package; purges it."""

    def test_deb(self):
        if os.geteuid() != 0:
            self.fail("needs root: run the tests as root (a test that cannot run fails)")
        tree = os.path.join(BUILD, "deb-tree")
        # Configured for /usr (Debian's paths); reused when it exists.
        run("cmake", "-S", SRC, "-B", tree, "-DCMAKE_INSTALL_PREFIX=/usr",
            "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON")
        run("cmake", "--build", tree, "-j2", "--target", "runtime", timeout=600)
        for old in glob.glob(os.path.join(tree, "*.deb")):
            os.unlink(old)
        run("cpack", "-G", "DEB", cwd=tree, timeout=300)
        debs = glob.glob(os.path.join(tree, "cvmm_*.deb"))
        self.assertEqual(len(debs), 1, debs)
        deb = debs[0]
        lint = run("lintian", "--tag-display-limit", "0", deb, check=False)
        errors = [l for l in lint.stdout.splitlines() if l.startswith("E:")]
        self.assertEqual(errors, [], lint.stdout)
        contents = run("dpkg-deb", "-c", deb).stdout
        for f in ("./usr/bin/cvmmd", "./usr/bin/cvmm", "./lib/systemd/system/cvmmd.service",
                  "./etc/cvmm/cvmm.conf", "./usr/share/man/man8/cvmmd.8.gz",
                  "./usr/share/bash-completion/completions/cvmm",
                  "./usr/include/cvmm/cvmm.h", "/cvmm/plugins/backend-qemu.so",
                  "/pkgconfig/cvmm.pc", "/pkgconfig/cvmm-plugin.pc"):
            self.assertIn(f, contents)
        self.assertEqual(run("dpkg-query", "-W", "-f=${Status}", "cvmm", check=False).stdout
                         .strip() in ("", "unknown ok not-installed", "deinstall ok config-files"),
                         True, "a cvmm package is installed on this host already")
        apt = ["apt-get", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=120"]
        t = tempfile.mkdtemp(prefix="cvmm-deb-")
        d = None
        try:
            run(*apt, "install", deb, timeout=300,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            self.assertEqual(run("dpkg-query", "-W", "-f=${Status}", "cvmm").stdout,
                             "install ok installed")
            # Enabled as dh_installsystemd would (postinst).
            self.assertTrue(os.path.lexists(
                "/etc/systemd/system/multi-user.target.wants/cvmmd.service"))
            verify = run("systemd-analyze", "verify", "/lib/systemd/system/cvmmd.service",
                         check=False)
            self.assertEqual(verify.returncode, 0, verify.stderr)
            self.assertEqual([l for l in verify.stderr.splitlines() if "cvmmd.service" in l], [],
                             verify.stderr)
            run("man", "-w", "cvmmd")
            self.assertIn("OK", run("/usr/bin/cvmmd", "--check-config").stdout)  # shipped config
            # systemd is not PID 1 here: the unit's commands, run by hand as
            # systemd would, on a config the admin wrote (temp dirs).
            unit = open("/lib/systemd/system/cvmmd.service").read()
            pre = re.search(r"^ExecStartPre=(.*)$", unit, re.M).group(1).split()
            start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
            self.assertIn("Type=notify", unit)
            self.assertIn("KillMode=process", unit)
            shutil.copy("/etc/cvmm/cvmm.conf", os.path.join(t, "shipped.conf"))
            daemon_conf("/etc/cvmm/cvmm.conf", t, glob.glob("/usr/lib/*/cvmm/plugins")[0],
                        ("backend-qemu", "net-user"))
            run(*pre)
            notify = Receiver(os.path.join(t, "notify.sock"))
            dlog = open(os.path.join(t, "cvmmd.log"), "w")
            d = subprocess.Popen(start, stdout=dlog, stderr=subprocess.STDOUT,
                                 env=dict(os.environ, NOTIFY_SOCKET=notify.path),
                                 start_new_session=True)
            notify.wait(lambda m: "READY=1" in m, 30, "READY=1 from the packaged cvmmd")
            host = json.loads(run("/usr/bin/cvmm", "--socket", os.path.join(t, "run", "cvmm.sock"),
                                  "--json", "host").stdout)
            self.assertEqual(host["version"], run("/usr/bin/cvmmd", "--version").stdout.split()[1])
            d.send_signal(signal.SIGTERM)
            self.assertEqual(d.wait(timeout=30), 0)
            notify.wait(lambda m: "STOPPING=1" in m, 5, "STOPPING=1")
            notify.close()
            dlog.close()
            shutil.copy(os.path.join(t, "shipped.conf"), "/etc/cvmm/cvmm.conf")
        finally:
            if d and d.poll() is None:
                d.kill()
                d.wait()
            purge = run(*apt, "purge", "cvmm", check=False, timeout=300,
                        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            shutil.rmtree(t, ignore_errors=True)
        self.assertEqual(purge.returncode, 0, purge.stderr)
        self.assertFalse(os.path.exists("/usr/bin/cvmmd"), "purge left /usr/bin/cvmmd")
        self.assertFalse(os.path.exists("/etc/cvmm/cvmm.conf"), "purge left the config")
        self.assertFalse(os.path.lexists("/etc/systemd/system/multi-user.target.wants/cvmmd.service"),
                         "purge left the unit enabled")


if __name__ == "__main__":
    unittest.main()
