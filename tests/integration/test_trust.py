"""The trust chain of a confidential VM through the real daemon: the
key-provider, kms, gateway and confidential plugins against loopback
stand-ins speaking the real wire formats (standins.py).

GetSealingKey, GetKmsConfig and GetGatewayConfig come from a real guest
over the guest channel (the tiny guest's cvmm-agent asks at boot, claiming
to be another VM, and reports what it got as agent.config events), and so
does the sys-config document it reads from fw_cfg; the failure modes are
reached through the plugins' test routes (guest_calls_route = true): the
same C functions, with the VM being the route's VM. Confidential launch on
the libvirt backend is refused by a real libvirtd's domain capabilities.
"""
import glob
import json
import os
import shutil
import tempfile
import time
import unittest

from harness import Daemon, qemu_pids_for, shared_libvirtd, wait_for, IMAGES
from standins import Gateway, KeyProvider, Kms, signer_of


class Base(unittest.TestCase):
    plugins = ("backend-qemu", "net-user")

    def start_daemon(self, sections):
        if os.geteuid() != 0:
            self.fail("needs root: run the tests as root (a test that cannot run fails)")
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s" % IMAGES)
        self.d = Daemon(plugins=self.plugins, plugin_sections=sections)
        self.d.start()

    def tearDown(self):
        d = getattr(self, "d", None)
        if d:
            log = d.read_log()
            left = d.cleanup()
            if left:
                self.fail("QEMU processes left behind: %s\n%s" % (left, log[-2000:]))

    def events(self, vm, kind):
        st, o = self.d.api("GET", "/v1/vms/%s/events" % vm)
        self.assertEqual(st, 200, o)
        return [e["message"] for e in o["events"] if e["type"] == kind]


class KeyProviderTest(Base):
    plugins = ("backend-qemu", "net-user", "key-provider")

    def setUp(self):
        self.kp = KeyProvider()
        self.start_daemon('key-provider = { address = "127.0.0.1"; port = %d; timeout_ms = 1000; '
                          'connect_timeout_ms = 500; guest_calls_route = true; };' % self.kp.port)
        self.d.create("kp", start=False)

    def tearDown(self):
        self.kp.close()
        super().tearDown()

    def call(self, quote="000102feff"):
        t = time.monotonic()
        st, o = self.d.api("POST", "/v1/vms/kp/guest-sealing-key", {"quote": quote})
        return st, o, time.monotonic() - t

    def test_sealing_key_answered_and_failures_reported(self):
        st, o, _ = self.call()
        self.assertEqual(st, 200, o)
        self.assertEqual(self.kp.quotes[-1], bytes.fromhex("000102feff"))
        self.assertEqual(o["encrypted_key"], (b"sealed:" + bytes.fromhex("000102feff")).hex())
        self.assertEqual(o["provider_quote"], "abcd")

        cases = [("slow", "no answer within"), ("wrong", "encrypted_key"),
                 ("close", "closed the connection")]
        for mode, words in cases:
            self.kp.mode = mode
            st, o, took = self.call()
            self.assertEqual(st, 502, (mode, o))
            self.assertIn(words, o["error"]["message"], mode)
            self.assertLess(took, 2.5, "%s: the 1 s timeout bounds the call" % mode)
        self.kp.close()  # not there at all
        st, o, _ = self.call()
        self.assertEqual(st, 502, o)
        self.assertIn("Connection refused", o["error"]["message"])
        # A bad request is the guest's error, not the provider's.
        st, o, _ = self.call("zz")
        self.assertEqual(st, 400, o)

        ev = self.events("kp", "key-provider")
        self.assertEqual(len(ev), 6, ev)
        self.assertIn("sealing key delivered", ev[0])
        for line, words in zip(ev[1:4], [c[1] for c in cases]):
            self.assertIn("GetSealingKey failed", line)
            self.assertIn(words, line)
        for line in ev:
            self.assertNotIn("\n", line)

    def test_unknown_vm(self):
        st, o = self.d.api("POST", "/v1/vms/nope/guest-sealing-key", {"quote": "00"})
        self.assertEqual(st, 404, o)

    def test_sealing_key_from_a_real_guest(self):
        """The tiny guest's cvmm-agent asks GetSealingKey over the guest
        channel at boot: the key provider gets the agent's quote from this
        VM's channel, and the guest gets the key (its phone-home says so)."""
        n = len(self.kp.quotes)
        self.d.create("kpg")
        def hello():
            st, o = self.d.api("GET", "/v1/vms/kpg")
            g = o.get("guest") or {}
            return g if g.get("agent") == "ready" else None
        g = wait_for(hello, 180, "kpg's agent to phone home")
        self.assertEqual(g["hello"]["sealing"], "key received", g)
        self.assertGreater(len(self.kp.quotes), n, "the key provider saw no quote")
        ev = self.events("kpg", "key-provider")
        self.assertTrue(any("sealing key delivered" in e for e in ev), ev)
        # The other VM (never started) asked nothing.
        self.assertEqual(self.events("kp", "key-provider"), [])
        st, o = self.d.api("DELETE", "/v1/vms/kpg")
        self.assertEqual(st, 200, o)


