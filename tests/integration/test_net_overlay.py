"""Network mode "overlay" (plugins/net-overlay) on real QEMU guests: two
network namespaces act as two hosts joined by a veth "underlay"
(10.99.0.1/24 and 10.99.0.2/24, MTU 1400), each runs its own cvmmd with the
overlay configured (VNI 4242, peers = the other host, slices 10.200.1.0/24
and 10.200.2.0/24 of 10.200.0.0/16), and one guest each.

What is checked, as a user would see it:
  - each guest prints the static address it was given on its kernel command
    line, from its own host's slice;
  - across the overlay, each guest's HTTP service answers from the other
    host's namespace. The tiny guest has no HTTP client to start on demand,
    so "guest to guest" is checked from the other host's bridge, which is
    the same path up to the last hop: bridge -> VXLAN -> underlay -> VXLAN ->
    bridge -> TAP -> guest;
  - the MTU is the underlay's minus 50 on bridge, VXLAN device and TAP, and
    the guest uses it too (its TCP MSS, seen from a client whose route
    allows more, is 1350 - 40);
  - the per-host devices and the FDB entries to the peer exist while a VM
    runs there and are gone after the last one stops;
  - kill -9 of a daemon with its VM running: the VM keeps running and keeps
    answering, the restarted daemon re-adopts it, and stop + remove then
    leave nothing behind;
  - leak soak: 50 create/start/stop/remove cycles plus 10 starts that fail
    half-way (test-fail at pre_start, after the network is set up, and at
    started, after QEMU runs): links, bridges, FDB entries, addresses,
    files under the run directory and the daemon's descriptors are the
    same before and after;
  - addresses: first free in the slice, never the gateway or the slice's
    edges, kept across daemon restarts, released at remove, a clear error
    when the slice is full; port mappings refused with a clear message.
"""
import os
import unittest

from harness import (NetSoak, cleanup_daemons, CVMMD, IMAGES, LibvirtInNetns, Netns, NetnsDaemon,
                     files_under, pid_alive, sh, wait_for)

VNI = 4242
BRIDGE = "cvobr%d" % VNI
VXLAN = "cvovx%d" % VNI
UNDERLAY_MTU = 1400
OVERLAY_MTU = UNDERLAY_MTU - 50
PLUGINS = ("backend-qemu", "net-user", "net-overlay")


def overlay_section(local, peer, slice_, extra=""):
    return ('net-overlay = { vni = %d; local = "%s"; interface = "u0"; peers = [ "%s" ]; '
            'subnet = "10.200.0.0/16"; slice = "%s"; %s };' % (VNI, local, peer, slice_, extra))


def qemu_cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


