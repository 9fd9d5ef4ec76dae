"""Lifecycle through the real daemon and CLI, on real QEMU guests (TCG):
boot line in `cvmm logs`, graceful stop, a mapped port answering from the
guest, re-adoption after `kill -9 cvmmd`, auto-restart after `kill -9` of a
QEMU, and undo of a start that a plugin fails half-way."""
import os
import signal
import subprocess
import time
import unittest

from harness import (BOOT_TIMEOUT, CVMM, READY, Daemon, DaemonTest, http_get, port_open, pid_alive,
                     qemu_pids_for, wait_for)


class BootAndStop(DaemonTest):
    def test_boot_line_port_and_graceful_stop(self):
        d = self.d
        out = d.cli("create", "web1", "--image", "tiny", "--port", "127.0.0.1:23080:8080").stdout
        self.assertIn("web1", out)
        vm = d.wait_state("web1", "running")
        d.wait_ready("web1")
        # The service in the guest answers on the mapped host port.
        status, body = wait_for(lambda: port_open(23080) and http_get(23080), 30, "port 23080")
        self.assertEqual(status, 200)
        self.assertIn("hello from cvmm-tiny web1", body)
        listing = d.cli("list").stdout
        self.assertRegex(listing, r"web1\s+\S+\s+running")
        pid = vm["pid"]
        self.assertTrue(pid_alive(pid))
        # Graceful: the guest sees the power button and powers itself off.
        d.cli("stop", "web1", "--timeout", "30")
        d.wait_state("web1", "stopped", timeout=45)
        self.assertFalse(pid_alive(pid))
        self.assertIn("power button, powering off", d.logs("web1"))
        self.assertFalse(port_open(23080), "the mapped port still answers after stop")
        self.assertFalse(os.path.exists(os.path.join(d.run, "vms", vm["id"])),
                         "run directory left after stop")
        events = d.api("GET", "/v1/vms/web1/events")[1]["events"]
        self.assertTrue(any("running -> stopping" in e["message"] for e in events))
        d.cli("remove", "web1")
        self.assertEqual(d.cli("info", "web1", check=False).returncode, 4)
        self.assertFalse(os.path.exists(os.path.join(d.data, "vms", vm["id"])))

    def test_logs_follow_streams_until_ready(self):
        d = self.d
        d.create("follow1")
        env = dict(os.environ, CVMM_SOCKET=d.sock)
        p = subprocess.Popen([CVMM, "logs", "-f", "follow1"], env=env, stdout=subprocess.PIPE,
                             text=True)
        try:
            seen = []
            end = time.monotonic() + BOOT_TIMEOUT
            for line in p.stdout:
                seen.append(line)
                if READY in line or time.monotonic() > end:
                    break
            self.assertTrue(any(READY in l for l in seen), "no ready line streamed: %s" % seen[-5:])
        finally:
            p.kill()
            p.wait()
        d.cli("kill", "follow1")
        d.wait_state("follow1", "stopped")
        d.cli("remove", "follow1")


class Readoption(DaemonTest):
    def test_kill9_daemon_with_three_vms(self):
        d = self.d
        names = ["ra1", "ra2", "ra3"]
        for i, n in enumerate(names):
            d.create(n, ports=[{"protocol": "tcp", "host_port": 24080 + i, "vm_port": 8080}])
        pids = {n: d.wait_state(n, "running")["pid"] for n in names}
        d.kill9()
        for n in names:
            self.assertTrue(pid_alive(pids[n]), "%s's QEMU died with the daemon" % n)
        d.start()
        for n in names:
            vm = d.wait_state(n, "running", timeout=30)
            self.assertEqual(vm["pid"], pids[n], "%s was not re-adopted (new pid)" % n)
        self.assertRegex(d.cli("list").stdout, r"ra3\s+\S+\s+running")
        # The re-adopted VMs are fully manageable: a guest answers, all stop.
        d.wait_ready("ra1")
        wait_for(lambda: port_open(24080) and http_get(24080)[0] == 200, 30, "port 24080")
        for n in names:
            d.cli("kill", n)
        for n in names:
            d.wait_state(n, "stopped")
            self.assertFalse(pid_alive(pids[n]))
            d.cli("remove", n)
        self.assertEqual(d.api("GET", "/v1/host")[1]["cid_pool"]["used"], 0)


