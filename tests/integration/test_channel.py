"""The guest channel and cvmm-agent with real guests (TCG), once per backend
(per_backend adds the libvirt copy). The tiny guest carries cvmm-agent
(scripts/build-test-guest.sh); its kernel command line tells the agent how to
behave, so the test makes image variants of 'tiny' that differ only in their
metadata.json's cmdline:

  tiny-stop   heartbeats every second, stops after 30 (a hung agent)
  tiny-flood  phones home, then behaves like a hostile guest: malformed,
              oversized (6 KiB, 2 MiB) and spoofed messages (claiming to be
              VM 'victim'), then floods valid messages for 15 s, then
              heartbeats again, and powers off (saying "powering off") after
              a while

Checked: phone-home and boot progress in the events, Info and GetSealingKey
answered (the agent's phone-home carries what the host said; GetSealingKey by
the test-sealing plugin's handler, which answers 'victim' and refuses others), heartbeats
counted in `cvmm info`, 'unresponsive' within cvm.agent.unresponsive_after
once the agent stops, the flood leaving the daemon and the other VM
unaffected (API p99 measured during it, the victim's heartbeats go on, the
daemon's memory does not grow), the spoofed message landing on the flooder's
own VM, the reader running without root and under seccomp with nothing but
its two descriptors, a new reader after `kill -9 cvmmd`, and a guest that
said "powering off" not being restarted."""
import json
import os
import shutil
import signal
import tempfile
import time
import unittest

from harness import IMAGES, SANITIZER, DaemonTest, per_backend, pid_alive, wait_for

UNRESPONSIVE_AFTER = 6


def make_images(root):
    """tiny, tiny-stop and tiny-flood under root (copies of IMAGES/tiny)."""
    src = os.path.join(IMAGES, "tiny")
    with open(os.path.join(src, "metadata.json")) as f:
        meta = json.load(f)
    variants = {
        "tiny": "",
        "tiny-stop": " cvmm.agent_interval=1 cvmm.agent_stop_after=30",
        "tiny-flood": " cvmm.agent_interval=1 cvmm.agent_flood=1 cvmm.agent_flood_s=15"
                      " cvmm.agent_spoof=victim cvmm.agent_poweroff_after=40",
    }
    for name, extra in variants.items():
        dst = os.path.join(root, name)
        os.makedirs(dst)
        for k in ("kernel", "initrd", "hda"):
            if meta.get(k):
                shutil.copy(os.path.join(src, meta[k]), os.path.join(dst, meta[k]))
        m = dict(meta, cmdline=meta["cmdline"] + extra)
        with open(os.path.join(dst, "metadata.json"), "w") as f:
            json.dump(m, f)