class OverlayTest(unittest.TestCase):
    """Two namespaces joined by the underlay; daemons made per test."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s: run scripts/build-test-guest.sh" % IMAGES)
        self.daemons = []
        self.h1 = Netns("cvt-ov1")
        self.h2 = Netns("cvt-ov2")
        sh("ip", "link", "add", "u0", "netns", self.h1.name, "mtu", UNDERLAY_MTU, "type", "veth",
           "peer", "name", "u0", "netns", self.h2.name, "mtu", UNDERLAY_MTU)
        for ns, addr in ((self.h1, "10.99.0.1/24"), (self.h2, "10.99.0.2/24")):
            ns.ip("addr", "add", addr, "dev", "u0")
            ns.ip("link", "set", "u0", "up")

    def tearDown(self):
        problems = []
        try:
            problems += cleanup_daemons(self.daemons, log_tail=2000)
        finally:
            self.h1.close()
            self.h2.close()
        if problems:
            self.fail("\n".join(problems))

    def daemon(self, ns, local, peer, slice_, extra="", plugins=PLUGINS, sections=""):
        d = NetnsDaemon(ns, plugins=plugins,
                        plugin_sections=overlay_section(local, peer, slice_, extra) + sections)
        self.daemons.append(d)
        return d.start()

    def d1(self, **kw):
        return self.daemon(self.h1, "10.99.0.1", "10.99.0.2", "10.200.1.0/24", **kw)

    def d2(self, **kw):
        return self.daemon(self.h2, "10.99.0.2", "10.99.0.1", "10.200.2.0/24", **kw)


class TwoHosts(OverlayTest):
    def test_guests_reach_each_other_across_vxlan_and_survive_kill9(self):
        d1, d2 = self.d1(), self.d2()
        before1, before2 = self.h1.settled_snapshot(), self.h2.settled_snapshot()
        d1.create("vm1", networks=[{"mode": "overlay"}])
        d2.create("vm2", networks=[{"mode": "overlay"}])
        vm1 = d1.wait_state("vm1", ("running", "failed"))
        vm2 = d2.wait_state("vm2", ("running", "failed"))
        self.assertEqual(vm1["state"], "running", vm1["reason"])
        self.assertEqual(vm2["state"], "running", vm2["reason"])
        # Addresses from each host's own slice; MAC from the address.
        n1, n2 = vm1["nics"][0], vm2["nics"][0]
        self.assertEqual(n1["address"], "10.200.1.2/16")
        self.assertEqual(n2["address"], "10.200.2.2/16")
        self.assertEqual(n1["mac"], "52:54:0a:c8:01:02")
        self.assertEqual(n1["gateway"], "10.200.1.1")
        self.assertRegex(n1["tap"], r"^cvo[0-9a-f]{12}$")

        # Per-host devices: bridge and VXLAN device at the underlay MTU - 50,
        # the TAP on the bridge, head-end replication to the peer.
        for ns, tap, local, peer in ((self.h1, n1["tap"], "10.99.0.1", "10.99.0.2"),
                                     (self.h2, n2["tap"], "10.99.0.2", "10.99.0.1")):
            br, vx, tp = ns.link(BRIDGE), ns.link(VXLAN), ns.link(tap)
            self.assertEqual(br["linkinfo"]["info_kind"], "bridge")
            self.assertEqual(vx["linkinfo"]["info_kind"], "vxlan")
            self.assertEqual(vx["linkinfo"]["info_data"]["id"], VNI)
            self.assertEqual(vx["linkinfo"]["info_data"]["local"], local)
            self.assertEqual(vx["master"], BRIDGE)
            self.assertEqual(tp["master"], BRIDGE)
            for l in (br, vx, tp):
                self.assertEqual(l["mtu"], OVERLAY_MTU, l["ifname"])
            self.assertIn("00:00:00:00:00:00 dev %s dst %s self permanent" % (VXLAN, peer),
                          ns.fdb())
        # The guest is told its address (command line) and MTU (virtio).
        argv = qemu_cmdline(vm1["pid"])
        self.assertTrue(any("cvmm.ip=eth0:10.200.1.2/16:10.200.1.1" in a for a in argv), argv)
        self.assertTrue(any("host_mtu=%d" % OVERLAY_MTU in a and n1["mac"] in a for a in argv),
                        argv)

        d1.wait_ready("vm1")
        d2.wait_ready("vm2")
        self.assertIn("cvmm-tiny: eth0 10.200.1.2/16", d1.logs("vm1"))
        self.assertIn("cvmm-tiny: eth0 10.200.2.2/16", d2.logs("vm2"))
        # Across the overlay, both ways.
        r = wait_for(lambda: self.h1.http_get("10.200.2.2", 8080), 30, "vm2 from host 1")
        self.assertEqual(r, (200, "hello from cvmm-tiny vm2\n"))
        r = wait_for(lambda: self.h2.http_get("10.200.1.2", 8080), 30, "vm1 from host 2")
        self.assertEqual(r, (200, "hello from cvmm-tiny vm1\n"))
        self.check_guest_mtu()

        # kill -9 the first daemon: the VM keeps running and answering, the
        # restarted daemon re-adopts it.
        pid1 = vm1["pid"]
        d1.kill9()
        self.assertTrue(pid_alive(pid1))
        self.assertEqual(self.h2.http_get("10.200.1.2", 8080)[0], 200)
        d1.start()
        vm1 = d1.wait_state("vm1", "running", timeout=30)
        self.assertEqual(vm1["pid"], pid1, "vm1 was not re-adopted")
        wait_for(lambda: "TAP %s re-adopted" % n1["tap"] in d1.read_log(), 30,
                 "net-overlay to re-adopt the TAP")
        r = wait_for(lambda: self.h2.http_get("10.200.1.2", 8080), 30, "vm1 after re-adoption")
        self.assertEqual(r, (200, "hello from cvmm-tiny vm1\n"))

        # Stop and remove: the last VM of host 1 takes the devices with it
        # while host 2 keeps its own.
        self.assertEqual(d1.cli("stop", "vm1", "--timeout", "30").returncode, 0)
        d1.wait_state("vm1", "stopped", timeout=60)
        self.assertIsNone(self.h1.link(BRIDGE), "bridge left after the last VM stopped")
        self.assertIsNone(self.h1.link(VXLAN))
        self.assertIsNotNone(self.h2.link(BRIDGE))
        d1.cli("remove", "vm1")
        d2.cli("remove", "vm2")
        self.assertEqual(self.h1.snapshot(), before1)
        self.assertEqual(self.h2.snapshot(), before2)
        for d in (d1, d2):
            self.assertFalse(os.path.exists(os.path.join(d.data, "net-overlay")),
                             "plugin state left: %s" % files_under(os.path.join(d.data, "net-overlay")))
            self.assertEqual(files_under(os.path.join(d.run, "vms")), [])

    def check_guest_mtu(self):
        """The guest's own MTU: its TCP MSS (MTU - 40) as a client sees it
        when the client's route would allow a full 1500."""
        self.h1.ip("route", "add", "10.200.2.2/32", "dev", BRIDGE, "mtu", "lock", "1500")
        try:
            code = ("import socket\n"
                    "s=socket.create_connection(('10.200.2.2',8080),timeout=5)\n"
                    "print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))\n")
            mss = int(self.h1.run("python3", "-c", code).stdout)
            print("\n    guest MSS seen from host 1: %d" % mss)
            # 1310 advertised by a 1350-MTU guest (less 12 for timestamps);
            # a 1500-MTU guest would advertise 1460.
            self.assertLessEqual(mss, OVERLAY_MTU - 40)
            self.assertGreater(mss, OVERLAY_MTU - 40 - 40)
        finally:
            self.h1.ip("route", "del", "10.200.2.2/32", check=False)