class AutoRestart(DaemonTest):
    def test_qemu_killed_is_restarted(self):
        d = self.d
        d.create("ar1")
        first = d.wait_state("ar1", "running")["pid"]
        os.kill(first, signal.SIGKILL)
        vm = wait_for(lambda: (lambda v: v if v and v["state"] == "running" and v["pid"] not in
                               (0, first) else None)(d.vm("ar1")), 60, "ar1 to be restarted")
        self.assertEqual(vm["restarts"], 1)
        self.assertFalse(pid_alive(first))
        events = d.api("GET", "/v1/vms/ar1/events")[1]["events"]
        self.assertTrue(any(e["type"] == "auto-restart" for e in events), events)
        d.wait_ready("ar1")
        d.cli("kill", "ar1")
        d.wait_state("ar1", "stopped")
        d.cli("remove", "ar1")

    def test_retries_are_bounded(self):
        d = self.d
        d.create("ar2")
        for attempt in range(4):  # max_retries = 3 in the harness config
            vm = wait_for(lambda: (lambda v: v if v and v["state"] == "running" and v["pid"]
                                   else None)(d.vm("ar2")), 60, "ar2 running (%d)" % attempt)
            os.kill(vm["pid"], signal.SIGKILL)
            wait_for(lambda: not pid_alive(vm["pid"]), 10, "QEMU to die")
            if attempt < 3:
                wait_for(lambda: d.vm("ar2")["pid"] not in (0, vm["pid"]), 60, "a restart")
        vm = wait_for(lambda: (lambda v: v if v["desired"] == "stopped" else None)(d.vm("ar2")),
                      30, "auto-restart to give up")
        self.assertEqual(vm["state"], "exited")
        events = d.api("GET", "/v1/vms/ar2/events")[1]["events"]
        self.assertTrue(any("gave up after 3" in e["message"] for e in events), events)
        self.assertEqual(qemu_pids_for(vm["id"]), [])
        d.cli("remove", "ar2")


def snapshot(d, vm_id):
    """What a VM's start could leave behind on the host."""
    run = os.path.join(d.run, "vms", vm_id)
    return {
        "qemu": qemu_pids_for(vm_id),
        "run_files": sorted(os.listdir(run)) if os.path.isdir(run) else [],
        "port": port_open(25080),
    }


class FailingPlugin(DaemonTest):
    daemon_args = dict(plugins=("backend-qemu", "net-user", "test-fail"),
                       plugin_sections='test-fail = { event = "pre_start"; };')

    def test_start_failing_at_pre_start_leaves_nothing(self):
        d = self.d
        vm = d.create("bad1", ports=[{"protocol": "tcp", "host_port": 25080, "vm_port": 8080}])
        vm = d.wait_state("bad1", "failed")
        self.assertIn("failing on purpose at pre_start", vm["reason"])
        self.assertEqual(snapshot(d, vm["id"]), {"qemu": [], "run_files": [], "port": False})
        # The CLI shows the plugin's message to the user.
        self.assertIn("failing on purpose", d.cli("info", "bad1").stdout)
        # Removing returns the CID and the port to the pools.
        d.cli("remove", "bad1")
        host = d.api("GET", "/v1/host")[1]
        self.assertEqual(host["cid_pool"]["used"], 0)
        self.assertEqual(host["usage"]["vcpu"], 0)
        self.assertFalse(os.path.exists(os.path.join(d.data, "vms", vm["id"])))
        st, _ = d.api("POST", "/v1/vms", {"name": "again", "image": "tiny", "start": False,
                                          "ports": [{"host_port": 25080, "vm_port": 80}]})
        self.assertEqual(st, 201, "the port of the failed VM is still taken")
        d.cli("remove", "again")


class FailingAfterLaunch(DaemonTest):
    daemon_args = dict(plugins=("backend-qemu", "net-user", "test-fail"),
                       plugin_sections='test-fail = { event = "started"; };')

    def test_start_failing_after_launch_kills_qemu(self):
        d = self.d
        vm = d.create("bad2", ports=[{"protocol": "tcp", "host_port": 25080, "vm_port": 8080}])
        vm = d.wait_state("bad2", "failed")
        self.assertIn("failing on purpose at started", vm["reason"])
        self.assertEqual(snapshot(d, vm["id"]), {"qemu": [], "run_files": [], "port": False})
        d.cli("remove", "bad2")


if __name__ == "__main__":
    unittest.main()
