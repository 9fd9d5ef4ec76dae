"""The attacks and accidents of issue 7, each reproduced against the real
daemon: requests for one VM at the same instant, a kill -9 while a VM
starts, abandoned log followers, slow clients before authentication, a
list storm, leftovers of interrupted creates and removes. Every test asserts
what a user would notice: the daemon still answers, the VM is where it was
asked to be, no descriptor or folder is left behind."""
import json
import os
import socket
import threading
import time
import unittest

from harness import (Daemon, DaemonTest, fd_count, qemu_pids_for, wait_for)


def at_once(*calls):
    """Runs each call on its own thread, released together; returns results."""
    barrier = threading.Barrier(len(calls))
    out = [None] * len(calls)

    def run(i, fn):
        barrier.wait()
        try:
            out[i] = fn()
        except Exception as e:  # noqa: BLE001 - reported by the caller
            out[i] = e
    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


class Races(DaemonTest):
    def assert_alive(self):
        self.assertIsNone(self.d.proc.poll(), "cvmmd died:\n" + self.d.read_log()[-3000:])
        st, _ = self.d.api("GET", "/v1/host")
        self.assertEqual(st, 200)

    def test_two_deletes_at_once(self):
        for round_ in range(5):
            name = "dd%d" % round_
            self.d.create(name, start=False)
            r = at_once(lambda: self.d.api("DELETE", "/v1/vms/" + name),
                        lambda: self.d.api("DELETE", "/v1/vms/" + name))
            codes = sorted(x[0] for x in r)
            # One removal; the other is refused as conflicting or finds nothing.
            self.assertEqual(codes[0], 200, r)
            self.assertIn(codes[1], (404, 409), r)
            self.assert_alive()
            self.assertIsNone(self.d.vm(name))
        self.assertEqual(os.listdir(os.path.join(self.d.data, "vms")), [])

    def test_delete_and_start_at_once(self):
        for round_ in range(5):
            name = "ds%d" % round_
            self.d.create(name, start=False)
            r = at_once(lambda: self.d.api("DELETE", "/v1/vms/" + name),
                        lambda: self.d.api("POST", "/v1/vms/%s/start" % name))
            self.assertEqual(r[0][0], 200, r)
            self.assertIn(r[1][0], (202, 404, 409), r)
            self.assert_alive()
            wait_for(lambda: self.d.vm(name) is None, 30, "VM gone")
            vm_dirs = os.listdir(os.path.join(self.d.data, "vms"))
            self.assertEqual(vm_dirs, [])
        self.assertNotIn("removing -> starting", self.d.read_log())

    def test_create_and_delete_of_one_name(self):
        for round_ in range(10):
            name = "cd%d" % round_
            r = at_once(lambda: self.d.api("POST", "/v1/vms",
                                           {"name": name, "image": "tiny", "start": False}),
                        lambda: self.d.api("DELETE", "/v1/vms/" + name))
            self.assertIn(r[0][0], (201,), r)
            self.assertIn(r[1][0], (200, 404, 409), r)
            self.assert_alive()
            if r[1][0] != 200:
                self.assertEqual(self.d.api("DELETE", "/v1/vms/" + name)[0], 200)
        self.assertEqual(os.listdir(os.path.join(self.d.data, "vms")), [])
        st, host = self.d.api("GET", "/v1/host")
        self.assertEqual(host["cid_pool"]["used"], 0)

    def test_requests_for_a_removing_vm_conflict(self):
        self.d.create("rm1")
        self.d.wait_state("rm1", "running")
        results = {}

        def delete():
            results["delete"] = self.d.api("DELETE", "/v1/vms/rm1")
        t = threading.Thread(target=delete)
        t.start()
        wait_for(lambda: (self.d.vm("rm1") or {}).get("state") in ("stopping", "removing", None)
                 or not t.is_alive(), 30, "the removal to begin")
        later = [self.d.api("POST", "/v1/vms/rm1/%s" % a)[0] for a in ("start", "stop", "restart")]
        t.join(60)
        self.assertEqual(results["delete"][0], 200)
        for code in later:
            self.assertIn(code, (404, 409))
        self.assertEqual(qemu_pids_for(results["delete"][1]["removed"]), [])

    def test_start_answers_starting(self):
        self.d.create("st1", start=False)
        st, o = self.d.api("POST", "/v1/vms/st1/start")
        self.assertEqual(st, 202)
        self.assertEqual(o["state"], "starting")
        self.d.wait_state("st1", "running")
        self.assertEqual(self.d.api("DELETE", "/v1/vms/st1")[0], 200)