GOOD = "11" * 32
BAD = "22" * 32


class KmsTest(Base):
    plugins = ("backend-qemu", "net-user", "kms")

    def setUp(self):
        self.good, self.bad = Kms(GOOD), Kms(BAD)
        self.addr, self.comp = signer_of(GOOD)
        self.start_daemon('kms = { urls = [ "%s" ]; trusted_signers = [ "%s" ]; timeout_ms = 3000; '
                          'guest_calls_route = true; };' % (self.bad.url, self.addr))

    def tearDown(self):
        self.good.close()
        self.bad.close()
        super().tearDown()

    def test_signature_checked(self):
        app = "ab" * 20
        # The host default is the KMS signing with the wrong key: refused.
        st, o = self.d.api("POST", "/v1/kms/env-pubkey", {"app_id": app})
        self.assertEqual(st, 502, o)
        self.assertIn("not in plugin.kms.trusted_signers", o["error"]["message"])
        self.assertIn(signer_of(BAD)[0], o["error"]["message"])
        # The right key: accepted, v1 (timestamped) signature preferred.
        st, o = self.d.api("POST", "/v1/kms/env-pubkey", {"app_id": app, "kms_urls": [self.good.url]})
        self.assertEqual(st, 200, o)
        self.assertEqual(o["signer"], self.addr)
        self.assertEqual(o["signer_pubkey"], self.comp)
        self.assertEqual(o["signature_version"], "v1")
        self.assertEqual(len(bytes.fromhex(o["public_key"])), 32)
        self.assertEqual(self.good.requests[-1], ("/prpc/GetAppEnvEncryptPubKey?json", {"app_id": app}))
        # A KMS that is not there.
        st, o = self.d.api("POST", "/v1/kms/env-pubkey",
                           {"app_id": app, "kms_urls": ["http://127.0.0.1:9"]})
        self.assertEqual(st, 502, o)

    def test_vm_urls_win_and_env_pubkey(self):
        self.d.create("own", start=False, kms_urls=[self.good.url], app_id="cd" * 20)
        self.d.create("dflt", start=False, app_id="cd" * 20)
        st, o = self.d.api("GET", "/v1/vms/own/env-pubkey")
        self.assertEqual(st, 200, o)
        self.assertEqual(o["kms_url"], self.good.url)
        self.assertEqual(self.d.vm("own")["kms"]["urls_from"], "vm")
        self.assertEqual(self.d.vm("dflt")["kms"]["urls"], [self.bad.url])
        st, o = self.d.api("GET", "/v1/vms/dflt/env-pubkey")
        self.assertEqual(st, 502, o)
        ev = self.events("dflt", "kms")
        self.assertEqual(len(ev), 1, ev)
        self.assertIn("env-encryption key refused", ev[0])
        for bad in ({"kms_urls": ["ftp://x"]}, {"app_id": "xyz"}, {"encrypted_env": "00"},
                    {"kms_urls": "http://x"}):
            st, o = self.d.api("POST", "/v1/vms", dict(name="bad", image="tiny", start=False, **bad))
            self.assertEqual(st, 400, (bad, o))

    def test_signature_timestamp_fresh(self):
        """signature_v1 carries the KMS's timestamp: one older than
        plugin.kms.signature_max_age (300 s here) or ahead of this host's
        clock by more than signature_max_skew (60 s) is refused, although
        the signature itself is good (a real secp256k1 key)."""
        app = "ab" * 20
        old, future, near = Kms(GOOD, ts_offset=-3600), Kms(GOOD, ts_offset=3600), Kms(GOOD, ts_offset=20)
        try:
            st, o = self.d.api("POST", "/v1/kms/env-pubkey", {"app_id": app, "kms_urls": [old.url]})
            self.assertEqual(st, 502, o)
            self.assertIn("older than plugin.kms.signature_max_age = 300 s", o["error"]["message"])
            st, o = self.d.api("POST", "/v1/kms/env-pubkey", {"app_id": app, "kms_urls": [future.url]})
            self.assertEqual(st, 502, o)
            self.assertIn("in the future", o["error"]["message"])
            # Within the skew: accepted; and a stale KMS first in the list
            # does not stop the next, fresh one.
            st, o = self.d.api("POST", "/v1/kms/env-pubkey",
                               {"app_id": app, "kms_urls": [old.url, near.url]})
            self.assertEqual(st, 200, o)
            self.assertEqual((o["kms_url"], o["signature_version"]), (near.url, "v1"))
        finally:
            for k in (old, future, near):
                k.close()

    def test_env_file_encrypted_in_cli(self):
        secret = "hunter2-%d" % os.getpid()
        with tempfile.NamedTemporaryFile("w", suffix=".env", delete=False) as f:
            f.write("# app secrets\nexport SECRET=%s\nPLAIN='a b'\n" % secret)
        try:
            app = "ef" * 20
            p = self.d.cli("create", "envvm", "--image", "tiny", "--no-start", "--env-file", f.name,
                           "--app-id", app, "--kms-url", self.good.url)
            self.assertIn(self.addr, p.stderr)
            # Untrusted KMS: refused, nothing created.
            p = self.d.cli("create", "envvm2", "--image", "tiny", "--no-start", "--env-file",
                           f.name, "--kms-url", self.bad.url, check=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIsNone(self.d.vm("envvm2"))
        finally:
            os.unlink(f.name)
        # The daemon holds no plain secret anywhere on disk.
        for path in glob.glob(os.path.join(self.d.data, "**"), recursive=True):
            if os.path.isfile(path):
                with open(path, "rb") as fh:
                    self.assertNotIn(secret.encode(), fh.read(), path)
        st, o = self.d.api("GET", "/v1/vms/envvm/guest-kms-config")
        self.assertEqual(st, 200, o)
        self.assertEqual(o["kms_urls"], [self.good.url])
        self.assertEqual(o["app_id"], app)
        plain = json.loads(self.good.decrypt(app, o["encrypted_env"]))
        self.assertEqual(plain, {"env": [{"key": "SECRET", "value": secret},
                                         {"key": "PLAIN", "value": "a b"}]})


class GatewayTest(Base):
    plugins = ("backend-qemu", "net-user", "gateway")

    def setUp(self):
        self.up, self.down = Gateway(), Gateway("down")
        self.start_daemon('gateway = { base_domain = "example.test"; port = 8443; agent_port = 8090; '
                          'timeout_ms = 2000; retry_initial_ms = 200; retry_max_ms = 1000; '
                          'guest_calls_route = true; };')

    def tearDown(self):
        super().tearDown()
        self.up.close()
        self.down.close()

    def test_guest_told_its_gateway(self):
        a = self.d.create("gwg", start=False, gateway_urls=[self.up.url])
        st, o = self.d.api("GET", "/v1/vms/gwg/guest-gateway-config")
        self.assertEqual(st, 200, o)
        self.assertEqual(o["gateway_urls"], [self.up.url])
        self.assertEqual(o["app_url"], self.d.vm("gwg")["gateway"]["app_url"])
        self.assertIn(a["id"].replace("-", ""), o["app_url"])
        self.assertEqual((o["base_domain"], o["port"], o["agent_port"]), ("example.test", 8443, 8090))
        for bad in (["ftp://x"], "http://x", ["http://a b"]):
            st, o = self.d.api("POST", "/v1/vms", {"name": "b", "image": "tiny", "start": False,
                                                     "gateway_urls": bad})
            self.assertEqual(st, 400, (bad, o))

    def start_time(self, name):
        t = time.monotonic()
        st, o = self.d.api("POST", "/v1/vms/%s/start" % name)
        self.assertEqual(st, 202, o)
        self.d.wait_state(name, "running", timeout=60)
        return time.monotonic() - t

    def test_register_forget_and_outage_never_blocks(self):
        a = self.d.create("gwa", start=False, gateway_urls=[self.up.url])
        self.d.create("gwb", start=False, gateway_urls=[self.down.url])
        c = self.d.create("gwc", start=False)
        inst = a["id"].replace("-", "")
        port = self.up.url.rsplit(":", 1)[1]
        self.assertEqual(self.d.vm("gwa")["gateway"]["app_url"],
                         "https://%s-8090.127.0.0.1:%s" % (inst, port))
        self.assertEqual(self.d.vm("gwc")["gateway"]["app_url"],
                         "https://%s-8090.example.test:8443" % c["id"].replace("-", ""))
        times = {"up": [], "down": []}
        for rnd in range(2):
            for name, kind in (("gwa", "up"), ("gwb", "down")):
                times[kind].append(self.start_time(name))
                if kind == "up":
                    wait_for(lambda: inst in self.up.instances, 10, "registration")
                    self.assertEqual(self.up.instances[inst]["app_url"],
                                     self.d.vm("gwa")["gateway"]["app_url"])
                    self.assertIn("registered", self.d.vm("gwa")["gateway"]["registration"])
                else:
                    wait_for(lambda: "failed" in self.d.vm("gwb")["gateway"]["registration"],
                             10, "a failed registration to be shown")
                st, o = self.d.api("POST", "/v1/vms/%s/stop" % name, {"force": True})
                self.assertEqual(st, 202, o)
                self.d.wait_state(name, ("stopped", "exited"), timeout=60)
                if kind == "up":
                    wait_for(lambda: inst not in self.up.instances, 10, "removal")
        print("\n  start -> running, gateway up: %s s; gateway down (no answer, 2 s timeout): %s s"
              % (["%.3f" % x for x in times["up"]], ["%.3f" % x for x in times["down"]]))
        # Never blocked: a silent gateway costs the start nothing like its
        # 2 s timeout (medians, on a shared 2-CPU host).
        self.assertLess(sorted(times["down"])[0], sorted(times["up"])[-1] + 1.0)
        methods = [c[0] for c in self.up.calls]
        self.assertEqual(methods, ["POST", "DELETE", "POST", "DELETE"])


class GuestTrustTest(Base):
    """A real guest asks for its KMS and gateway over the guest channel and
    reads its sys-config document from fw_cfg; it claims (in and beside
    its requests) to be another VM and still gets only its own."""
    plugins = ("backend-qemu", "net-user", "kms", "gateway")

    def setUp(self):
        self.gw = Gateway()
        self.images = tempfile.mkdtemp(prefix="cvmm-trust-img-")
        os.makedirs(os.path.join(self.images, "tiny"))
        src = os.path.join(IMAGES, "tiny")
        for f in os.listdir(src):
            if not f.startswith("."):
                shutil.copy(os.path.join(src, f), os.path.join(self.images, "tiny", f))
        if os.geteuid() != 0:
            self.fail("needs root: run the tests as root (a test that cannot run fails)")
        self.d = Daemon(plugins=self.plugins, image_path=self.images, plugin_sections=(
            'kms = { urls = [ "http://127.0.0.1:9/host-kms" ]; }; '
            'gateway = { base_domain = "example.test"; port = 8443; agent_port = 8090; '
            'timeout_ms = 1000; retry_initial_ms = 200; retry_max_ms = 1000; };'))
        self.d.start()

    def tearDown(self):
        # The booted guest goes with its VM, before the daemon stops.
        d = getattr(self, "d", None)
        if d and d.vm("tg"):
            st, o = d.api("DELETE", "/v1/vms/tg")
            self.assertEqual(st, 200, o)
        super().tearDown()
        self.gw.close()
        shutil.rmtree(self.images, ignore_errors=True)

    def spoofing_image(self, other):
        """Image tiny-spoof: tiny whose agent claims to be VM `other`."""
        dst = os.path.join(self.images, "tiny-spoof")
        shutil.copytree(os.path.join(self.images, "tiny"), dst)
        with open(os.path.join(dst, "metadata.json")) as f:
            meta = json.load(f)
        meta["cmdline"] += " cvmm.agent_spoof=%s cvmm.agent_spoof_id=%s" % (other["name"], other["id"])
        with open(os.path.join(dst, "metadata.json"), "w") as f:
            json.dump(meta, f)

    def test_guest_gets_its_own_kms_gateway_and_sys_config(self):
        t0 = time.monotonic()
        other = self.d.create("other", start=False, kms_urls=["http://127.0.0.1:9/other-kms"],
                              gateway_urls=["http://127.0.0.1:9/other-gw"], app_id="0d" * 20)
        self.spoofing_image(other)
        own_kms = "http://127.0.0.1:9/tg-kms"
        tg = self.d.create("tg", image="tiny-spoof", kms_urls=[own_kms],
                           gateway_urls=[self.gw.url], app_id="cd" * 20)
        inst = tg["id"].replace("-", "")

        def hello():
            g = (self.d.vm("tg") or {}).get("guest") or {}
            return g if g.get("agent") == "ready" else None
        wait_for(hello, 180, "tg's agent to phone home")
        boot = time.monotonic() - t0
        got = {}
        sys_config = []
        for e in self.events("tg", "guest"):
            if not e.startswith("agent.config: "):
                continue
            what, _, text = e[len("agent.config: "):].partition(" ")
            if what == "sys-config":
                sys_config.append(text)
            else:
                got[what] = json.loads(text)
        # Its own KMS, gateway and app URL, not other's nor the host's.
        kms = got["GetKmsConfig"]
        self.assertEqual(kms.get("id"), 3, kms)
        self.assertEqual(kms["result"]["kms_urls"], [own_kms], kms)
        self.assertEqual(kms["result"]["app_id"], "cd" * 20, kms)
        gw = got["GetGatewayConfig"]["result"]
        self.assertEqual(gw["gateway_urls"], [self.gw.url], gw)
        self.assertEqual(gw["app_url"], self.d.vm("tg")["gateway"]["app_url"])
        self.assertIn(inst, gw["app_url"])
        # The document from fw_cfg: the same, and the VM's identity.
        self.assertTrue(sys_config and not sys_config[0].startswith("none"), sys_config)
        doc = json.loads("{" + ",".join(sys_config) + "}")
        self.assertEqual((doc["vm_id"], doc["instance_id"], doc["name"]), (tg["id"], inst, "tg"))
        self.assertEqual(doc["kms_urls"], [own_kms])
        self.assertEqual(doc["app_id"], "cd" * 20)
        self.assertEqual(doc["gateway_urls"], [self.gw.url])
        self.assertEqual(doc["app_url"], gw["app_url"])
        self.assertEqual((doc["base_domain"], doc["gateway_port"], doc["agent_port"]),
                         ("example.test", 8443, 8090))
        # The VM it claimed to be heard nothing and was told nothing.
        self.assertEqual(self.events("other", "guest"), [])
        for text in list(got.values()) + [doc]:
            self.assertNotIn("other-kms", json.dumps(text))
            self.assertNotIn("other-gw", json.dumps(text))
        # The launch: one fw_cfg entry, the file in the VM's run dir.
        args = []
        for pid in qemu_pids_for(tg["id"]):
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                args = f.read().decode().split("\0")
        fw = [a for a in args if a.startswith("name=opt/cvmm/sys-config.json,file=")]
        self.assertEqual(len(fw), 1, args)
        print("\n  create -> agent reported its trust config: %.1f s" % boot)


class GuestTrustLibvirtTest(Base):
    """The same on the libvirt backend (a private real libvirtd; the fw_cfg
    entry reaches its QEMU through <qemu:commandline>), for a VM without
    lists of its own: the host's default KMS list is what it is told."""

    def test_host_default_over_channel_and_fw_cfg(self):
        from libvirtd import missing_tools
        if os.geteuid() != 0:
            self.fail("needs root: run the tests as root (a test that cannot run fails)")
        if missing_tools():
            self.fail("libvirt's daemons missing: %s" % missing_tools())
        self.d = Daemon(plugins=("backend-qemu", "net-user", "kms", "gateway"), backend="libvirt",
                        libvirt_uri=shared_libvirtd().uri,
                        plugin_sections='kms = { urls = [ "http://127.0.0.1:9/host-kms" ]; };')
        self.d.start()
        vm = self.d.create("lvg")
        try:
            wait_for(lambda: ((self.d.vm("lvg") or {}).get("guest") or {}).get("agent") == "ready",
                     180, "lvg's agent to phone home")
            ev = [e for e in self.events("lvg", "guest") if e.startswith("agent.config: ")]
            kms = [json.loads(e.split(" ", 2)[2]) for e in ev if " GetKmsConfig " in e]
            self.assertEqual(kms[0]["result"]["kms_urls"], ["http://127.0.0.1:9/host-kms"], ev)
            self.assertIn('agent.config: sys-config "kms_urls":["http://127.0.0.1:9/host-kms"]', ev)
            self.assertIn('agent.config: sys-config "vm_id":"%s"' % vm["id"], ev)
        finally:
            st, o = self.d.api("DELETE", "/v1/vms/lvg")
            self.assertEqual(st, 200, o)


class LibvirtConfidentialTest(Base):
    """Confidential launch on the libvirt backend, with a real libvirtd:
    what its domain capabilities allow decides. This host's libvirt (9.0,
    TCG) says <sev supported='no'/> and knows no TDX or SEV-SNP; the
    confidential plugin's own host checks are passed with a stand-in sysfs
    root (KVM device, kvm_amd sev=Y, /dev/sev) so that libvirt's is the
    refusal seen."""

    def setUp(self):
        from libvirtd import missing_tools
        if os.geteuid() != 0:
            self.fail("needs root: run the tests as root (a test that cannot run fails)")
        missing = missing_tools()
        if missing:
            self.fail("libvirt's daemons missing: %s (libvirt-daemon-system)" % missing)
        self.root = tempfile.mkdtemp(prefix="cvmm-cc-root-")
        for rel, text in (("dev/kvm", ""), ("dev/sev", ""),
                          ("sys/module/kvm_amd/parameters/sev", "Y\n")):
            path = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        fw = os.path.join(self.root, "OVMF.fd")
        open(fw, "w").close()
        self.lv = shared_libvirtd()
        self.d = Daemon(plugins=("backend-qemu", "net-user", "confidential"), backend="libvirt",
                        libvirt_uri=self.lv.uri,
                        plugin_sections='confidential = { sysfs = "%s"; firmware_sev = "%s"; };'
                        % (self.root, fw))
        self.d.start()

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.root, ignore_errors=True)

    def test_refused_by_domain_capabilities_and_checked(self):
        st, h = self.d.api("GET", "/v1/host")
        self.assertEqual(st, 200, h)
        self.assertTrue(h["confidential"]["sev"]["supported"], h["confidential"])
        vm = self.d.create("ccl", start=False, confidential={"type": "sev"})
        st, o = self.d.api("POST", "/v1/vms/ccl/start")
        self.assertEqual(st, 202, o)
        v = self.d.wait_state("ccl", "failed", timeout=30)
        self.assertIn("confidential.type 'sev': libvirt 9.0.0 at %s cannot launch it "
                      "(domain type qemu): its domain capabilities say <sev supported='no'/>"
                      % self.lv.uri, v["reason"])
        self.assertEqual(qemu_pids_for(vm["id"]), [])
        self.assertNotIn("ccl", self.lv.virsh("list", "--all").stdout)
        st, rep = self.d.api("GET", "/v1/host/check")
        self.assertEqual(st, 200, rep)
        items = {i["name"]: i for i in rep["items"]}
        want = {"sev": "its domain capabilities say <sev supported='no'/>",
                "sev-snp": "its domain capabilities have no <sev-snp> feature (this libvirt "
                           "does not know sev-snp guests)",
                "tdx": "its domain capabilities have no <tdx> feature (this libvirt does not "
                       "know tdx guests)"}
        for t, why in want.items():
            i = items["libvirt_confidential_" + t]
            self.assertEqual(i["status"], "warn", i)
            self.assertIn("cannot launch %s guests: %s" % (t, why), i["detail"])
            self.assertTrue(i["fix"], i)
        out = self.d.cli("check", check=False).stdout
        self.assertIn("libvirt_confidential_sev", out)


