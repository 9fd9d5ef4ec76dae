"""Network mode "bridge" (plugins/net-bridge) on real QEMU guests. Each test
makes a network namespace and runs cvmmd inside it (`ip netns exec`), so the
managed bridge, the TAPs, the nft table and dnsmasq all live there; the
namespace is deleted afterwards, and nothing of it touches the host.

What is checked, as a user would see it:
  - the guest gets its fixed address by DHCP (its console line names the
    address the VM's "nics" shows), the gateway side reaches it (ping, and
    the guest's HTTP service on its bridge address), and the service answers
    on the mapped host port 127.0.0.1:PORT (output-chain DNAT with
    route_localnet and masquerade); after a stop the TAP, the rules, the
    bridge and dnsmasq are gone, and a second start gets the same address,
    MAC and TAP;
  - mappings on a non-loopback host address answer from another namespace
    (a "client host" on a veth: prerouting DNAT and forwarding) and from the
    host itself;
  - kill -9 of cvmmd with two VMs running: guests, TAPs and dnsmasq live on;
    a DNAT chain deleted meanwhile is recreated by the restarted daemon's
    re-adoption, which starts no second dnsmasq; stop + remove then leave
    nothing behind;
  - an existing (unmanaged) bridge: the TAP joins it, loopback or address-less
    port mappings are refused with a clear message at create;
  - leak soak: 50 create/start/remove cycles and 10 starts failing half-way
    (test-fail at pre_start, after the network is set up, and at started,
    after QEMU runs): links, bridges, FDB entries, addresses, the nft
    ruleset, dnsmasq processes, files under the run directory and the
    daemon's descriptors are the same before and after.
"""
import json
import os
import re
import shutil
import signal
import time
import unittest

from harness import (NetSoak, cleanup_daemons, BOOT_TIMEOUT, BUILD, CVMMD, IMAGES, LibvirtInNetns, Netns,
                     NetnsDaemon, files_under, pid_alive, sh, procs_mentioning, qemu_pids_for,
                     wait_for)

PLUGINS = ("backend-qemu", "net-user", "net-bridge")
BRIDGE = "cvmmbr0"
TABLE = "cvmm_" + BRIDGE
MANAGED = ('net-bridge = { managed = { name = "%s"; subnet = "192.168.123.0/24"; }; '
           'dnsmasq_log = "@DIR@/dnsmasq.log"; };' % BRIDGE)
BRIDGED = [{"mode": "bridge"}]