class CrashResume(DaemonTest):
    def test_kill9_while_starting_runs_again(self):
        """A VM the user asked to run runs again after a kill -9 at any point
        of its start, with exactly one QEMU."""
        for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4):
            name = "k%d" % int(delay * 1000)
            o = self.d.create(name, start=False)
            st, _ = self.d.api("POST", "/v1/vms/%s/start" % name)
            self.assertEqual(st, 202)
            time.sleep(delay)
            self.d.kill9()
            self.d.start()
            self.d.wait_state(name, "running", timeout=60)
            wait_for(lambda: len(qemu_pids_for(o["id"])) == 1, 30, "one QEMU for " + name)
            time.sleep(0.5)
            self.assertEqual(len(qemu_pids_for(o["id"])), 1)
            self.assertEqual(self.d.vm(name)["desired"], "running")
            self.assertEqual(self.d.api("DELETE", "/v1/vms/" + name)[0], 200)
            self.assertEqual(qemu_pids_for(o["id"]), [])

    def test_leftovers_cleaned_at_start(self):
        o = self.d.create("keep", start=False)
        self.d.kill9()
        vms = os.path.join(self.d.data, "vms")
        orphan = os.path.join(vms, "11111111-2222-3333-4444-555555555555")
        os.makedirs(orphan)
        trash = os.path.join(vms, ".removed-11111111-2222-3333-4444-666666666666")
        os.makedirs(trash)
        tmp = os.path.join(vms, o["id"], "manifest.json.tmp.123")
        open(tmp, "w").close()
        run_orphan = os.path.join(self.d.run, "vms", "11111111-2222-3333-4444-777777777777")
        os.makedirs(run_orphan)
        self.d.start()
        self.assertEqual(sorted(os.listdir(vms)), [o["id"]])
        self.assertFalse(os.path.exists(tmp))
        self.assertFalse(os.path.exists(run_orphan))
        self.assertEqual(self.d.vm("keep")["state"], "defined")


class Starvation(DaemonTest):
    def test_abandoned_followers_are_dropped(self):
        self.d.create("f1")
        self.d.wait_state("f1", "running")
        self.d.wait_ready("f1")  # the guest is quiet from here on
        before = fd_count(self.d.proc.pid)
        socks = []
        for _ in range(100):
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.d.sock)
            s.sendall(b"GET /v1/vms/f1/logs?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        wait_for(lambda: fd_count(self.d.proc.pid) >= before + 100, 10, "100 followers")
        for s in socks:
            s.close()
        wait_for(lambda: fd_count(self.d.proc.pid) <= before + 2, 5,
                 "the followers' descriptors to go")
        t0 = time.monotonic()
        self.assertEqual(self.d.api("GET", "/v1/vms")[0], 200)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual(self.d.api("DELETE", "/v1/vms/f1")[0], 200)

    def test_slow_clients_cannot_hold_the_api(self):
        socks = []
        for _ in range(600):
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            try:
                s.connect(self.d.sock)
            except BlockingIOError:
                pass
            try:
                s.send(b"G")
            except OSError:
                pass
            socks.append(s)
        try:
            t0 = time.monotonic()
            st, _ = self.d.api("GET", "/v1/host")
            self.assertEqual(st, 200)
            self.assertLess(time.monotonic() - t0, 12)
            # The header deadline frees their slots: the fds go.
            wait_for(lambda: fd_count(self.d.proc.pid) < 200, 30, "slow clients to be shut")
        finally:
            for s in socks:
                s.close()
        self.assertIsNone(self.d.proc.poll())


if __name__ == "__main__":
    unittest.main()