class ConfidentialTest(Base):
    plugins = ("backend-qemu", "net-user", "confidential")

    def setUp(self):
        self.start_daemon("")

    def test_host_report_and_refusal(self):
        st, h = self.d.api("GET", "/v1/host")
        self.assertEqual(st, 200, h)
        cc = h["confidential"]
        for t in ("tdx", "sev-snp", "sev"):
            self.assertFalse(cc[t]["supported"], cc)
            self.assertIn("/dev/kvm", cc[t]["why"])
        self.assertIn("no tdx-guest object", cc["tdx"]["why"])
        self.assertIn("no sev-snp-guest object", cc["sev-snp"]["why"])
        self.assertTrue(cc["sev"]["qemu_object"])  # QEMU 7.2 knows sev-guest
        # The readiness report (cvmm check) lists each type, optional: warn.
        st, rep = self.d.api("GET", "/v1/host/check")
        self.assertEqual(st, 200, rep)
        items = {i["name"]: i for i in rep["items"]}
        for t in ("tdx", "sev-snp", "sev"):
            i = items["confidential_" + t]
            self.assertEqual(i["status"], "warn", i)
            self.assertIn("cannot be launched", i["detail"])
            self.assertIn("/dev/kvm", i["detail"])
            self.assertTrue(i["fix"], i)
        out = self.d.cli("check", check=False).stdout
        self.assertIn("confidential_tdx", out)
        for bad in ({"type": "bogus"}, {"type": "sev", "mrconfigid": "AAAA"},
                    {"type": "tdx", "cbitpos": 51}, {"type": "sev", "extra": 1}, "tdx"):
            st, o = self.d.api("POST", "/v1/vms", {"name": "x", "image": "tiny", "start": False,
                                                     "confidential": bad})
            self.assertEqual(st, 400, (bad, o))
        # A dry run renders what a start would, and this host's TCG refuses.
        st, o = self.d.api("POST", "/v1/vms?dry_run=1", {"name": "x", "image": "tiny",
                                                         "confidential": {"type": "tdx"}})
        self.assertNotEqual(st, 200, o)
        self.assertIn("KVM only", json.dumps(o))
        vm = self.d.create("cc", start=False, confidential={"type": "sev", "kernel_hashes": True})
        st, o = self.d.api("POST", "/v1/vms/cc/start")
        self.assertEqual(st, 202, o)
        v = self.d.wait_state("cc", "failed", timeout=30)
        self.assertIn("confidential sev: this host cannot launch it", v["reason"])
        self.assertIn("/dev/kvm", v["reason"])
        self.assertEqual(qemu_pids_for(vm["id"]), [])


if __name__ == "__main__":
    unittest.main()
