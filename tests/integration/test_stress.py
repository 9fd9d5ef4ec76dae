"""Concurrency stress: 16 clients send random create / start / stop / kill /
restart / delete requests on 8 names for CVMM_STRESS_SECONDS (default 60)
against one real cvmmd, with real QEMU guests (image tiny, 1 vCPU, 256 MiB;
under TCG on two CPUs most of them never finish booting, which is fine: the
daemon's bookkeeping is what is on trial, not the guests).

The same test is the sanitizers' load: run it with CVMM_BUILD_DIR pointing
at the ASan+UBSan build (build-asan) and at the TSan build (build-tsan); the
harness reads the daemon's stderr (its log) for reports.

Every answer must be one the API documents for the request (2xx, or 404 /
409 for a VM that is gone, being created, being removed or in the wrong
state); a dropped connection or a 5xx is a failure. Once the clients stop
and no VM is starting, stopping or removing any more:
  - the daemon is alive, and its log holds no sanitizer report;
  - every listed VM has a valid manifest.json naming it, no VM folder exists
    without a listed VM, no manifest.json.tmp.* is left;
  - every running VM has exactly one QEMU; no QEMU runs for a VM not listed
    as running, nor any of this daemon's that no listed VM owns;
  - no <run_path>/vms/<id> exists for a VM that is not running.
Then every VM is deleted: nothing of them is left (folders, run dirs,
QEMUs, CIDs), and the daemon holds as many descriptors as before the load.

CVMM_STRESS_SEED makes a run repeatable as far as the threads allow.
"""
import collections
import os
import random
import threading
import time

from harness import (SANITIZER, DaemonTest, fd_targets, files_under, list_vms, manifest_problems,
                     process_problems, quiet_fd_count, sanitizer_report_text, sanitizer_reports, settle,
                     wait_for)

DURATION = float(os.environ.get("CVMM_STRESS_SECONDS", "60"))
CLIENTS = 16
NAMES = ["st%d" % i for i in range(8)]
# Sanitizers slow the daemon several times; a request may wait behind its
# VM's queue (a start, a graceful stop's timeout) but never this long.
REQUEST_TIMEOUT = 120
# Descriptors the daemon may hold after the load that it did not hold before
# it, at two quiet points (nothing created yet / everything deleted). The
# core of 1f868c6 held exactly as many (7 and 7, after two VMs created,
# started, restarted, stopped and deleted). The slack is for what a
# rewritten core may open on first use and keep for its lifetime: a
# per-VM-queue or per-thread wakeup eventfd made lazily, a directory
# descriptor for <run_path>/vms. Anything per VM or per request grows with
# the hundreds of requests sent and ends far above it.
FD_SLACK = 2

# What each request may be answered with, besides a connection that works.
ALLOWED = {
    "create": {201, 409},
    "start": {202, 404, 409},
    "stop": {202, 404, 409},
    "kill": {202, 404, 409},
    "restart": {202, 404, 409},
    "delete": {200, 404, 409},
}
WEIGHTS = [("create", 3), ("start", 3), ("stop", 2), ("kill", 2), ("restart", 2),
           ("delete", 2)]


