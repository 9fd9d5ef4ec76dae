"""A private libvirtd + virtlogd for the libvirt backend's tests and benchmark.

Both run as root (libvirt's "system" mode, what operators use) but see none
of the host's libvirt: they live in a mount namespace of their own where
/run, /etc/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt
are directories under one temp dir. Nothing of a host libvirtd is read or
touched, and a host libvirtd keeps running undisturbed. The qemu driver's
config turns off what would change the host outside that dir (cgroups) or
needs a full /dev (per-domain mount namespaces).

From the host the daemon is reached at
    qemu:///system?socket=<dir>/run/libvirt-sock      (Libvirtd.uri)

Use from Python:
    lv = Libvirtd().start(); ...; lv.virsh("list"); ...; lv.stop()
or from a shell (scripts/bench/libvirt_boot.sh):
    python3 libvirtd.py start DIR     # prints the URI; daemons keep running
    python3 libvirtd.py stop DIR
Stdlib only.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOOLS = ("libvirtd", "virtlogd", "virsh", "unshare")
PRIVATE = ("/etc/libvirt", "/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt")


def missing_tools():
    return [t for t in TOOLS if not shutil.which(t)] + [p for p in PRIVATE if not os.path.isdir(p)]


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class Libvirtd:
    def __init__(self, dir=None, prefix=()):
        """prefix: argv run before the daemons' command, e.g. ("ip", "netns",
        "exec", NS) for a libvirtd (and so its QEMUs) inside a network
        namespace, where TAPs made by a cvmmd in that namespace are."""
        self.prefix = list(prefix)
        self.dir = dir or tempfile.mkdtemp(prefix="cvmm-libvirtd-")
        self.sock = os.path.join(self.dir, "run", "libvirt-sock")
        self.uri = "qemu:///system?socket=" + self.sock
        self.log = os.path.join(self.dir, "libvirtd.log")
        self.pid = None
        self.proc = None
        self.virtlogd_pid = None

    # -- the daemons --
    def _write_config(self):
        for d in ("run", "etc", "lib", "logs", "cache"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        with open(os.path.join(self.dir, "etc", "libvirtd.conf"), "w") as f:
            f.write('unix_sock_group = "root"\nunix_sock_rw_perms = "0700"\n'
                    'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                    'log_outputs = "3:stderr"\n')
        with open(os.path.join(self.dir, "etc", "qemu.conf"), "w") as f:
            # No cgroups: they are host-wide. No per-domain /dev namespace:
            # containers often cannot make one. Everything else: defaults.
            f.write('cgroup_controllers = [ ]\nnamespaces = [ ]\n')
        script = os.path.join(self.dir, "ns.sh")
        binds = "\n".join("mount --bind %s/%s %s" % (self.dir, sub, target) for sub, target in
                          zip(("etc", "lib", "logs", "cache"), PRIVATE))
        with open(script, "w") as f:
            f.write("""#!/bin/sh
