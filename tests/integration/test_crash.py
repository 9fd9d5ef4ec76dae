"""Crash injection: `kill -9 cvmmd` at CVMM_CRASH_KILLS (default 200) random
moments while VMs are created, started (real guests, image tiny), stopped,
restarted and removed; the daemon is started again after each kill.

The test keeps, for each name, the set of states the VM may be in, from the
answers actually received: a 201 / 200 / 202 pins it down, a request whose
answer was lost to the kill may or may not have been applied (both stay
possible), and what the restarted daemon shows must be one of them. Once
settled, a VM that should run runs with exactly one QEMU, one that should
not has none, an answered DELETE never comes back, and a VM whose create was
never answered either does not exist or is complete.

At every restart (cheap, always): whatever the kill left in the data dir —
a VM folder without a manifest, a manifest.json.tmp.* — is gone once the
daemon answers, and every listed VM has a valid manifest. Every
CVMM_CRASH_CHECK_EVERY kills (default 20) and at the end: the full check
after letting jobs settle (no VM starting / stopping / removing): desired
states reached, manifests, no orphan QEMU, no run dir of a VM that is not
running, no VM folder without a listed VM, the CID count. At the end every
VM is deleted and nothing of them may remain.

CVMM_CRASH_SEED makes a run repeatable as far as the timing allows.
"""
import os
import random
import threading
import time

from harness import (DaemonTest, files_under, list_vms, manifest_problems, process_problems,
                     settle, wait_for)

KILLS = int(os.environ.get("CVMM_CRASH_KILLS", "200"))
CHECK_EVERY = int(os.environ.get("CVMM_CRASH_CHECK_EVERY", "20"))
NAMES = ["cr%d" % i for i in range(6)]
GONE = (False, None)
OPS = [("create", 4), ("start", 3), ("stop", 2), ("kill", 2), ("restart", 2), ("delete", 3)]


def leftovers(data):
    """What an interrupted write or create/remove can leave in the data dir:
    VM folders without a manifest.json, and manifest.json.tmp.* files."""
    vms_dir = os.path.join(data, "vms")
    out = set()
    if os.path.isdir(vms_dir):
        for f in os.listdir(vms_dir):
            if not os.path.exists(os.path.join(vms_dir, f, "manifest.json")):
                out.add(os.path.join("vms", f))
    out.update(f for f in files_under(data) if ".tmp" in os.path.basename(f))
    return out