class TwoHosts_libvirt(LibvirtInNetns, OverlayTest):
    """The same overlay with the libvirt backend: a private libvirtd in each
    host namespace (its QEMUs must see the TAPs cvmmd makes there)."""

    def libvirt_netns(self):
        return [self.h1, self.h2]

    def lv_daemon(self, ns, local, peer, slice_, lv):
        d = NetnsDaemon(ns, plugins=PLUGINS, backend="libvirt", libvirt_uri=lv.uri,
                        plugin_sections=overlay_section(local, peer, slice_, ""))
        self.daemons.append(d)
        return d.start()

    def test_guests_reach_each_other_across_vxlan(self):
        d1 = self.lv_daemon(self.h1, "10.99.0.1", "10.99.0.2", "10.200.1.0/24", self.lvs[0])
        d2 = self.lv_daemon(self.h2, "10.99.0.2", "10.99.0.1", "10.200.2.0/24", self.lvs[1])
        before1, before2 = self.h1.settled_snapshot(), self.h2.settled_snapshot()
        d1.create("vm1", networks=[{"mode": "overlay"}])
        d2.create("vm2", networks=[{"mode": "overlay"}])
        for d, name in ((d1, "vm1"), (d2, "vm2")):
            vm = d.wait_state(name, ("running", "failed"))
            self.assertEqual(vm["state"], "running", vm["reason"])
            self.assertEqual(vm["backend"], "libvirt")
        self.assertEqual(self.lvs[0].domains(), ["cvmm-vm1"])
        self.assertEqual(self.lvs[1].domains(), ["cvmm-vm2"])
        d1.wait_ready("vm1")
        d2.wait_ready("vm2")
        self.assertIn("cvmm-tiny: eth0 10.200.1.2/16", d1.logs("vm1"))
        r = wait_for(lambda: self.h1.http_get("10.200.2.2", 8080), 30, "vm2 from host 1")
        self.assertEqual(r, (200, "hello from cvmm-tiny vm2\n"))
        r = wait_for(lambda: self.h2.http_get("10.200.1.2", 8080), 30, "vm1 from host 2")
        self.assertEqual(r, (200, "hello from cvmm-tiny vm1\n"))
        for d, name in ((d1, "vm1"), (d2, "vm2")):
            self.assertEqual(d.cli("kill", name).returncode, 0)
            d.wait_state(name, "stopped", timeout=60)
            d.cli("remove", name)
        self.assertEqual(self.lvs[0].domains(all=True), [])
        self.assertEqual(self.h1.snapshot(), before1)
        self.assertEqual(self.h2.snapshot(), before2)