# Runs inside `unshare -m`: private mounts, then virtlogd, then libvirtd.
set -e
mount --make-rprivate /
mount -t tmpfs -o mode=0755 cvmm-libvirtd-run /run
mkdir -p /run/libvirt
mount --bind %(dir)s/run /run/libvirt
%(binds)s
[ "$1" = restart ] || virtlogd --pid-file %(dir)s/virtlogd.pid >>%(dir)s/virtlogd.log 2>&1 &
exec libvirtd --config %(dir)s/etc/libvirtd.conf --pid-file %(dir)s/libvirtd.pid
""" % dict(dir=self.dir, binds=binds))
        os.chmod(script, 0o755)
        return script

    def start(self, timeout=90, restart=False):
        missing = missing_tools()
        if missing:
            raise RuntimeError("cannot run a private libvirtd: missing %s" % ", ".join(missing))
        script = os.path.join(self.dir, "ns.sh") if restart else self._write_config()
        with open(self.log, "a") as logf:
            p = subprocess.Popen(self.prefix + ["unshare", "--mount", "--propagation", "private",
                                                script] + (["restart"] if restart else []),
                                 stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.proc = p  # kept: libvirtd is our child until stop() reaps it
        self.pid = p.pid
        try:
            self._wait_up(p, timeout, restart)
        except BaseException:
            self.stop(remove=not restart)
            raise
        self._save()
        return self

    def _wait_up(self, p, timeout, restart):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if p.poll() is not None:
                raise RuntimeError("libvirtd exited with %d:\n%s" % (p.returncode, self.read_log()[-2000:]))
            if os.path.exists(self.sock):
                # The first call probes QEMU's capabilities (seconds); do it now.
                r = self.virsh("version", check=False, timeout=max(5, end - time.monotonic()))
                if r.returncode == 0:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("libvirtd did not answer within %d s:\n%s" % (timeout, self.read_log()[-2000:]))
        if not restart:
            try:
                with open(os.path.join(self.dir, "virtlogd.pid")) as f:
                    self.virtlogd_pid = int(f.read().strip())
            except (OSError, ValueError):
                self.virtlogd_pid = None

    def restart(self, meanwhile=None):
        """Stops libvirtd alone (its domains and virtlogd keep running, as
        with `systemctl restart libvirtd`), runs meanwhile(), starts it again."""
        os.kill(self.pid, signal.SIGTERM)
        end = time.monotonic() + 15
        while _alive(self.pid) and time.monotonic() < end:
            time.sleep(0.05)
        if self.proc:
            self.proc.wait()
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        if meanwhile:
            meanwhile()
        return self.start(restart=True)

    def _save(self):
        with open(os.path.join(self.dir, "state.json"), "w") as f:
            json.dump({"pid": self.pid, "virtlogd_pid": self.virtlogd_pid, "uri": self.uri}, f)

    @classmethod
    def attach(cls, dir):
        lv = cls(dir)
        with open(os.path.join(dir, "state.json")) as f:
            st = json.load(f)
        lv.pid, lv.virtlogd_pid = st["pid"], st["virtlogd_pid"]
        return lv

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def running(self):
        return self.pid is not None and _alive(self.pid)

    def stop(self, remove=True):
        """Destroys every domain it runs, stops both daemons, removes the dir."""
        if self.virtlogd_pid is None:
            try:
                with open(os.path.join(self.dir, "virtlogd.pid")) as f:
                    self.virtlogd_pid = int(f.read().strip())
            except (OSError, ValueError):
                pass
        if self.running():
            for name in self.domains():
                self.virsh("destroy", name, check=False)
        for pid in (self.pid, self.virtlogd_pid):
            if pid and _alive(pid):
                os.kill(pid, signal.SIGTERM)
        for pid in (self.pid, self.virtlogd_pid):
            end = time.monotonic() + 15
            while pid and _alive(pid) and time.monotonic() < end:
                time.sleep(0.05)
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait()
        self.pid = self.proc = self.virtlogd_pid = None
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients --
    def virsh(self, *args, check=True, timeout=60):
        p = subprocess.run(["virsh", "-c", self.uri, "-q"] + list(args), capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("virsh %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                            p.stderr.strip()))
        return p

    def domains(self, all=False):
        """Names of the running (or, with all, every) domain."""
        args = ["list", "--name"] + (["--all"] if all else [])
        return [l.strip() for l in self.virsh(*args).stdout.splitlines() if l.strip()]

    def domstate(self, name):
        r = self.virsh("domstate", name, check=False)
        return r.stdout.strip() if r.returncode == 0 else None


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        sys.stderr.write("usage: %s start|stop DIR\n" % argv[0])
        return 2
    d = os.path.abspath(argv[2])
    if argv[1] == "start":
        os.makedirs(d, exist_ok=True)
        lv = Libvirtd(d).start()
        print(lv.uri)
    else:
        Libvirtd.attach(d).stop(remove=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