class Stress(DaemonTest):
    maxDiff = None

    def request(self, rng, op, name):
        d = self.d
        if op == "create":
            body = {"name": name, "image": "tiny", "vcpu": 1, "memory_mb": 256,
                    "start": rng.random() < 0.7}
            return d.api("POST", "/v1/vms", body, timeout=REQUEST_TIMEOUT)
        if op == "delete":
            return d.api("DELETE", "/v1/vms/" + name, timeout=REQUEST_TIMEOUT)
        body = None
        if op == "stop":
            # A guest that has not booted ignores the power button: keep the
            # graceful wait short, and force half of the time.
            body = {"timeout": rng.randint(0, 2), "force": rng.random() < 0.5}
        return d.api("POST", "/v1/vms/%s/%s" % (name, op), body, timeout=REQUEST_TIMEOUT)

    def client(self, k, seed, deadline, stats, problems):
        rng = random.Random(seed * 100 + k)
        ops, weights = zip(*WEIGHTS)
        while time.monotonic() < deadline and len(problems) < 50:
            op = rng.choices(ops, weights)[0]
            name = rng.choice(NAMES)
            t0 = time.monotonic()
            try:
                st, o = self.request(rng, op, name)
            except Exception as e:  # a dropped connection or a timeout: the daemon failed
                problems.append("client %d: %s %s: %r after %.1f s (daemon %s)" % (
                    k, op, name, e, time.monotonic() - t0,
                    "alive" if self.d.proc.poll() is None else
                    "exited with %s" % self.d.proc.returncode))
                if self.d.proc.poll() is not None:
                    return
                continue
            stats[(op, st)] += 1
            if st not in ALLOWED[op]:
                problems.append("client %d: %s %s: %d %s" % (k, op, name, st, o))
            elif st == 409 and not (isinstance(o, dict) and
                                    o.get("error", {}).get("code") == "conflict"):
                problems.append("client %d: %s %s: 409 without code conflict: %s" % (
                    k, op, name, o))
            if op == "start" and st == 202 and o.get("state") != "starting":
                problems.append("client %d: start %s: 202 says state %r, not 'starting'" % (
                    k, name, o.get("state")))
            time.sleep(rng.random() * 0.05)

    def test_random_requests_from_16_clients(self):
        d = self.d
        seed = int(os.environ.get("CVMM_STRESS_SEED", str(int(time.time()))))
        print("\n  stress: %d clients, %d names, %.0f s, seed %d, cvmmd %s" % (
            CLIENTS, len(NAMES), DURATION, seed, SANITIZER or "plain"), flush=True)
        fds_before = quiet_fd_count(d.proc.pid)
        targets_before = fd_targets(d.proc.pid)

        stats = collections.Counter()
        problems = []
        deadline = time.monotonic() + DURATION
        threads = [threading.Thread(target=self.client, args=(k, seed, deadline, stats, problems))
                   for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = sum(stats.values())
        print("  %d answers (%.0f/s): %s" % (total, total / DURATION, ", ".join(
            "%s %d: %d" % (op, st, n) for (op, st), n in sorted(stats.items()))), flush=True)

        alive = d.proc.poll() is None
        reports = sanitizer_reports(d.read_log())
        self.assertTrue(alive and not reports,
                        "the daemon %s under load; sanitizer reports:\n%s\n--- log tail ---\n%s" % (
                            "survived" if alive else "died (%s)" % d.proc.returncode,
                            sanitizer_report_text(d.read_log()) or "none", d.read_log()[-6000:]))
        self.assertEqual(problems, [], "answers outside the API's contract")
        # Every kind of request got through at least once, or the load was
        # not what it claims.
        for op in ALLOWED:
            self.assertTrue(any(o == op for o, _ in stats), "no %s answered" % op)
        self.assertGreater(stats[("create", 201)], 0)
        self.assertGreater(stats[("delete", 200)], 0)

        vms = settle(d, timeout=300, what="jobs to settle after the load")
        print("  settled: %s" % ", ".join("%s %s" % (n, v["state"])
                                          for n, v in sorted(vms.items())), flush=True)
        self.assertEqual(manifest_problems(d, vms), [])
        self.assertEqual(process_problems(d, vms), [])
        run_vms = os.path.join(d.run, "vms")
        running = {v["id"] for v in vms.values() if v["state"] == "running"}
        stray = [f for f in (os.listdir(run_vms) if os.path.isdir(run_vms) else [])
                 if f not in running]
        self.assertEqual(stray, [], "run dirs of VMs that are not running")
        host = d.api("GET", "/v1/host")[1]
        self.assertEqual(host["cid_pool"]["used"], len(vms), host)

        # Everything goes; a VM still being created or removed answers 409
        # meanwhile, never anything else.
        for name in vms:
            wait_for(lambda: d.api("DELETE", "/v1/vms/" + name)[0] == 404, 120,
                     "%s to be deleted" % name, interval=0.5)
        self.assertEqual(list_vms(d), {})
        self.assertEqual(manifest_problems(d, {}), [])
        self.assertEqual(process_problems(d, {}), [])
        self.assertEqual(files_under(run_vms), [], "run dirs left after every delete")
        self.assertEqual(d.api("GET", "/v1/host")[1]["cid_pool"]["used"], 0)
        fds_after = quiet_fd_count(d.proc.pid)
        targets_after = fd_targets(d.proc.pid)
        new = sorted(t for fd, t in targets_after.items() if targets_before.get(fd) != t)
        print("  daemon fds: %d before, %d after; new: %s" % (fds_before, fds_after, new),
              flush=True)
        self.assertLessEqual(fds_after, fds_before + FD_SLACK,
                             "descriptors leaked; opened since before the load: %s" % new)
        # A clean stop must not report anything either (LeakSanitizer runs
        # at exit): the harness's cleanup raises if it does.
        d.stop()


if __name__ == "__main__":
    import unittest
    unittest.main()