def readers():
    """{pid: argv} of every cvmm-chanreader."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"cvmm-chanreader"):
            out[int(p)] = [a.decode() for a in argv if a]
    return out


def reader_of(vm_id):
    pids = [p for p, a in readers().items() if vm_id in a]
    return pids[0] if len(pids) == 1 else None


def status_field(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].split()
    return None


def rss_kb(pid):
    return int(status_field(pid, "VmRSS")[0])


def p99(samples):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


class GuestChannel(DaemonTest):
    def setUp(self):
        self.images = tempfile.mkdtemp(prefix="cvmm-chan-img-")
        make_images(self.images)
        self.daemon_args = dict(image_path=self.images,
                                plugins=("backend-qemu", "net-user", "test-sealing"))
        self.ids = []
        super().setUp()
        # cvm.agent lives in the cvm group the harness writes: added to the
        # config, then the daemon restarted on it.
        self.d.stop()
        with open(self.d.conf) as f:
            conf = f.read()
        conf = conf.replace("cvm = {", "cvm = {\n  agent = { unresponsive_after = %d; };" %
                            UNRESPONSIVE_AFTER, 1)
        with open(self.d.conf, "w") as f:
            f.write(conf)
        self.d.start()

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            shutil.rmtree(self.images, ignore_errors=True)
        left = [p for p, a in readers().items() if any(i in a for i in self.ids)]
        self.assertEqual(left, [], "channel readers left behind")

    def events(self, name):
        st, o = self.d.api("GET", "/v1/vms/%s/events" % name)
        return o["events"] if st == 200 else []

    def guest(self, name):
        return (self.d.vm(name) or {}).get("guest", {})

    def test_agent_flood_unresponsive_adoption_poweroff(self):
        d = self.d
        victim = d.create("victim", image="tiny-stop")
        flooder = d.create("flooder", image="tiny-flood")
        self.ids += [victim["id"], flooder["id"]]
        # Phone-home, boot progress, Info and GetSealingKey (no key provider).
        g = wait_for(lambda: self.guest("victim").get("agent") == "ready" and
                     self.guest("victim"), 120, "victim's agent to phone home")
        self.assertEqual(g["hello"]["host_name"], "victim", "Info answered another name")
        # GetSealingKey went to the plugin's handler, for this VM.
        self.assertEqual(g["hello"]["sealing"], "key received")
        self.assertEqual(g["boot_progress"], "cvmm-agent started")
        ev = self.events("victim")
        self.assertTrue(any(e["type"] == "guest" and "boot.progress: cvmm-agent started" in
                            e["message"] for e in ev), ev)
        self.assertTrue(any(e["type"] == "agent" and "phoned home" in e["message"] for e in ev))
        # The reader: not root, seccomp'd, holding only its descriptors.
        rpid = wait_for(lambda: reader_of(victim["id"]), 10, "victim's reader")
        uids = status_field(rpid, "Uid")
        self.assertNotIn("0", uids, "reader runs with uid %s" % uids)
        self.assertNotIn("0", status_field(rpid, "Gid"))
        self.assertEqual(status_field(rpid, "Groups"), [])
        # Sanitizer builds run it without its seccomp filter (chanreader.c).
        self.assertEqual(status_field(rpid, "Seccomp"), ["0" if SANITIZER else "2"])
        self.assertEqual(status_field(rpid, "NoNewPrivs"), ["1"])
        self.assertEqual(sorted(int(f) for f in os.listdir("/proc/%d/fd" % rpid)),
                         [0, 1, 2, 3, 4])
        # Heartbeats counted; shown by `cvmm info`.
        wait_for(lambda: self.guest("victim").get("heartbeats", 0) >= 2, 30, "heartbeats")
        info = d.cli("info", "victim").stdout
        self.assertRegex(info, r"Guest:\s+agent ready, [1-9][0-9]* heartbeats, channel connected")
        # The flood: the daemon answers, the victim goes on.
        wait_for(lambda: self.guest("flooder").get("agent") == "ready", 120,
                 "flooder's agent to phone home")
        self.assertEqual(self.guest("flooder")["hello"]["sealing"], "quote refused for VM flooder")
        rss0 = rss_kb(d.proc.pid)
        hb0 = self.guest("victim")["heartbeats"]
        lat = []
        end = time.monotonic() + 10
        while time.monotonic() < end:
            t = time.monotonic()
            st, _ = d.api("GET", "/v1/vms")
            lat.append(time.monotonic() - t)
            self.assertEqual(st, 200)
            time.sleep(0.02)
        fl = wait_for(lambda: self.guest("flooder").get("dropped", 0) > 0 and
                      self.guest("flooder"), 30, "the flooder's messages to be dropped")
        print("\nchannel flood (%s): API GET /v1/vms p50 %.1f ms, p99 %.1f ms over %d requests;"
              " flooder dropped %d, refused %d; daemon RSS %d -> %d KiB" % (
                  self.backend, sorted(lat)[len(lat) // 2] * 1e3, p99(lat) * 1e3, len(lat),
                  fl["dropped"], fl["refused"], rss0, rss_kb(d.proc.pid)))
        self.assertLess(p99(lat), 1.0, "API p99 during a guest's flood")
        self.assertGreaterEqual(fl["refused"], 5, fl)  # malformed, oversized, unknown
        self.assertLess(rss_kb(d.proc.pid), rss0 + 20 * 1024, "daemon memory grew in the flood")
        # One VM cannot speak for another. (The daemon's log, which has every
        # event: the flooder's events.log is cut back to its newest ones.)
        self.assertFalse(any("spoofed" in e["message"] for e in self.events("victim")))
        log = d.read_log()
        self.assertIn("VM 'flooder': guest: boot.progress: spoofed: claims to be victim", log)
        self.assertNotIn("VM 'victim': guest: boot.progress: spoofed", log)
        self.assertTrue(any("channel flooded" in e["message"] for e in self.events("flooder")))
        # The victim's heartbeats went on through the flood.
        hb1 = self.guest("victim")["heartbeats"]
        self.assertGreaterEqual(hb1 - hb0, 5, "victim's heartbeats during the flood")
        # Its agent stops after 30 heartbeats: unresponsive, in the events
        # and in info, within the configured time.
        t0 = time.monotonic()
        wait_for(lambda: self.guest("victim").get("agent") == "unresponsive",
                 UNRESPONSIVE_AFTER + 30, "victim to be unresponsive")
        last = self.guest("victim")["last_heartbeat"]
        ev = [e for e in self.events("victim") if "unresponsive" in e["message"]]
        self.assertEqual(len(ev), 1, ev)
        self.assertLess(ev[0]["time"] - last, UNRESPONSIVE_AFTER + 3)
        self.assertGreaterEqual(ev[0]["time"] - last, UNRESPONSIVE_AFTER)
        self.assertIn("unresponsive", d.cli("info", "victim").stdout)
        # kill -9 the daemon: its readers go; the next daemon makes new ones.
        old = reader_of(flooder["id"])
        d.kill9()
        wait_for(lambda: not pid_alive(old), 10, "the old reader to end with its daemon")
        d.start()
        new = wait_for(lambda: reader_of(flooder["id"]), 30, "a new reader for the flooder")
        self.assertNotEqual(new, old)
        wait_for(lambda: self.guest("flooder").get("heartbeats", 0) >= 2, 30,
                 "heartbeats after re-adoption")
        # The flooder powers off after its 40th heartbeat, saying so: its
        # exit is not restarted.
        vm = d.wait_state("flooder", ("exited", "stopped"), timeout=120)
        time.sleep(3)
        vm = d.vm("flooder")
        self.assertIn(vm["state"], ("exited", "stopped"), vm)
        self.assertEqual(vm["desired"], "stopped")
        self.assertTrue(any("powering off" in e["message"] for e in self.events("flooder")))
        d.cli("remove", "victim")
        d.cli("remove", "flooder")
        self.assertIsNone(reader_of(victim["id"]))


per_backend(GuestChannel, namespace=globals())

if __name__ == "__main__":
    unittest.main()
