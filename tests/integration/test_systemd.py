"""systemd integration: the unit passes `systemd-analyze verify`, and
cvmmd's READY=1 (Type=notify, sent by hand to $NOTIFY_SOCKET) arrives only
once the re-adoption of the VMs found at start has finished; STOPPING=1 at
shutdown.

The adoption is made slow on purpose: a VM's start is interrupted by
kill -9 while its PRE_START hook (the test-fail plugin, from_name "hang-
prestart-...") sleeps 3 s, so the next daemon must undo it and start it
again, sleeping 3 s once more, before the VM runs. The API answers at once;
READY must wait for the VM to be running. systemd is not PID 1 on the CI
machines: the test binds the notify socket itself."""
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from harness import BUILD, Daemon, DaemonTest, qemu_pids_for, wait_for
from test_packaging import Receiver

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class Unit(unittest.TestCase):
    def test_systemd_analyze_verify(self):
        """The unit as shipped, its binary paths pointed at this build (its
        man pages are not installed here: --man=no; the package test checks
        them installed)."""
        with open(os.path.join(SRC, "conf", "cvmmd.service.in")) as f:
            text = f.read()
        self.assertIn("Type=notify", text)
        self.assertIn("KillMode=process", text)
        self.assertRegex(text, r"(?m)^ExecStartPre=@CMAKE_INSTALL_FULL_BINDIR@/cvmmd --check-config$")
        with tempfile.TemporaryDirectory() as t:
            unit = os.path.join(t, "cvmmd.service")
            with open(unit, "w") as f:
                f.write(text.replace("@CMAKE_INSTALL_FULL_BINDIR@", os.path.join(os.path.abspath(BUILD), "core")))
            p = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual([l for l in p.stderr.splitlines() if "cvmmd.service" in l], [], p.stderr)
            # A unit that is wrong is caught: the check can fail.
            with open(unit, "w") as f:
                f.write(text.replace("@CMAKE_INSTALL_FULL_BINDIR@", "/nonexistent"))
            p = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True, text=True,
                               timeout=60)
            self.assertNotEqual(p.returncode, 0, "verify accepted a missing ExecStart binary")


class Notify(DaemonTest):
    daemon_args = dict(plugins=("backend-qemu", "net-user", "test-fail"),
                       plugin_sections="test-fail = { from_name = true; hang_seconds = 3; };")

    def test_ready_after_adoption(self):
        name = "hang-prestart-adopt"
        self.d.create(name, start=False)
        st, _ = self.d.api("POST", "/v1/vms/%s/start" % name)
        self.assertEqual(st, 202)
        time.sleep(1)  # inside the 3 s PRE_START: no QEMU yet
        self.d.kill9()
        vms = os.listdir(os.path.join(self.d.data, "vms"))
        self.assertEqual(len(vms), 1)
        self.assertEqual(qemu_pids_for(vms[0]), [])

        notify = Receiver(os.path.join(self.d.dir, "notify.sock"))
        os.environ["NOTIFY_SOCKET"] = notify.path
        try:
            t0 = time.monotonic()
            self.d.start()  # returns when the API answers
        finally:
            del os.environ["NOTIFY_SOCKET"]
        try:
            # The API answers while the adoption still sleeps in PRE_START.
            self.assertEqual(self.d.vm(name)["state"], "starting")
            self.assertFalse([m for m in notify.drain() if "READY=1" in m],
                             "READY=1 before the adoption finished")
            notify.wait(lambda m: "READY=1" in m, 60, "READY=1")
            took = time.monotonic() - t0
            vm = self.d.vm(name)
            self.assertEqual(vm["state"], "running", vm)
            self.assertEqual(qemu_pids_for(vm["id"]), [vm["pid"]])
            self.assertGreater(took, 2.5, "READY came before the 3 s PRE_START of the resumed start")
            self.assertIn("re-adoption finished: READY=1 sent", self.d.read_log())
            # QEMU and passt must not inherit the socket.
            with open("/proc/%d/environ" % vm["pid"], "rb") as f:
                self.assertNotIn(b"NOTIFY_SOCKET", f.read())
            st, _ = self.d.api("DELETE", "/v1/vms/" + name)
            self.assertEqual(st, 200)
            self.d.proc.send_signal(signal.SIGTERM)
            self.assertEqual(self.d.proc.wait(timeout=60), 0)
            notify.wait(lambda m: "STOPPING=1" in m, 10, "STOPPING=1")
            self.assertEqual(sum("READY=1" in m for m in notify.got), 1)
        finally:
            notify.close()


if __name__ == "__main__":
    unittest.main()
