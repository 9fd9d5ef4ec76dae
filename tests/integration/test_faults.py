"""Fault injection at every step: the test-fail plugin fails, and separately
hangs past cvm.hook_timeout, at each lifecycle event (define, prepare,
pre_start, started), for every network mode (user, passt, bridge, host,
overlay) on both backends (QEMU, and libvirt with a private libvirtd in the
host namespace). 4 events x 2 kinds x 5 modes x 2 backends = 80 cases.

Each mode x backend is one test: a network namespace stands in for the host
(cvmmd, and libvirtd for the libvirt backend, run inside it; the modes that
need an outside — host's LAN segment, overlay's underlay — get a second
namespace on a veth). One cvmmd serves all 8 cases of a test: test-fail's
from_name mode reads the fault from the VM's name ("fail-prestart-3",
"hang-define-0"). A hang sleeps HANG_SECONDS, just past the daemon's
hook_timeout, then returns success: only the timeout can fail that step.

After each case, as a user would check: the step failed with the plugin's
message (or "plugin test-fail: event <ev> did not finish within 2 s"), the
stage's undo ran, the VM is gone once deleted (a failed define leaves no VM
at all), and nothing leaked: links, bridges, FDB entries and addresses in
the namespace, the nft ruleset, listening TCP/UDP ports, processes in the
namespace (QEMU, passt, dnsmasq), files under the run and data dirs, CIDs
(GET /v1/host cid_pool.used), libvirt domains, and the daemon's
descriptors — each back to what it was before the first case.
"""
import os
import re
import time
import unittest

from harness import (cleanup_daemons, BACKENDS, IMAGES, LibvirtInNetns, Netns, NetnsDaemon,
                     files_under, pid_alive, qemu_pids_for, sh, wait_for)

HOOK_TIMEOUT = 2
HANG_SECONDS = 3
EVENTS = (("define", "define", "undefine"), ("prepare", "prepare", "cleanup"),
          ("pre_start", "prestart", "post_stop"), ("started", "started", "stopping"))
KINDS = ("fail", "hang")
PORT = 27080


def tcp(port):
    return {"protocol": "tcp", "host_address": "127.0.0.1", "host_port": port, "vm_port": 8080}


