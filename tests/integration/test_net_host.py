"""Network mode "host" (plugins/net-host) on real QEMU guests. Namespace A
is the host: cvmmd runs inside it, and one end of a veth pair ("hnic")
stands in for the host's NIC. The other end ("seg") is in namespace B, the
LAN segment, where a dnsmasq hands out addresses. The guest sits on the
segment through a macvtap on hnic, gets its address from B's DHCP server
and answers HTTP from B. (In macvtap's bridge mode, A itself cannot reach
the guest through hnic: the kernel does not loop frames back to the lower
device. That is the mode's nature, so the checks are made from B.)

Also: the macvtap's MAC is the guest's, QEMU holds the device's /dev/tapN
at descriptor 10, kill -9 of the daemon leaves the guest answering and
the restarted daemon re-adopts it, port mappings are refused with the
reason, and a leak soak of 50 create/start/stop/remove cycles plus 10
starts failed half-way leaves links, FDB entries, addresses, run files
and the daemon's descriptors as they were.
"""
import os
import subprocess
import tempfile
import shutil
import time
import unittest

from harness import (NetSoak, cleanup_daemons, BUILD, CVMMD, IMAGES, LibvirtInNetns, Netns, NetnsDaemon,
                     files_under, pid_alive, qemu_pids_for, sh, wait_for)

PLUGINS = ("backend-qemu", "net-user", "net-host")
SECTION = 'net-host = { interface = "hnic"; macvtap_mode = "bridge"; };'


class HostTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s: run scripts/build-test-guest.sh" % IMAGES)
        self.daemons = []
        self.dnsmasq = None
        self.tmp = tempfile.mkdtemp(prefix="cvmm-nh-")
        self.a = Netns("cvt-host")
        self.b = Netns("cvt-lan")
        sh("ip", "link", "add", "hnic", "netns", self.a.name, "type", "veth", "peer", "name",
           "seg", "netns", self.b.name)
        self.a.ip("link", "set", "hnic", "up")
        self.b.ip("addr", "add", "10.77.0.1/24", "dev", "seg")
        self.b.ip("link", "set", "seg", "up")

    def tearDown(self):
        problems = []
        try:
            problems += cleanup_daemons(self.daemons, log_tail=2000)
            if self.dnsmasq:
                self.dnsmasq.kill()
                self.dnsmasq.wait()
        finally:
            self.a.close()
            self.b.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            self.fail("\n".join(problems))

    backend = "qemu"

    def daemon(self, plugins=PLUGINS, sections=""):
        kw = {}
        if self.backend == "libvirt":
            kw = dict(backend="libvirt", libvirt_uri=self.lv.uri)
        d = NetnsDaemon(self.a, plugins=plugins, plugin_sections=SECTION + sections, **kw)
        self.daemons.append(d)
        return d.start()

    def start_dhcp(self):
        """dnsmasq on the segment: DHCP only, no DNS, no ping before offers."""
        self.leases = os.path.join(self.tmp, "dnsmasq.leases")
        self.dnsmasq = self.b.popen(
            ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
             "--no-hosts", "--port=0", "--no-ping", "--user=root", "--interface=seg",
             "--bind-interfaces", "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h",
             "--dhcp-leasefile=" + self.leases, "--pid-file=" + os.path.join(self.tmp, "pid"),
             "--log-dhcp", "--log-facility=" + os.path.join(self.tmp, "dnsmasq.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def lease_of(self, mac):
        try:
            with open(self.leases) as f:
                for line in f:
                    w = line.split()
                    if len(w) > 2 and w[1] == mac:
                        return w[2]
        except OSError:
            pass
        return None


class OnTheSegment(HostTest):
    def test_guest_answers_on_the_segment_and_survives_kill9(self):
        self.start_dhcp()
        d = self.daemon()
        before = self.a.settled_snapshot()
        d.create("h1", networks=[{"mode": "host"}])
        vm = d.wait_state("h1", ("running", "failed"))
        self.assertEqual(vm["state"], "running", vm["reason"])
        nic = vm["nics"][0]
        self.assertRegex(nic["macvtap"], r"^cvh[0-9a-f]{12}$")
        self.assertEqual(nic["interface"], "hnic")
        link = self.a.link(nic["macvtap"])
        self.assertEqual(link["linkinfo"]["info_kind"], "macvtap")
        self.assertEqual(link["linkinfo"]["info_data"]["mode"], "bridge")
        self.assertEqual(link["link"], "hnic")
        self.assertEqual(link["address"], nic["mac"])
        # QEMU holds the macvtap's character device at descriptor 10.
        self.assertEqual(os.readlink("/proc/%d/fd/10" % vm["pid"]), "/dev/tap%d" % link["ifindex"])

        d.wait_ready("h1")
        addr = wait_for(lambda: self.lease_of(nic["mac"]), 30, "a DHCP lease for " + nic["mac"])
        self.assertIn("cvmm-tiny: eth0 %s/24" % addr, d.logs("h1"))
        r = wait_for(lambda: self.b.http_get(addr, 8080), 30, "the guest from the segment")
        self.assertEqual(r, (200, "hello from cvmm-tiny h1\n"))

        pid = vm["pid"]
        d.kill9()
        self.assertTrue(pid_alive(pid))
        self.assertEqual(self.b.http_get(addr, 8080)[0], 200)
        d.start()
        vm = d.wait_state("h1", "running", timeout=30)
        self.assertEqual(vm["pid"], pid, "not re-adopted")
        self.assertEqual(self.b.http_get(addr, 8080)[0], 200)

        d.cli("stop", "h1", "--timeout", "30")
        d.wait_state("h1", "stopped", timeout=60)
        self.assertIsNone(self.a.link(nic["macvtap"]), "macvtap left after stop")
        self.assertIsNone(self.b.http_get(addr, 8080, timeout=1))
        d.cli("remove", "h1")
        self.assertEqual(self.a.snapshot(), before)
        self.assertEqual(files_under(os.path.join(d.run, "vms")), [])

    def test_refusals_name_the_reason(self):
        d = self.daemon()
        d.refuse("p", 400, ("port", "'host'"), networks=[{"mode": "host"}],
                 ports=[{"protocol": "tcp", "host_port": 24998, "vm_port": 8080}])
        d.refuse("q", 400, ("host interface 'nope0' does not exist",),
                 networks=[{"mode": "host", "interface": "nope0"}])
        d.refuse("r", 400, ("networks[0].mac",),
                 networks=[{"mode": "host", "mac": "01:00:5e:00:00:01"}])
        d.refuse("s", 400, ("networks[0].bridge: not a parameter of mode 'host'",),
                 networks=[{"mode": "host", "bridge": "br0"}])
        # With a NIC that can carry them, the ports go there and the host NIC
        # is added beside it.
        vm = d.create("both", networks=[{"mode": "user"}, {"mode": "host"}], start=False,
                      ports=[{"protocol": "tcp", "host_port": 24997, "vm_port": 8080}])
        self.assertEqual(len(vm["ports"]), 1)
        d.cli("remove", "both")


class OnTheSegment_libvirt(LibvirtInNetns, HostTest):
    """The libvirt backend, with a private libvirtd started inside namespace
    A (its QEMUs must see the macvtap cvmmd makes there)."""
    def libvirt_netns(self):
        return [self.a]

    def test_guest_answers_on_the_segment_and_survives_kill9(self):
        t0 = time.monotonic()
        self.start_dhcp()
        d = self.daemon()
        before = self.a.settled_snapshot()
        d.create("h1", networks=[{"mode": "host"}])
        vm = d.wait_state("h1", ("running", "failed"))
        self.assertEqual(vm["state"], "running", vm["reason"])
        self.assertEqual(self.lv.domains(), ["cvmm-h1"])
        nic = vm["nics"][0]
        self.assertRegex(nic["macvtap"], r"^cvh[0-9a-f]{12}$")
        self.assertEqual(nic["interface"], "hnic")
        link = self.a.link(nic["macvtap"])
        self.assertEqual(link["linkinfo"]["info_kind"], "macvtap")
        self.assertEqual(link["link"], "hnic")
        self.assertEqual(link["address"], nic["mac"])
        pids = wait_for(lambda: qemu_pids_for(vm["id"]) or None, 30, "libvirt's QEMU of h1")
        self.assertEqual(len(pids), 1)
        pid = pids[0]

        d.wait_ready("h1")
        addr = wait_for(lambda: self.lease_of(nic["mac"]), 30, "a DHCP lease for " + nic["mac"])
        self.assertIn("cvmm-tiny: eth0 %s/24" % addr, d.logs("h1"))
        r = wait_for(lambda: self.b.http_get(addr, 8080), 30, "the guest from the segment")
        self.assertEqual(r, (200, "hello from cvmm-tiny h1\n"))

        d.kill9()
        self.assertTrue(pid_alive(pid))
        self.assertEqual(self.b.http_get(addr, 8080)[0], 200)
        d.start()
        d.wait_state("h1", "running", timeout=30)
        self.assertEqual(qemu_pids_for(vm["id"]), [pid], "not re-adopted")
        self.assertEqual(self.b.http_get(addr, 8080)[0], 200)

        d.cli("stop", "h1", "--timeout", "30")
        d.wait_state("h1", "stopped", timeout=60)
        self.assertIsNone(self.a.link(nic["macvtap"]), "macvtap left after stop")
        self.assertIsNone(self.b.http_get(addr, 8080, timeout=1))
        self.assertEqual(self.lv.domains(), [])
        d.cli("remove", "h1")
        self.assertEqual(self.a.snapshot(), before)
        self.assertEqual(files_under(os.path.join(d.run, "vms")), [])
        print("\n    host mode on libvirt, kill -9: %.0f s " % (time.monotonic() - t0), end="... ")


class Config(HostTest):
    def test_config_error_names_the_key(self):
        d = NetnsDaemon(self.a, plugins=PLUGINS,
                        plugin_sections='net-host = { interface = "hnic"; macvtap_mode = "hub"; };')
        self.daemons.append(d)
        r = self.a.run(CVMMD, "-c", d.conf, check=False, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("plugin.net-host.macvtap_mode: must be bridge, vepa, private or passthru, "
                      "got 'hub'", r.stderr)


class LeakSoak(NetSoak, HostTest):
    NETWORKS = [{"mode": "host"}]

    @property
    def soak_ns(self):
        return self.a

    def soak_daemon(self, event):
        return self.daemon(plugins=PLUGINS + ("test-fail",),
                           sections=' test-fail = { event = "%s"; name_prefix = "bad"; };' % event)

    def test_50_cycles_and_failed_starts_leak_nothing(self):
        def on_segment(vm):
            link = self.a.link(vm["nics"][0]["macvtap"])
            self.assertEqual(link["link"], "hnic")
            self.assertEqual(os.readlink("/proc/%d/fd/10" % vm["pid"]),
                             "/dev/tap%d" % link["ifindex"])
        self.run_soak("host", on_segment, "macvtap")


if __name__ == "__main__":
    unittest.main()
