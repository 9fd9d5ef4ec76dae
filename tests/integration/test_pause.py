"""Pause and resume, against a real cvmmd and real QEMU guests (TCG), on the
QEMU backend; per_backend() at the end adds the libvirt copy.

What a user sees:
  - `cvmm pause` answers "paused", the API says paused, the hypervisor says
    so too (QMP query-status, or `virsh domstate`), and the guest's HTTP
    server (port mapped to the host) stops answering; `cvmm resume` and it
    answers again. Pausing a paused VM or resuming a running one does
    nothing; pausing a stopped one is refused (409).
  - a paused VM is not taken for an exited one: no automatic restart;
  - kill -9 of cvmmd while the VM is paused: after the restart it is still
    paused (and the same process); a VM paused behind the daemon's back
    while it was down is reported paused after the restart, and one paused
    behind its back while it runs is resumed by `cvmm resume`;
  - a graceful stop of a paused VM powers the guest off (it is let run
    first: a frozen guest cannot press its power button), and removing a
    paused VM leaves no QEMU behind.
"""
import json
import os
import socket
import time
import unittest

from harness import DaemonTest, http_get, per_backend, port_open, qemu_pids_for, wait_for


def qmp_call(sock_path, command):
    """One QMP command over the VM's monitor socket; its "return"."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    f = s.makefile("rw")
    try:
        json.loads(f.readline())  # greeting
        for cmd in ("qmp_capabilities", command):
            f.write(json.dumps({"execute": cmd}) + "\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if "return" in msg or "error" in msg:
                    break
        if "error" in msg:
            raise AssertionError("QMP %s: %s" % (command, msg["error"]))
        return msg["return"]
    finally:
        f.close()
        s.close()


def answers(port):
    """The guest's HTTP server answers on the mapped port (within 3 s)."""
    try:
        return http_get(port, timeout=3)[0] == 200
    except OSError:
        return False


class Pause(DaemonTest):
    port = 26180

    def hv_paused(self, name):
        """What the hypervisor says: True if the VM's vCPUs are stopped."""
        vm = self.d.vm(name)
        if self.backend == "libvirt":
            return self.lv.virsh("domstate", "cvmm-" + name).stdout.strip() == "paused"
        sock = os.path.join(self.d.run, "vms", vm["id"], "qmp.sock")
        return not qmp_call(sock, "query-status")["running"]

    def outside_pause(self, name, vm_id):
        """Pauses the VM behind cvmm's back (the daemon may be down)."""
        if self.backend == "libvirt":
            self.lv.virsh("suspend", "cvmm-" + name)
        else:
            qmp_call(os.path.join(self.d.run, "vms", vm_id, "qmp.sock"), "stop")

    def test_pause_resume_across_kill9_then_stop_and_remove(self):
        d, port = self.d, self.port + (self.backend == "libvirt")
        vm = d.create("p1", ports=[{"protocol": "tcp", "host_port": port, "vm_port": 8080}])
        d.wait_ready("p1")
        wait_for(lambda: port_open(port) and answers(port), 30, "the guest's HTTP server")

        p = d.cli("resume", "p1")  # running already: nothing to do
        self.assertEqual(p.stdout.strip(), "p1: running")

        p = d.cli("pause", "p1")
        self.assertEqual(p.stdout.strip(), "p1: paused")
        self.assertEqual(d.vm("p1")["state"], "paused")
        self.assertTrue(self.hv_paused("p1"))
        self.assertFalse(answers(port), "a paused guest answered HTTP")
        st, o = d.api("POST", "/v1/vms/p1/pause")
        self.assertEqual(st, 200, o)  # already there: nothing to do
        st, o = d.api("POST", "/v1/vms/p1/start")
        self.assertEqual(st, 409, o)
        st, o = d.api("POST", "/v1/vms/p1/pause", {"force": True})
        self.assertEqual(st, 400, o)

        # Not an exit: no automatic restart, the same process.
        pid = self.qemu_pid_any("p1")
        time.sleep(3)
        v = d.vm("p1")
        self.assertEqual((v["state"], v["restarts"]), ("paused", 0))
        self.assertEqual(qemu_pids_for(vm["id"]), [pid])

        # kill -9 of the daemon while paused: still paused afterwards.
        d.kill9()
        d.start()
        wait_for(lambda: any(e["type"] == "adopt" for e in
                             d.api("GET", "/v1/vms/p1/events")[1]["events"]), 30, "re-adoption")
        self.assertEqual(d.vm("p1")["state"], "paused")
        self.assertTrue(self.hv_paused("p1"))
        self.assertEqual(qemu_pids_for(vm["id"]), [pid])
        self.assertFalse(answers(port))

        p = d.cli("resume", "p1")
        self.assertEqual(p.stdout.strip(), "p1: running")
        self.assertFalse(self.hv_paused("p1"))
        self.assertTrue(wait_for(lambda: answers(port), 15, "HTTP after the resume"))

        # Paused behind the daemon's back while it was down: reported so.
        d.kill9()
        self.outside_pause("p1", vm["id"])
        d.start()
        v = d.wait_state("p1", "paused", timeout=30)
        self.assertIn("re-adoption", v["reason"])
        d.cli("resume", "p1")
        self.assertTrue(wait_for(lambda: answers(port), 15, "HTTP after the second resume"))
        # Paused from outside while the daemon runs: a resume still resumes.
        self.outside_pause("p1", vm["id"])
        self.assertFalse(answers(port))
        p = d.cli("resume", "p1")
        self.assertEqual(p.stdout.strip(), "p1: running")
        self.assertTrue(wait_for(lambda: answers(port), 15, "HTTP after the third resume"))

        # A graceful stop of a paused VM powers the guest off.
        d.cli("pause", "p1")
        t0 = time.monotonic()
        d.cli("stop", "p1", "--timeout", "60")
        d.wait_state("p1", "stopped", timeout=90)
        self.assertIn("VM 'p1': powered off", d.read_log())
        self.assertLess(time.monotonic() - t0, 60)
        self.assertEqual(qemu_pids_for(vm["id"]), [])
        st, o = d.api("POST", "/v1/vms/p1/pause")
        self.assertEqual(st, 409, o)
        self.assertIn("is stopped, not running", o["error"]["message"])

        # Removing a paused VM: gone, process included.
        d.cli("start", "p1")
        d.wait_state("p1", "running", timeout=60)
        d.cli("pause", "p1")
        p = d.cli("remove", "p1")
        self.assertIn("removed", p.stdout)
        self.assertEqual(d.api("GET", "/v1/vms/p1")[0], 404)
        self.assertEqual(qemu_pids_for(vm["id"]), [])

    def qemu_pid_any(self, name):
        pids = qemu_pids_for(self.d.vm(name)["id"])
        self.assertEqual(len(pids), 1, pids)
        return pids[0]


per_backend(Pause, namespace=globals())

if __name__ == "__main__":
    unittest.main()