class Faults:
    """One mode on one backend; the test classes below set mode (and, with
    LibvirtInNetns, backend)."""
    maxDiff = None
    mode = None
    backend = "qemu"

    # -- the host namespace, and what each mode needs around it --
    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root")
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s: run scripts/build-test-guest.sh" % IMAGES)
        self.daemons = []
        self.namespaces = []
        self.ns = self.netns("cvt-flt")
        if self.mode == "passt":
            # passt wants an external interface: the one of the default
            # route (a veth pair inside the namespace; no dummy module here).
            self.ns.ip("link", "add", "ext0", "type", "veth", "peer", "name", "ext1")
            self.ns.ip("addr", "add", "10.98.0.1/24", "dev", "ext0")
            self.ns.ip("link", "set", "ext1", "up")
            self.ns.ip("link", "set", "ext0", "up")
            self.ns.ip("route", "add", "default", "via", "10.98.0.254")
        elif self.mode == "host":
            self.lan = self.netns("cvt-fltl")
            sh("ip", "link", "add", "hnic", "netns", self.ns.name, "type", "veth", "peer",
               "name", "seg", "netns", self.lan.name)
            self.ns.ip("link", "set", "hnic", "up")
            self.lan.ip("link", "set", "seg", "up")
        elif self.mode == "overlay":
            self.peer = self.netns("cvt-fltp")
            sh("ip", "link", "add", "u0", "netns", self.ns.name, "type", "veth", "peer", "name",
               "u0", "netns", self.peer.name)
            for ns, addr in ((self.ns, "10.99.0.1/24"), (self.peer, "10.99.0.2/24")):
                ns.ip("addr", "add", addr, "dev", "u0")
                ns.ip("link", "set", "u0", "up")

    def netns(self, name):
        ns = Netns(name)
        self.namespaces.append(ns)
        return ns

    def tearDown(self):
        problems = []
        try:
            problems += cleanup_daemons(self.daemons)
        finally:
            for ns in self.namespaces:
                ns.close()
        if problems:
            self.fail("\n".join(problems))

    def libvirt_netns(self):
        return [self.ns]

    def plugin_config(self):
        """(plugins, plugin sections) of this mode."""
        plugins = ["backend-qemu", "net-user", "test-fail"]
        sections = ("test-fail = { from_name = true; hang_seconds = %d; };" % HANG_SECONDS)
        if self.mode == "passt":
            plugins.append("net-passt")
        elif self.mode == "bridge":
            plugins.append("net-bridge")
            sections += (' net-bridge = { managed = { name = "cvfbr0"; subnet = '
                         '"192.168.124.0/24"; }; dnsmasq_log = "@DIR@/dnsmasq.log"; };')
        elif self.mode == "host":
            plugins.append("net-host")
            sections += ' net-host = { interface = "hnic"; macvtap_mode = "bridge"; };'
        elif self.mode == "overlay":
            plugins.append("net-overlay")
            sections += (' net-overlay = { vni = 4343; local = "10.99.0.1"; interface = "u0"; '
                         'peers = [ "10.99.0.2" ]; subnet = "10.201.0.0/16"; '
                         'slice = "10.201.1.0/24"; };')
        return tuple(plugins), sections

    def hook_timeout_conf(self, text):
        return text.replace("cvm = {\n", "cvm = {\n  hook_timeout = %d;\n" % HOOK_TIMEOUT, 1)

    def daemon(self):
        plugins, sections = self.plugin_config()
        kw = {}
        if self.backend == "libvirt":
            kw = dict(backend="libvirt", libvirt_uri=self.lv.uri)
        d = NetnsDaemon(self.ns, plugins=plugins, plugin_sections=sections, **kw)
        # dnsmasq (bridge mode) reads its hosts file as "nobody".
        os.chmod(d.dir, 0o711)
        with open(d.conf) as f:
            text = f.read().replace("@DIR@", d.dir)
        with open(d.conf, "w") as f:
            f.write(self.hook_timeout_conf(text))
        self.daemons.append(d)
        return d.start()

    def body(self, name):
        b = {"name": name, "image": "tiny", "vcpu": 1, "memory_mb": 128,
             "networks": [{"mode": self.mode}]}
        if self.mode in ("user", "passt", "bridge"):  # host and overlay refuse mappings
            b["ports"] = [tcp(PORT)]
        return b

    # -- what a leak would change --
    def ns_pids(self):
        pids = sh("ip", "netns", "pids", self.ns.name, check=False).stdout.split()
        return sorted(int(p) for p in pids if pid_alive(int(p)))

    def snapshot(self, d):
        s = self.ns.snapshot()
        s["nft ruleset"] = self.ns.run("nft", "list", "ruleset").stdout
        s["listening"] = sorted(self.ns.run("ss", "-Htuln").stdout.split("\n"))
        s["processes in the namespace"] = self.ns_pids()
        s["run files"] = [f for f in files_under(d.run) if f != "vms"]
        s["data files"] = [f for f in files_under(d.data) if f != "vms"]
        s["cids used"] = d.api("GET", "/v1/host")[1]["cid_pool"]["used"]
        s["daemon fds"] = d.fds()
        if self.backend == "libvirt":
            s["libvirt domains"] = self.lv.domains(all=True)
        return s

    def same_as(self, d, before, what, timeout=15):
        """Waits for the snapshot to equal before (a link just deleted takes
        its FDB entries a moment later), then asserts it does."""
        end = time.monotonic() + timeout
        while True:
            now = self.snapshot(d)
            if now == before or time.monotonic() > end:
                break
            time.sleep(0.3)
        self.assertEqual(now, before, "leaked by " + what)

    # -- one fault --
    def expected(self, kind, event):
        if kind == "fail":
            return re.escape("test-fail: failing on purpose at " + event)
        # What the user must read: the plugin, the event, the limit. The
        # brief's wording ("plugin X: event Y did not ...") and the core's
        # ("plugin X at Y did not ...") both say it.
        return (r"plugin test-fail(: event| at) %s did not finish within %d s" %
                (event.replace("_", "[_-]"), HOOK_TIMEOUT))

    def case(self, d, kind, event, tag, undo, k):
        name = "%s-%s-%d" % (kind, tag, k)
        try:
            return self._case(d, name, kind, event, undo)
        finally:
            # A case that went wrong must not spoil the next ones: its VM goes.
            if d.api("GET", "/v1/vms/" + name)[0] != 404:
                wait_for(lambda: d.api("DELETE", "/v1/vms/" + name, timeout=60)[0] == 404, 60,
                         "%s to be deleted" % name, interval=0.5)

    def _case(self, d, name, kind, event, undo):
        t0 = time.monotonic()
        st, o = d.api("POST", "/v1/vms", self.body(name), timeout=60)
        if event == "define":
            self.assertNotEqual(st, 201, "%s: the create succeeded: %s" % (name, o))
            self.assertTrue(400 <= st < 600, (st, o))
            self.assertRegex(o["error"]["message"], self.expected(kind, event))
            wait_for(lambda: d.api("GET", "/v1/vms/" + name)[0] == 404, 10,
                     "the VM of a failed define to be gone")
        else:
            self.assertEqual(st, 201, o)
            vm = d.wait_state(name, ("failed", "running"), timeout=60)
            self.assertEqual(vm["state"], "failed", "%s: the fault did not fail the start" % name)
            self.assertRegex(vm["reason"], self.expected(kind, event))
            self.assertEqual(qemu_pids_for(vm["id"]), [])
            st, o = d.api("DELETE", "/v1/vms/" + name, timeout=60)
            self.assertEqual(st, 200, o)
            self.assertEqual(d.api("GET", "/v1/vms/" + name)[0], 404)
        took = time.monotonic() - t0
        if kind == "hang":
            # The step gave up at the timeout, not when the hook returned.
            self.assertLess(took, HANG_SECONDS + 10)
            wait_for(lambda: "VM '%s': %s woke up after hanging" % (name, event) in d.read_log(),
                     HANG_SECONDS + 5, "the hung hook of %s to return" % name)
        log = d.read_log()
        # The undo of the failing stage ran, for test-fail's own hook too.
        self.assertIn("VM '%s': undo %s ran" % (name, undo), log)
        if event in ("pre_start", "started"):
            # The fault came after the network was set up: it was, then undone.
            proof = {"passt": r"VM '%s': networks\[0\]: passt pid \d+",
                     "bridge": r"VM '%s': networks\[0\]: TAP cv\w+ on bridge",
                     "host": r"VM '%s': networks\[0\]: macvtap",
                     "overlay": r"VM '%s': networks\[0\]: TAP"}.get(self.mode)
            if proof:
                self.assertRegex(log, proof % re.escape(name))
        return took

    def test_every_event_fails_and_hangs_without_leaks(self):
        t0 = time.monotonic()
        d = self.daemon()
        # Warm up: one VM up and gone, so that what the first start makes
        # once and keeps (<run>/vms) is in the before picture.
        d.create("warmup", **{k: v for k, v in self.body("warmup").items() if k != "name"})
        vm = d.wait_state("warmup", ("running", "failed"), timeout=90)
        self.assertEqual(vm["state"], "running", vm.get("reason"))
        self.assertEqual(d.api("DELETE", "/v1/vms/warmup", timeout=60)[0], 200)
        before = self.snapshot(d)
        self.assertEqual(before["cids used"], 0)
        times = []
        k = 0
        for event, tag, undo in EVENTS:
            for kind in KINDS:
                k += 1
                with self.subTest(event=event, kind=kind):
                    times.append("%s/%s %.1f s" % (kind, event,
                                                   self.case(d, kind, event, tag, undo, k)))
                    self.same_as(d, before, "%s at %s" % (kind, event))
        print("\n    %s on %s: %s; %.0f s in all" % (self.mode, self.backend, ", ".join(times),
                                                    time.monotonic() - t0), end=" ... ")


class User(Faults, unittest.TestCase):
    mode = "user"


class Passt(Faults, unittest.TestCase):
    mode = "passt"


class Bridge(Faults, unittest.TestCase):
    mode = "bridge"


class Host(Faults, unittest.TestCase):
    mode = "host"


class Overlay(Faults, unittest.TestCase):
    mode = "overlay"


def _per_backend(*classes):
    """User_libvirt, ...: the same tests on the libvirt backend, with a
    private libvirtd in the host namespace (harness.LibvirtInNetns)."""
    for cls in classes:
        if "libvirt" in BACKENDS:
            name = cls.__name__ + "_libvirt"
            globals()[name] = type(name, (LibvirtInNetns, cls), {
                "__module__": __name__, "libvirt_netns": Faults.libvirt_netns})
        if "qemu" not in BACKENDS:
            del globals()[cls.__name__]


_per_backend(User, Passt, Bridge, Host, Overlay)


if __name__ == "__main__":
    unittest.main()