# One ICMP echo (no ping(8) on the test host): exit 0 when the reply came.
PING = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(5)
body = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"cvmm"
c = sum(struct.unpack("!%dH" % (len(body) // 2), body))
c = (c >> 16) + (c & 0xffff)
body = body[:2] + struct.pack("!H", ~(c + (c >> 16)) & 0xffff) + body[4:]
s.sendto(body, (sys.argv[1], 0))
end = time.monotonic() + 5
while time.monotonic() < end:
    data, (src, _) = s.recvfrom(1500)
    icmp = data[(data[0] & 15) * 4:]
    if src == sys.argv[1] and icmp[0] == 0 and icmp[4:6] == b"\x42\x42":
        sys.exit(0)
sys.exit(1)
"""


class BridgeTest(unittest.TestCase):
    """One namespace per test, with lo up; daemons made inside it."""
    maxDiff = None

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s: run scripts/build-test-guest.sh" % IMAGES)
        self.t0 = time.monotonic()
        self.daemons = []
        self.namespaces = []
        self.ns = self.netns("cvt-nb")

    def netns(self, name):
        ns = Netns(name)
        self.namespaces.append(ns)
        return ns

    def tearDown(self):
        problems = []
        try:
            problems += cleanup_daemons(self.daemons)
            for ns in self.namespaces:
                pids = sh("ip", "netns", "pids", ns.name, check=False).stdout.split()
                if pids:
                    problems.append("processes left in %s: %s" % (ns.name, pids))
        finally:
            for ns in self.namespaces:
                ns.close()
        for ns in self.namespaces:
            self.assertNotIn(ns.name, os.listdir("/run/netns") if os.path.isdir("/run/netns")
                             else [], "namespace not deleted")
        if problems:
            self.fail("\n".join(problems))

    backend = "qemu"

    def daemon(self, sections=MANAGED, plugins=PLUGINS, pm_address="127.0.0.1", start=True):
        kw = {}
        if self.backend == "libvirt":
            kw = dict(backend="libvirt", libvirt_uri=self.lv.uri)
        d = NetnsDaemon(self.ns, plugins=plugins, plugin_sections=sections, **kw)
        # dnsmasq reads its hosts file as "nobody": the test dir (mkdtemp,
        # 0700) must be searchable, as /run is on a real host.
        os.chmod(d.dir, 0o711)
        with open(d.conf) as f:
            text = f.read().replace("@DIR@", d.dir)
        text = text.replace('port_mapping = { enabled = true; address = "127.0.0.1";',
                            'port_mapping = { enabled = true; address = "%s";' % pm_address)
        with open(d.conf, "w") as f:
            f.write(text)
        self.daemons.append(d)
        return d.start() if start else d

    # -- what a leak would change --
    def nft(self):
        return self.ns.run("nft", "list", "ruleset").stdout

    def dnsmasqs(self, d):
        """Every dnsmasq in the namespace, and any other one started for d."""
        pids = set(procs_mentioning(d.run, exe="dnsmasq"))
        for pid in sh("ip", "netns", "pids", self.ns.name, check=False).stdout.split():
            try:
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() == "dnsmasq" and pid_alive(int(pid)):
                        pids.add(int(pid))
            except OSError:
                pass
        return sorted(pids)

    def state(self, d, fds=True):
        """Taken when it holds still: a link just brought up (the test's own
        br0, say) gains IPv6 multicast FDB entries a moment later."""
        wait_for(lambda: not self.ns.ip("-6", "addr", "show", "tentative").stdout.strip(), 15,
                 "IPv6 duplicate address detection to finish")
        prev, same = None, 0
        for _ in range(30):
            cur = self._state(d, fds)
            same = same + 1 if cur == prev else 0
            if same == 2:
                return cur
            prev = cur
            time.sleep(0.5)
        return cur

    def _state(self, d, fds):
        s = self.ns.snapshot()
        s["nft ruleset"] = self.nft()
        s["dnsmasq"] = self.dnsmasqs(d)
        s["run files"] = [f for f in files_under(d.run) if f != "vms"]
        if fds:
            s["daemon fds"] = d.fds()
        return s

    def manifest_state(self, d, vm_id):
        with open(os.path.join(d.data, "vms", vm_id, "manifest.json")) as f:
            return json.load(f).get("plugins", {}).get("net-bridge", {})

    def wait_http(self, ns, host, port, expect, timeout=60):
        got = wait_for(lambda: (lambda r: r if r and expect in r[1] else None)(
            ns.http_get(host, port)), timeout, "%s:%d to answer '%s'" % (host, port, expect),
            interval=0.5)
        self.assertEqual(got[0], 200)
        return got

    def done(self, what):
        print("\n    %s: %.0f s " % (what, time.monotonic() - self.t0), end="... ")


class Managed(BridgeTest):
    def test_dhcp_gateway_mapped_port_and_restart(self):
        d = self.daemon()
        before = self.state(d)
        vm = d.create("web1", networks=BRIDGED, ports=[{"host_port": 21080, "vm_port": 8080}])
        vm = d.wait_state("web1", "running")
        nic = vm["nics"][0]
        self.assertEqual(nic["mode"], "bridge")
        self.assertEqual(nic["tap"], "cv%sn0" % vm["id"].replace("-", "")[:10])
        self.assertLessEqual(len(nic["tap"]), 15)
        self.assertRegex(nic["mac"], r"^52:54:00(:[0-9a-f]{2}){3}$")
        self.assertRegex(nic["address"], r"^192\.168\.123\.\d+/24$")
        self.assertEqual(nic["bridge"], BRIDGE)
        if self.backend == "libvirt":
            self.assertEqual(self.lv.domains(), ["cvmm-web1"])
        ip = nic["address"].split("/")[0]
        self.assertNotEqual(ip, "192.168.123.1")
        tap = self.ns.link(nic["tap"])
        self.assertEqual(tap.get("master"), BRIDGE)
        self.assertEqual(self.ns.link(BRIDGE)["linkinfo"]["info_kind"], "bridge")
        self.assertEqual(len(self.dnsmasqs(d)), 1)
        # Forwarding and route_localnet on the bridge only (they go with it);
        # the namespace-wide switch stays as the host had it.
        sysctl = lambda k: self.ns.run("sysctl", "-n", k).stdout.strip()
        self.assertEqual(sysctl("net.ipv4.conf.%s.forwarding" % BRIDGE), "1")
        self.assertEqual(sysctl("net.ipv4.conf.%s.route_localnet" % BRIDGE), "1")
        self.assertEqual(sysctl("net.ipv4.ip_forward"), "0")

        # DHCP: the guest says it has exactly the fixed lease.
        d.wait_ready("web1")
        self.assertIn("cvmm-tiny: eth0 %s" % nic["address"], d.logs("web1"))
        # Guest and gateway reach each other: ICMP, and HTTP to its address.
        self.ns.run("python3", "-c", PING, ip)
        self.wait_http(self.ns, ip, 8080, "hello from cvmm-tiny web1")
        neigh = self.ns.ip("neigh", "show", ip).stdout
        self.assertIn(nic["mac"], neigh)
        # The mapped port on the host's loopback (output chain, route_localnet).
        self.wait_http(self.ns, "127.0.0.1", 21080, "hello from cvmm-tiny web1")
        rules = self.nft()
        self.assertIn("dnat to %s:8080" % ip, rules)
        self.assertRegex(rules, r"ip saddr 192\.168\.123\.0/24 ip daddr != \{[^}]*\} masquerade")

        # Stop: the TAP, its rules, and (last VM) the bridge and dnsmasq go.
        d.cli("stop", "web1", "--force")
        d.wait_state("web1", "stopped")
        self.assertIsNone(self.ns.link(nic["tap"]))
        self.assertIsNone(self.ns.link(BRIDGE))
        self.assertNotIn("dnat", self.nft())
        self.assertEqual(self.dnsmasqs(d), [])
        self.assertIsNone(self.ns.http_get("127.0.0.1", 21080, timeout=2))
        # The lease and names are the VM's: a new boot gets the same ones.
        st = self.manifest_state(d, vm["id"])
        self.assertEqual(st.get("nic0.address"), nic["address"])
        self.assertEqual(d.cli("start", "web1").returncode, 0)
        vm2 = d.wait_state("web1", "running")
        self.assertEqual(vm2["nics"][0], nic)
        wait_for(lambda: d.logs("web1").count("cvmm-tiny: eth0 %s" % nic["address"]) == 2,
                 BOOT_TIMEOUT, "the second boot's DHCP line", interval=0.5)
        self.wait_http(self.ns, "127.0.0.1", 21080, "hello from cvmm-tiny web1")

        d.cli("remove", "web1")
        self.assertEqual(self.state(d), before)
        self.assertFalse(os.path.exists(os.path.join(d.data, "net-bridge")))
        self.done("managed bridge, 2 boots")

    def test_refusals_name_the_problem(self):
        d = self.daemon()
        d.refuse("x1", 400, ("networks[0].colour: not a parameter of mode 'bridge'",),
                 networks=[{"mode": "bridge", "colour": "red"}])
        d.refuse("x2", 400, ("not a free host address of the bridge's subnet 192.168.123.0/24",),
                 networks=[{"mode": "bridge", "ip": "10.1.1.1"}])
        # A requested address is honoured, and then nobody else's.
        a = d.create("x3", start=False, networks=[{"mode": "bridge", "ip": "192.168.123.77"}])
        self.assertEqual(a["nics"][0]["address"], "192.168.123.77/24")
        d.refuse("x4", 409, ("192.168.123.77 is taken",),
                 networks=[{"mode": "bridge", "ip": "192.168.123.77"}])
        # Two NICs on the bridge: two TAPs, two addresses, two MACs.
        b = d.create("x5", start=False, networks=BRIDGED * 2)
        n0, n1 = b["nics"]
        self.assertNotEqual(n0["address"], n1["address"])
        self.assertNotEqual(n0["mac"], n1["mac"])
        self.assertEqual((n0["tap"][-2:], n1["tap"][-2:]), ("n0", "n1"))
        # ... and the guest gets both addresses by DHCP.
        d.cli("start", "x5")
        d.wait_state("x5", "running")
        for n in (n0, n1):
            self.assertEqual(self.ns.link(n["tap"]).get("master"), BRIDGE)
        d.wait_ready("x5")
        logs = d.logs("x5")
        self.assertIn("cvmm-tiny: eth0 %s" % n0["address"], logs)
        self.assertIn("cvmm-tiny: eth1 %s" % n1["address"], logs)
        for n in ("x3", "x5"):
            d.cli("remove", n)
        self.assertIsNone(self.ns.link(BRIDGE))
        self.assertFalse(os.path.exists(os.path.join(d.data, "net-bridge")))


    def test_config_errors_name_the_key(self):
        cases = [
            ('managed = { subnet = "192.168.123.1/24"; };',
             "plugin.net-bridge.managed.subnet: must be an IPv4 network"),
            ('managed = { subnet = "10.5.0.0/16"; gateway = "10.6.0.1"; };',
             "plugin.net-bridge.managed.gateway: must be a host address of the subnet"),
            ('managed = { name = "a-very-long-bridge-name"; };',
             "plugin.net-bridge.managed.name: not a valid interface name"),
            ('managed = { dhcp_range = [ "192.168.123.20", "192.168.123.10" ]; };',
             "plugin.net-bridge.managed.dhcp_range: must be"),
            ('managed = { lease_time = "soon"; };',
             "plugin.net-bridge.managed.lease_time: must be a number of seconds"),
            ('bridge = "br0"; managed = { };',
             "plugin.net-bridge.bridge: set either bridge (an existing one) or managed"),
            ('managed = { dns = "yes"; };', "plugin.net-bridge.managed.dns: must be true or false"),
        ]
        for section, message in cases:
            d = self.daemon(sections="net-bridge = { %s };" % section, start=False)
            p = self.ns.run(CVMMD, "-c", d.conf, check=False, timeout=30)
            self.assertEqual(p.returncode, 2, section)
            self.assertIn(message, p.stderr, section)


class Managed_libvirt(LibvirtInNetns, BridgeTest):
    def libvirt_netns(self):
        return [self.ns]

    test_dhcp_gateway_mapped_port_and_restart = Managed.test_dhcp_gateway_mapped_port_and_restart


class ForeignClient(BridgeTest):
    """Mappings on a non-loopback address; a second namespace is a client
    host on a veth (10.99.0.2 -> 10.99.0.1)."""

    def setUp(self):
        super().setUp()
        self.client = self.netns("cvt-nbc")
        self.ns.ip("link", "add", "vh0", "type", "veth", "peer", "name", "vc0", "netns",
                   self.client.name)
        self.ns.ip("addr", "add", "10.99.0.1/24", "dev", "vh0")
        self.ns.ip("link", "set", "vh0", "up")
        self.client.ip("addr", "add", "10.99.0.2/24", "dev", "vc0")
        self.client.ip("link", "set", "vc0", "up")
        # Forwarding on the incoming interface is the host's policy, not cvmm's.
        self.ns.run("sysctl", "-qw", "net.ipv4.conf.vh0.forwarding=1")

    def test_kill9_with_two_vms_readopts_and_leaves_nothing(self):
        d = self.daemon(pm_address="10.99.0.1")
        before = self.state(d, fds=False)
        names = ("ra1", "ra2")
        for k, n in enumerate(names):
            d.create(n, networks=BRIDGED, ports=[{"host_port": 22001 + k, "vm_port": 8080}])
        vms = {n: d.wait_state(n, "running") for n in names}
        for n in names:
            d.wait_ready(n)
        # From another host: prerouting DNAT, forwarded into the bridge.
        self.wait_http(self.client, "10.99.0.1", 22001, "hello from cvmm-tiny ra1")
        self.wait_http(self.client, "10.99.0.1", 22002, "hello from cvmm-tiny ra2")
        # From the host itself, to its own non-loopback address: output DNAT.
        self.wait_http(self.ns, "10.99.0.1", 22002, "hello from cvmm-tiny ra2")
        dns = self.dnsmasqs(d)
        self.assertEqual(len(dns), 1)

        d.kill9()
        for n in names:
            self.assertTrue(pid_alive(vms[n]["pid"]), "%s died with the daemon" % n)
            self.assertIsNotNone(self.ns.link(vms[n]["nics"][0]["tap"]))
        self.assertEqual(self.dnsmasqs(d), dns)
        # Meanwhile ra1's DNAT chains vanish; re-adoption must recreate them.
        tap1 = vms["ra1"]["nics"][0]["tap"]
        self.ns.run("nft", "flush chain ip %s pre_%s; delete chain ip %s pre_%s" %
                    (TABLE, tap1, TABLE, tap1))
        self.assertIsNone(self.client.http_get("10.99.0.1", 22001, timeout=2))

        d.start()
        for n in names:
            vm = d.wait_state(n, "running", timeout=30)
            self.assertEqual(vm["pid"], vms[n]["pid"], "%s not re-adopted" % n)
            self.assertEqual(vm["nics"], vms[n]["nics"])
        wait_for(lambda: "re-adopted TAP %s" % tap1 in d.read_log(), 30, "ra1's NIC adopted")
        self.wait_http(self.client, "10.99.0.1", 22001, "hello from cvmm-tiny ra1")
        self.wait_http(self.client, "10.99.0.1", 22002, "hello from cvmm-tiny ra2")
        self.assertEqual(self.dnsmasqs(d), dns, "dnsmasq restarted or duplicated")
        self.assertEqual(self.nft().count("pre_cv"), 2)

        for n in names:
            d.cli("kill", n)
        for n in names:
            d.wait_state(n, "stopped")
            d.cli("remove", n)
        self.assertEqual(self.state(d, fds=False), before)
        self.done("kill -9 with 2 VMs")


class CrashLeftovers(BridgeTest):
    """What a daemon finds after kill -9 when things changed meanwhile."""

    def net_state(self, d):
        # The core keeps the run directory of a VM it no longer knows (its
        # data directory went behind its back); that is not the network's.
        s = self.state(d, fds=False)
        s["run files"] = [f for f in s["run files"] if not f.startswith("vms/")]
        return s

    def test_vm_removed_and_dnsmasq_killed_while_daemon_down(self):
        d = self.daemon()
        before = self.state(d, fds=False)
        keep = d.create("keep1", networks=BRIDGED, ports=[{"host_port": 21180, "vm_port": 8080}])
        gone = d.create("gone1", networks=BRIDGED, ports=[{"host_port": 21181, "vm_port": 8080}])
        keep, gone = d.wait_state("keep1", "running"), d.wait_state("gone1", "running")
        d.kill9()
        # gone1 vanishes behind cvmm's back (QEMU killed, directory removed);
        # dnsmasq dies too.
        os.kill(gone["pid"], signal.SIGKILL)
        for pid in self.dnsmasqs(d):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(gone["pid"]) and not self.dnsmasqs(d), 10, "kills")
        shutil.rmtree(os.path.join(d.data, "vms", gone["id"]))
        d.start()
        # Forgotten at load: its TAP, its DNAT chains, its DHCP host entry.
        self.assertIsNone(self.ns.link(gone["nics"][0]["tap"]))
        vm = d.wait_state("keep1", "running", timeout=30)
        self.assertEqual(vm["pid"], keep["pid"])
        wait_for(lambda: len(self.dnsmasqs(d)) == 1, 30, "dnsmasq back after re-adoption")
        self.assertIsNotNone(self.ns.link(keep["nics"][0]["tap"]))
        rules = self.nft()
        self.assertIn(keep["nics"][0]["tap"], rules)
        self.assertNotIn(gone["nics"][0]["tap"], rules)
        with open(os.path.join(d.run, "net-bridge", BRIDGE + ".hosts")) as f:
            hosts = f.read()
        self.assertIn(keep["nics"][0]["mac"], hosts)
        self.assertNotIn(gone["nics"][0]["mac"], hosts)
        with open(os.path.join(d.data, "net-bridge", "state")) as f:
            self.assertNotIn(gone["id"], f.read())
        d.cli("remove", "keep1")
        self.assertEqual(self.net_state(d), before)

        # The only VM vanishes: the restarted daemon takes down the bridge,
        # its rules and dnsmasq at once, before anything asks it to.
        solo = d.create("gone2", networks=BRIDGED)
        solo = d.wait_state("gone2", "running")
        d.kill9()
        os.kill(solo["pid"], signal.SIGKILL)
        wait_for(lambda: not pid_alive(solo["pid"]), 10, "QEMU to die")
        shutil.rmtree(os.path.join(d.data, "vms", solo["id"]))
        d.start()
        self.assertEqual(self.net_state(d), before)
        self.assertFalse(os.path.exists(os.path.join(d.data, "net-bridge")))


    def test_kill9_at_any_point_of_a_start(self):
        # The daemon dies at some moment of a start (recording, bridge,
        # dnsmasq, TAP, rules, QEMU); the restarted one undoes or re-adopts
        # what exists, and remove leaves nothing.
        d = self.daemon()
        before = self.state(d, fds=False)
        points = int(os.environ.get("CVMM_KILL9_POINTS", "7"))
        for k, delay in enumerate(0.4 * (i / (points - 1)) ** 2 for i in range(points)):
            name = "k%d" % k
            d.create(name, networks=BRIDGED, memory_mb=128, start=False,
                     ports=[{"host_port": 21200 + k, "vm_port": 8080}])
            d.api("POST", "/v1/vms/%s/start" % name)
            time.sleep(delay)
            d.kill9()
            d.start()
            wait_for(lambda: (d.vm(name) or {}).get("state") not in ("starting", "stopping"),
                     60, "%s to settle" % name)
            st, o = d.api("DELETE", "/v1/vms/" + name)
            self.assertEqual(st, 200, o)
            self.assertEqual(self.net_state(d), before, "kill -9 after %.2f s" % delay)
        self.assertFalse(os.path.exists(os.path.join(d.data, "net-bridge")))


class Unmanaged(BridgeTest):
    """bridge = "br0": cvmm makes TAPs on it and nothing else."""

    def test_existing_bridge_taps_only_and_refusals(self):
        # A fixed MAC, as a real bridge with its uplink has: a bridge without
        # one takes its lowest port's and changes as TAPs come and go.
        self.ns.ip("link", "add", "br0", "address", "02:00:00:0b:00:01", "type", "bridge")
        self.ns.ip("addr", "add", "10.98.0.1/24", "dev", "br0")
        # ... and an uplink (a veth here), so that it has carrier before the
        # first TAP joins, as a bridge in use has.
        self.ns.ip("link", "add", "up0", "master", "br0", "type", "veth", "peer", "name", "up1")
        for link in ("up0", "up1", "br0"):
            self.ns.ip("link", "set", link, "up")
        d = self.daemon(sections='net-bridge = { bridge = "br0"; };', pm_address="10.98.0.1")
        before = self.state(d)
        # A loopback mapping cannot be honoured on a bridge cvmm does not own
        # (it would need route_localnet there); neither can one to an address
        # cvmm does not know.
        d.refuse("u1", 400, ("set networks[0].ip to the address the guest will have",),
                 networks=BRIDGED, ports=[{"host_port": 21090, "vm_port": 80}])
        vm = d.create("u2", networks=[{"mode": "bridge", "ip": "10.98.0.50"}],
                      ports=[{"host_port": 21091, "vm_port": 8080}])
        vm = d.wait_state("u2", "running")
        nic = vm["nics"][0]
        self.assertEqual(nic["bridge"], "br0")
        self.assertEqual(nic["address"], "10.98.0.50")
        self.assertEqual(self.ns.link(nic["tap"]).get("master"), "br0")
        self.assertIn("dnat to 10.98.0.50:8080", self.nft())
        self.assertEqual(self.dnsmasqs(d), [])
        d.cli("stop", "u2", "--force")
        d.wait_state("u2", "stopped")
        self.assertIsNone(self.ns.link(nic["tap"]))
        self.assertIsNotNone(self.ns.link("br0"), "cvmm deleted a bridge it does not own")
        d.cli("remove", "u2")
        self.assertEqual(self.state(d), before)

        d.stop()
        d2 = self.daemon(sections='net-bridge = { bridge = "br0"; };')
        d2.refuse("u3", 400, ("127.0.0.1 is a loopback address; on bridge 'br0', which cvmm "
                              "does not manage",),
                  networks=[{"mode": "bridge", "ip": "10.98.0.51"}],
                  ports=[{"host_port": 21092, "vm_port": 80}])


class LeakSoak(BridgeTest):
    CYCLES = NetSoak.CYCLES

    def soak_daemon(self, event):
        return self.daemon(plugins=PLUGINS + ("test-fail",),
                           sections=MANAGED + ' test-fail = { event = "%s"; name_prefix = "bad"; };'
                           % event)

    def failing_starts(self, d, event, n=5):
        for k in range(n):
            name = "bad%d" % k
            vm = d.create(name, networks=BRIDGED, memory_mb=128,
                          ports=[{"host_port": 23100 + k, "vm_port": 8080}])
            vm = d.wait_state(name, ("failed", "running"), timeout=60)
            self.assertEqual(vm["state"], "failed")
            self.assertIn("failing on purpose at %s" % event, vm["reason"])
            self.assertEqual(qemu_pids_for(vm["id"]), [])
            self.assertEqual(d.api("DELETE", "/v1/vms/" + name)[0], 200)

    def test_50_cycles_and_failed_starts_leak_nothing(self):
        d = self.soak_daemon("pre_start")
        before = self.state(d)
        for k in range(self.CYCLES):
            name = "s%d" % k
            d.create(name, networks=BRIDGED, memory_mb=128, start=False,
                     ports=[{"host_port": 23000 + k % 4, "vm_port": 8080}])
            st, o = d.api("POST", "/v1/vms/%s/start" % name)
            self.assertEqual(st, 202, o)
            vm = d.wait_state(name, ("running", "failed"), timeout=60)
            self.assertEqual(vm["state"], "running", vm["reason"])
            if k == 0:
                self.assertEqual(self.ns.link(vm["nics"][0]["tap"]).get("master"), BRIDGE)
                self.assertEqual(len(self.dnsmasqs(d)), 1)
            st, o = d.api("POST", "/v1/vms/%s/stop" % name, {"force": True})
            self.assertEqual(st, 202, o)
            d.wait_state(name, "stopped", timeout=60)
            st, o = d.api("DELETE", "/v1/vms/" + name)
            self.assertEqual(st, 200, o)
        self.failing_starts(d, "pre_start")
        log = d.read_log()
        self.assertIn("undo post_stop ran", log)
        after = self.state(d)
        self.assertEqual(after, before)
        self.assertFalse(os.path.exists(os.path.join(d.data, "net-bridge")))
        # Every cycle had its own address (round robin): no reuse to race on.
        addrs = re.findall(r"TAP cv\w+ on bridge %s, MAC \S+, address (\S+)" % BRIDGE, log)
        self.assertEqual(len(addrs), self.CYCLES + 5)
        self.assertEqual(len(set(addrs)), len(addrs))
        d.stop()

        d = self.soak_daemon("started")
        before2 = self.state(d)
        self.failing_starts(d, "started")
        self.assertEqual(self.state(d), before2)
        print("\n    before/after: %s" % ", ".join(
            "%s %d" % (k, len(v)) for k, v in sorted(before.items())), end="")
        del before["daemon fds"], before2["daemon fds"]
        self.assertEqual(before2, before)
        self.done("soak: %d cycles + 10 failed starts, nothing left" % self.CYCLES)


if __name__ == "__main__":
    unittest.main()