class Addresses(OverlayTest):
    def test_leases_slice_full_restart_and_refusals(self):
        # A /29 slice: .0 and .7 are its edges and .1 the gateway: .2-.6.
        d = self.daemon(self.h1, "10.99.0.1", "10.99.0.2", "10.200.3.0/29")
        got = []
        for k in range(5):
            vm = d.create("a%d" % k, networks=[{"mode": "overlay"}], start=False)
            vm = wait_for(lambda: (d.vm("a%d" % k) or {}).get("nics"), 10, "a%d" % k)
            got.append(vm[0]["address"])
        self.assertEqual(got, ["10.200.3.%d/16" % a for a in range(2, 7)])
        d.refuse("full", 409, ("no free address left in this host's slice 10.200.3.0/29",),
                 networks=[{"mode": "overlay"}])
        # Leases survive a restart, and a removed VM's address is free again.
        d.stop()
        d.start()
        d.cli("remove", "a2")
        d.create("b", networks=[{"mode": "overlay"}], start=False)
        self.assertEqual(d.vm("b")["nics"][0]["address"], "10.200.3.4/16")
        d.refuse("c", 409, networks=[{"mode": "overlay"}])
        # A requested address: inside the slice, not the gateway, not taken.
        for k in range(5):
            if k != 2:
                d.cli("remove", "a%d" % k)
        d.refuse("gw", 400, ("not an address this host may hand out",),
                 networks=[{"mode": "overlay", "ip": "10.200.3.1"}])
        d.refuse("taken", 409, ("10.200.3.4 is already leased to VM " + d.vm("b")["id"],),
                 networks=[{"mode": "overlay", "ip": "10.200.3.4"}])
        d.create("pick", networks=[{"mode": "overlay", "ip": "10.200.3.6"}], start=False)
        self.assertEqual(d.vm("pick")["nics"][0]["address"], "10.200.3.6/16")
        # Port mappings: refused, with the reason, never dropped.
        d.refuse("p", 400, ("port", "overlay"), networks=[{"mode": "overlay"}],
                 ports=[{"protocol": "tcp", "host_port": 24999, "vm_port": 8080}])
        d.refuse("q", 400, ("networks[0].vlan: not a parameter of mode 'overlay'",),
                 networks=[{"mode": "overlay", "vlan": "3"}])
        # The failed defines leased nothing; removing everything leaves no state.
        d.cli("remove", "b")
        d.cli("remove", "pick")
        self.assertFalse(os.path.exists(os.path.join(d.data, "net-overlay")),
                         files_under(os.path.join(d.data, "net-overlay")))

    def test_config_errors_name_the_key(self):
        for extra, want in (('gateway = "10.200.2.1";', "plugin.net-overlay.gateway"),
                            ('mtu = 20;', "plugin.net-overlay.mtu"),
                            ('port = 70000;', "plugin.net-overlay.port")):
            d = NetnsDaemon(self.h1, plugins=PLUGINS,
                            plugin_sections=overlay_section("10.99.0.1", "10.99.0.2",
                                                            "10.200.1.0/24", extra))
            self.daemons.append(d)
            r = self.h1.run(CVMMD, "-c", d.conf, check=False, timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(want, r.stderr)


class CrashPaths(OverlayTest):
    def test_parallel_starts_kill9_and_a_vm_dying_meanwhile(self):
        """Three VMs started at once share the devices; kill -9 of the daemon,
        one QEMU killed while it is down: the restarted daemon re-adopts the
        survivors, tears the dead one's TAP down and auto-restarts it; the
        devices go with the last VM."""
        d = self.d1()
        before = self.h1.settled_snapshot()
        names = ["x1", "x2", "x3"]
        for n in names:
            d.create(n, networks=[{"mode": "overlay"}], memory_mb=128)
        vms = {n: d.wait_state(n, ("running", "failed"), timeout=90) for n in names}
        for n in names:
            self.assertEqual(vms[n]["state"], "running", vms[n]["reason"])
            self.assertEqual(self.h1.link(vms[n]["nics"][0]["tap"])["master"], BRIDGE)
        self.assertEqual(sorted(v["nics"][0]["address"] for v in vms.values()),
                         ["10.200.1.%d/16" % k for k in (2, 3, 4)])
        d.kill9()
        os.kill(vms["x2"]["pid"], 9)
        wait_for(lambda: not pid_alive(vms["x2"]["pid"]), 10, "x2's QEMU to die")
        d.start()
        for n in ("x1", "x3"):
            self.assertEqual(d.wait_state(n, "running", timeout=30)["pid"], vms[n]["pid"])
        # x2 ended while the daemon was down: undone, then auto-restarted.
        wait_for(lambda: (d.vm("x2") or {}).get("pid") not in (None, 0, vms["x2"]["pid"]) and
                 d.vm("x2")["state"] == "running", 60, "x2 to be restarted")
        x2 = d.vm("x2")
        self.assertEqual(x2["nics"][0]["address"], vms["x2"]["nics"][0]["address"])
        self.assertEqual(self.h1.link(x2["nics"][0]["tap"])["master"], BRIDGE)
        self.assertIn("the VM ended while the daemon was down", str(d.api("GET", "/v1/vms/x2/events")[1]))
        for n in names[:-1]:
            d.cli("remove", n)
            self.assertIsNotNone(self.h1.link(BRIDGE), "bridge gone while %s runs" % names[-1])
        d.cli("remove", names[-1])
        self.assertEqual(self.h1.snapshot(), before)
        self.assertFalse(os.path.exists(os.path.join(d.data, "net-overlay")))


class LeakSoak(NetSoak, OverlayTest):
    NETWORKS = [{"mode": "overlay"}]

    @property
    def soak_ns(self):
        return self.h1

    def soak_daemon(self, event):
        sections = ' test-fail = { event = "%s"; name_prefix = "bad"; };' % event
        return self.daemon(self.h1, "10.99.0.1", "10.99.0.2", "10.200.1.0/24",
                           plugins=PLUGINS + ("test-fail",), sections=sections)

    def test_50_cycles_and_failed_starts_leak_nothing(self):
        def on_bridge(vm):
            self.assertEqual(self.h1.link(vm["nics"][0]["tap"])["master"], BRIDGE)
        self.run_soak("overlay", on_bridge, "TAP", data_gone="net-overlay")


if __name__ == "__main__":
    unittest.main()