class CrashInjection(DaemonTest):
    maxDiff = None

    def setUp(self):
        super().setUp()
        # name -> set of possible (exists, desired): what the answers allow.
        self.possible = {n: {GONE} for n in NAMES}
        self.answers = {}

    # -- requests and what their answers teach --
    def send(self, op, name, start):
        d = self.d
        try:
            if op == "create":
                st, o = d.api("POST", "/v1/vms", {"name": name, "image": "tiny", "vcpu": 1,
                                                  "memory_mb": 128, "start": start}, timeout=20)
            elif op == "delete":
                st, o = d.api("DELETE", "/v1/vms/" + name, timeout=20)
            else:
                body = {"force": True} if op == "stop" else None
                st, o = d.api("POST", "/v1/vms/%s/%s" % (name, op), body, timeout=20)
        except Exception:  # the kill came first: nothing was answered
            st = None
        self.answers[name] = (op, start, st)

    def learn(self, name, op, start, st):
        old = self.possible[name]
        if op == "create":
            new = {(True, "running" if start else "stopped")}
            if st == 201:
                self.possible[name] = new
            elif st is None and GONE in old:
                self.possible[name] = old | new
        elif op == "delete":
            if st in (200, 404):
                self.possible[name] = {GONE}
            elif st is None:
                self.possible[name] = old | {GONE}
        else:
            want = "running" if op in ("start", "restart") else "stopped"
            if st == 202:
                self.possible[name] = {(True, want)}
            elif st == 404:
                self.possible[name] = {GONE}
            elif st is None:
                self.possible[name] = old | {(True, want) for e, _ in old if e}

    # -- checks --
    def quick_check(self, kill, before):
        """Right after a restart: the kill's leftovers are cleaned, every
        listed VM has a valid manifest."""
        d = self.d
        # At start, so before or shortly after the daemon answers: 5 s.
        end = time.monotonic() + 5
        while True:
            still = before & leftovers(d.data)
            if not still or time.monotonic() > end:
                break
            time.sleep(0.1)
        self.assertEqual(sorted(still), [], "kill %d: left by the kill, not cleaned at start"
                         % kill)
        vms = list_vms(d)
        bad = [p for p in manifest_problems(d, {n: v for n, v in vms.items()
                                                if v["state"] != "removing"})
               if not p.startswith("folder") and not p.startswith("temp file")]
        self.assertEqual(bad, [], "kill %d: listed VMs without a valid manifest" % kill)

    def full_check(self, kill):
        d = self.d
        vms = settle(d, timeout=240, what="jobs to settle after kill %d" % kill)
        problems = []
        for name in NAMES:
            vm = vms.get(name)
            seen = (True, vm["desired"]) if vm else GONE
            if seen not in self.possible[name]:
                problems.append("%s: is %s, but the answers allow only %s (last: %s)" % (
                    name, seen, sorted(self.possible[name], key=str), self.answers.get(name)))
            if vm and vm["desired"] == "running" and vm["state"] != "running":
                problems.append("%s: should run but is %s (%s)" % (name, vm["state"],
                                                                   vm.get("reason")))
            if vm and vm["desired"] == "stopped" and vm["state"] == "running":
                problems.append("%s: should be stopped but runs" % name)
            self.possible[name] = {seen}
        problems += manifest_problems(d, vms)
        problems += process_problems(d, vms)
        run_vms = os.path.join(d.run, "vms")
        running = {v["id"] for v in vms.values() if v["state"] == "running"}
        for f in os.listdir(run_vms) if os.path.isdir(run_vms) else []:
            if f not in running:
                problems.append("run dir vms/%s of a VM that is not running: %s" % (
                    f, files_under(os.path.join(run_vms, f))))
        used = d.api("GET", "/v1/host")[1]["cid_pool"]["used"]
        if used != len(vms):
            problems.append("cid_pool.used is %d with %d VMs" % (used, len(vms)))
        self.assertEqual(problems, [], "after kill %d" % kill)
        return vms

    def test_kill9_at_random_moments(self):
        d = self.d
        seed = int(os.environ.get("CVMM_CRASH_SEED", str(int(time.time()))))
        rng = random.Random(seed)
        ops, weights = zip(*OPS)
        print("\n  crash: %d kills, full check every %d, seed %d" % (KILLS, CHECK_EVERY, seed),
              flush=True)
        t0 = time.monotonic()
        answered = lost = 0
        for kill in range(1, KILLS + 1):
            # One request per name at most: the order of two for one name
            # on two connections is not known, so what they teach is not.
            batch = [(rng.choices(ops, weights)[0], n, rng.random() < 0.7)
                     for n in rng.sample(NAMES, rng.randint(1, 4))]
            self.answers = {}
            threads = [threading.Thread(target=self.send, args=b) for b in batch]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0, 0.3))
            d.kill9()
            for t in threads:
                t.join()
            for op, name, start in batch:
                st = self.answers[name][2]
                answered += st is not None
                lost += st is None
                self.learn(name, op, start, st)
            left = leftovers(d.data)
            d.start(timeout=60)
            self.quick_check(kill, left)
            if kill % CHECK_EVERY == 0 or kill == KILLS:
                vms = self.full_check(kill)
                print("  kill %d (%.0f s): %s" % (kill, time.monotonic() - t0, ", ".join(
                    "%s %s" % (n, v["state"]) for n, v in sorted(vms.items()))), flush=True)
        print("  %d kills in %.0f s; %d requests answered, %d lost to a kill" % (
            KILLS, time.monotonic() - t0, answered, lost), flush=True)

        for name in NAMES:
            wait_for(lambda: d.api("DELETE", "/v1/vms/" + name)[0] == 404, 120,
                     "%s to be deleted" % name, interval=0.5)
        self.assertEqual(list_vms(d), {})
        self.assertEqual(manifest_problems(d, {}), [])
        self.assertEqual(process_problems(d, {}), [])
        self.assertEqual(files_under(os.path.join(d.run, "vms")), [])
        self.assertEqual(d.api("GET", "/v1/host")[1]["cid_pool"]["used"], 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
