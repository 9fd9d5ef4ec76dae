"""Network mode "passt" (plugin net-passt) on real QEMU guests (TCG) and the
real passt: one passt process per NIC, started before QEMU and stopped after
it, DHCP from passt, port mapping through passt, re-adoption after
`kill -9 cvmmd`, and a leak soak with starts that fail half-way. (Faults
at each lifecycle event, on both backends: test_faults.py.)

"Reaches its gateway": the guest has no console input, so the check is the
mapped port. passt presents a client on the host's loopback to the guest as
coming from the gateway's address (passt(1), NOTES), so the HTTP answer read
on 127.0.0.1 is traffic the guest sent to its gateway, 10.0.2.2."""
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import unittest

from harness import (Daemon, DaemonTest, fd_count, files_under, http_get, per_backend, pid_alive,
                     quiet_fd_count,
                     port_open, procs_mentioning, wait_for)

PLUGINS = ("backend-qemu", "net-user", "net-passt")
PASST = [{"mode": "passt"}]


def tcp(host_port, vm_port=8080):
    return {"protocol": "tcp", "host_address": "127.0.0.1", "host_port": host_port,
            "vm_port": vm_port}


def passt_procs(d):
    """Live passt processes of this daemon (their socket is under its run dir)."""
    return procs_mentioning(d.run, exe="passt")


def qemu_procs(d):
    return procs_mentioning(d.dir, exe="qemu-system")


def nic0(vm):
    return (vm.get("nics") or [{}])[0]


def start_time(pid):
    """When the process started, in clock ticks since boot."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def console_lines(d, name):
    return [l for l in d.logs(name).splitlines() if l.startswith("cvmm-tiny:")]


class PasstTest(DaemonTest):
    daemon_args = dict(plugins=PLUGINS)

    def tearDown(self):
        # After a failed test: the harness kills leftover QEMUs; passt too.
        run = self.d.run
        super().tearDown()
        for pid in procs_mentioning(run, exe="passt"):
            os.kill(pid, signal.SIGKILL)

    def assertNothingLeft(self, d, vm_id=None):
        self.assertEqual(passt_procs(d), {}, "passt processes left behind")
        self.assertEqual(qemu_procs(d), {}, "QEMU processes left behind")
        if vm_id:
            self.assertEqual(files_under(os.path.join(d.run, "vms", vm_id)), [],
                             "files left in the VM's run directory")


class Config(unittest.TestCase):
    """plugin.net-passt: dstack's keys; what this passt cannot do is refused
    when the daemon starts, with the key named."""

    def start_with(self, section):
        d = Daemon(plugins=("backend-qemu", "net-passt"),
                   plugin_sections="net-passt = { %s };" % section)
        try:
            d.start()
            d.stop()
            return None
        except AssertionError:
            return [l for l in d.read_log().splitlines() if l.startswith("cvmmd:")][-1]
        finally:
            d.cleanup()

    def test_dstack_keys_accepted(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        self.assertIsNone(self.start_with(
            'address = "10.0.2.10"; netmask = "255.255.255.0"; gateway = "10.0.2.2";'
            ' dns = ["1.1.1.1", "1.0.0.1"]; map_host_loopback = "none";'
            ' map_guest_addr = "none"; no_map_gw = true; ipv4_only = true;'
            ' interface = "lo"; passt = "passt";'))
        # The gateway is what passt 2023 maps the host's loopback to anyway.
        self.assertIsNone(self.start_with('no_map_gw = false; map_host_loopback = "10.0.2.2";'))

    def test_refusals(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        cases = [
            ('adress = "10.0.2.3";', "plugin.net-passt.adress: unknown key"),
            ('map_guest_addr = "10.0.2.3";', "has no --map-guest-addr option"),
            ('no_map_gw = false; map_host_loopback = "10.0.2.9";',
             "has no --map-host-loopback option"),
            ('map_host_loopback = "10.0.2.2";', "contradicts no_map_gw = true"),
            ('dns = ["fd00::53"];', "plugin.net-passt.dns: fd00::53 is IPv6"),
            ('dns = "1.1.1.1";', "plugin.net-passt.dns: must be a list"),
            ('gateway = "10.0.9.1";', "plugin.net-passt.gateway: 10.0.9.1 is outside"),
            ('passt = "/nonexistent/passt";', "plugin.net-passt.passt: cannot find"),
            ('passt = "/bin/true";', "does not look like passt"),
        ]
        for section, want in cases:
            line = self.start_with(section)
            self.assertIsNotNone(line, section)
            self.assertIn(want, line, section)


class Boot(PasstTest):
    def test_dhcp_port_info_and_graceful_stop(self):
        d = self.d
        vm = d.create("pa1", networks=PASST, ports=[tcp(26080)])
        # The MAC and the address are known from the definition on.
        self.assertRegex(nic0(vm).get("mac", ""), r"^52:54:00(:[0-9a-f]{2}){3}$")
        self.assertEqual(nic0(vm).get("address"), "10.0.2.10/24")
        vm = d.wait_state("pa1", "running")
        nic = nic0(vm)
        self.assertEqual(nic["mode"], "passt")
        sock = os.path.join(d.run, "vms", vm["id"], "passt-net0.sock")
        self.assertEqual(nic.get("socket"), sock)
        passt = int(nic["passt_pid"])
        self.assertEqual(list(passt_procs(d)), [passt])
        self.assertIn(sock, passt_procs(d)[passt])
        self.assertTrue(os.path.exists(sock))
        # passt was started before QEMU, and QEMU joined its socket.
        qemu_pid = self.qemu_pid("pa1")
        qemu = procs_mentioning(vm["id"], exe="qemu-system")[qemu_pid]
        self.assertIn("stream,id=net0,server=off,addr.type=unix,addr.path=%s" % sock, qemu)
        self.assertTrue(any(nic["mac"] in a for a in qemu), "MAC %s not given to QEMU"
                        % nic["mac"])
        self.assertLessEqual(start_time(passt), start_time(qemu_pid))
        # `cvmm info` shows the NIC's mode, MAC, socket and address.
        info = d.cli("info", "pa1").stdout
        for s in ("passt", nic["mac"], sock, "10.0.2.10/24"):
            self.assertIn(s, info)
        # DHCP from passt: the guest got the configured address.
        d.wait_ready("pa1")
        self.assertIn("cvmm-tiny: eth0 10.0.2.10/24", console_lines(d, "pa1"))
        # The service in the guest answers on the mapped host port.
        status, body = wait_for(lambda: port_open(26080) and http_get(26080), 30, "port 26080")
        self.assertEqual(status, 200)
        self.assertIn("hello from cvmm-tiny pa1", body)
        # Graceful stop: QEMU powers off, then passt is stopped.
        d.cli("stop", "pa1", "--timeout", "30")
        d.wait_state("pa1", "stopped", timeout=45)
        self.assertFalse(pid_alive(passt), "passt still runs after stop")
        self.assertFalse(os.path.exists(sock), "passt socket left after stop")
        self.assertFalse(port_open(26080), "the mapped port still answers after stop")
        vm = d.vm("pa1")
        self.assertNotIn("socket", nic0(vm))
        self.assertNotIn("passt_pid", nic0(vm))
        self.assertNothingLeft(d, vm["id"])
        d.cli("remove", "pa1")
        self.assertFalse(os.path.exists(os.path.join(d.data, "vms", vm["id"])))

    def test_qemu_killed_gets_a_new_passt(self):
        d = self.d
        vm = d.create("pa2", networks=PASST)
        vm = d.wait_state("pa2", "running")
        old_passt = int(nic0(vm)["passt_pid"])
        self.end_from_outside("pa2")
        vm = wait_for(lambda: (lambda v: v if v and v["state"] == "running" and
                               nic0(v).get("passt_pid") not in (None, str(old_passt))
                               else None)(d.vm("pa2")), 60, "pa2 to be restarted")
        self.assertFalse(pid_alive(old_passt), "the old passt outlived its QEMU")
        self.assertEqual(list(passt_procs(d)), [int(nic0(vm)["passt_pid"])])
        d.cli("kill", "pa2")
        d.wait_state("pa2", "stopped")
        self.assertNothingLeft(d, vm["id"])
        d.cli("remove", "pa2")


class Refusals(PasstTest):
    def refused(self, body, *want):
        body = dict({"image": "tiny", "start": False}, **body)
        st, o = self.d.api("POST", "/v1/vms", body)
        self.assertEqual(st, 400, o)
        msg = o["error"]["message"]
        for w in want:
            self.assertIn(w, msg)
        return msg

    def test_bad_parameters_are_refused_with_the_field_named(self):
        self.refused({"name": "r1", "networks": [{"mode": "passt", "vlan": "3"}]},
                     "networks[0].vlan: not a parameter of mode 'passt'")
        self.refused({"name": "r2", "networks": [{"mode": "passt", "address": "10.0.3.7"}]},
                     "plugin.net-passt.gateway: 10.0.2.2 is outside the guest's subnet 10.0.3.0/24")
        self.refused({"name": "r3", "networks": [{"mode": "passt", "gateway": "10.0.2.10"}]},
                     "networks[0].gateway: 10.0.2.10 is also the guest's address")
        self.refused({"name": "r4", "networks": [{"mode": "passt", "netmask": "255.0.255.0"}]},
                     "networks[0].netmask: must be a contiguous IPv4 netmask")
        self.refused({"name": "r5", "networks": [{"mode": "passt", "address": "fd00::5"}]},
                     "networks[0].address: must be an IPv4 address")
        self.refused({"name": "r6", "networks": [{"mode": "passt", "dns": "1.1.1.1,fd00::53"}]},
                     "networks[0].dns: fd00::53 is IPv6", "ipv4_only = true")
        self.refused({"name": "r7", "networks": [{"mode": "passt", "mac": "01:00:5e:00:00:01"}]},
                     "networks[0].mac: must be a unicast MAC address")
        # Nothing of the refused VMs stayed.
        self.assertEqual(self.d.api("GET", "/v1/vms")[1]["vms"], [])
        self.assertEqual(passt_procs(self.d), {})

    def test_udp_mapping_and_overrides_accepted(self):
        d = self.d
        vm = d.create("ok1", start=False, networks=[
            {"mode": "passt", "address": "10.0.3.7", "netmask": "24", "gateway": "10.0.3.1",
             "dns": "9.9.9.9", "mac": "52:54:00:aa:bb:cc"}],
            ports=[tcp(26180), {"protocol": "udp", "host_address": "127.0.0.1",
                                "host_port": 26181, "vm_port": 53}])
        self.assertEqual(nic0(vm)["mac"], "52:54:00:aa:bb:cc")
        self.assertEqual(nic0(vm)["address"], "10.0.3.7/24")
        self.assertEqual(nic0(vm)["gateway"], "10.0.3.1")
        d.cli("remove", "ok1")

    def test_port_already_taken_fails_the_start_clearly(self):
        d = self.d
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 26280))
        s.listen()
        try:
            vm = d.create("busy", networks=PASST, ports=[tcp(26280)])
            vm = d.wait_state("busy", "failed")
        finally:
            s.close()
        self.assertIn("passt exited during start", vm["reason"])
        self.assertIn("127.0.0.1/26280:8080", vm["reason"])
        self.assertNothingLeft(d, vm["id"])
        d.cli("remove", "busy")


class Readoption(PasstTest):
    def test_kill9_daemon_with_two_vms(self):
        d = self.d
        d.create("ka", networks=PASST, ports=[tcp(26380)])
        # Per-NIC overrides of address, netmask, gateway, DNS and MAC.
        d.create("kb", networks=[{"mode": "passt", "address": "10.0.3.7",
                                  "netmask": "255.255.255.0", "gateway": "10.0.3.1",
                                  "dns": "10.0.3.1", "mac": "52:54:00:aa:bb:cc"}],
                 ports=[tcp(26381)])
        # A third VM whose QEMU dies while the daemon is down.
        d.create("kc", networks=PASST)
        vms = {n: d.wait_state(n, "running") for n in ("ka", "kb")}
        kc = d.wait_state("kc", "running")
        kc_passt = int(nic0(kc)["passt_pid"])
        passt = {n: int(nic0(v)["passt_pid"]) for n, v in vms.items()}
        qemu = {n: self.qemu_pid(n) for n in vms}
        kc_qemu = self.qemu_pid("kc")
        self.assertEqual(sorted(passt_procs(d)), sorted(list(passt.values()) + [kc_passt]))
        d.kill9()
        for n in vms:
            self.assertTrue(pid_alive(passt[n]), "%s's passt died with the daemon" % n)
            self.assertTrue(pid_alive(qemu[n]), "%s's QEMU died with the daemon" % n)
        if self.backend == "libvirt":
            self.lv.virsh("destroy", "cvmm-kc")
        else:
            os.kill(kc_qemu, signal.SIGKILL)
        wait_for(lambda: not pid_alive(kc_qemu), 10, "kc's QEMU to die")
        d.start()
        # kc: its boot was undone (passt gone), then auto-restart started it.
        kc = wait_for(lambda: (lambda v: v if v["state"] == "running" and
                               nic0(v).get("passt_pid") not in (None, str(kc_passt))
                               else None)(d.vm("kc")), 60, "kc to be restarted")
        self.assertFalse(pid_alive(kc_passt), "kc's passt outlived its QEMU")
        self.assertTrue(pid_alive(int(nic0(kc)["passt_pid"])))
        for n in vms:
            vm = d.wait_state(n, "running", timeout=30)
            self.assertEqual(self.qemu_pid(n), qemu[n], "%s's QEMU was not re-adopted" % n)
            self.assertEqual(int(nic0(vm)["passt_pid"]), passt[n],
                             "%s's passt was not re-adopted" % n)
        self.assertIn("re-adopted passt pid %d" % passt["ka"], d.read_log())
        self.assertEqual(sorted(passt_procs(d)),
                         sorted(list(passt.values()) + [int(nic0(kc)["passt_pid"])]))
        d.cli("kill", "kc")
        # The network still works through the re-adopted passt processes.
        d.wait_ready("kb")
        self.assertIn("cvmm-tiny: eth0 10.0.3.7/24", console_lines(d, "kb"))
        self.assertTrue(any("52:54:00:aa:bb:cc" in a for a in
                            procs_mentioning(vms["kb"]["id"], exe="qemu-system")[qemu["kb"]]))
        status, body = wait_for(lambda: port_open(26381) and http_get(26381), 30, "port 26381")
        self.assertIn("hello from cvmm-tiny kb", body)
        d.wait_ready("ka")
        self.assertIn("cvmm-tiny: eth0 10.0.2.10/24", console_lines(d, "ka"))
        wait_for(lambda: port_open(26380) and http_get(26380)[0] == 200, 30, "port 26380")
        d.cli("stop", "ka", "--timeout", "30")
        d.cli("kill", "kb")
        for n in list(vms) + ["kc"]:
            d.wait_state(n, "stopped", timeout=45)
            self.assertFalse(pid_alive(passt.get(n, kc_passt)))
            d.cli("remove", n)
        self.assertNothingLeft(d)
        self.assertEqual(files_under(os.path.join(d.run, "vms")), [])


class CrashDuringStart(PasstTest):
    """kill -9 cvmmd while a passt is starting (a wrapper makes passt slow to
    come up), restart: the interrupted start is undone, passt included, even
    when its pid never reached the manifest."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cvmm-passt-slow-")
        self.wrapper = os.path.join(self.tmp, "passt-slow")
        with open(self.wrapper, "w") as f:
            f.write('#!/bin/sh\n[ "$1" = --help ] || sleep 4\nexec %s "$@"\n'
                    % shutil.which("passt"))
        os.chmod(self.wrapper, 0o755)
        self.daemon_args = dict(plugins=PLUGINS,
                                plugin_sections='net-passt = { passt = "%s"; };' % self.wrapper)
        super().setUp()

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_kill9_daemon_while_passt_starts(self):
        d = self.d
        vm = d.create("slow", networks=PASST, ports=[tcp(26880)])
        sock = os.path.join(d.run, "vms", vm["id"], "passt-net0.sock")
        first = wait_for(lambda: list(procs_mentioning(sock)), 20, "passt to be started")
        self.assertEqual(d.vm("slow")["state"], "starting")
        d.kill9()
        self.assertTrue(pid_alive(first[0]), "passt died with the daemon")
        # Plugin state is written with the start's second manifest write,
        # once the VM runs: a start killed before that has no record of
        # passt's pid, and teardown must still find passt, by the socket on
        # its command line.
        manifest = os.path.join(d.data, "vms", vm["id"], "manifest.json")
        with open(manifest) as f:
            m = json.load(f)
        self.assertEqual(m["state"], "starting")
        self.assertNotIn("net0.identity", m.get("plugins", {}).get("net-passt", {}))
        d.start()
        # The start is undone (passt ended) and, as the VM should run, redone.
        wait_for(lambda: not pid_alive(first[0]), 30, "the interrupted start's passt to end")
        vm = d.wait_state("slow", "running", timeout=60)
        self.assertNotEqual(int(nic0(vm)["passt_pid"]), first[0])
        self.assertEqual(list(passt_procs(d)), [int(nic0(vm)["passt_pid"])])
        d.cli("kill", "slow")
        d.wait_state("slow", "stopped")
        self.assertNothingLeft(d, vm["id"])
        d.cli("remove", "slow")


class LeakSoak(PasstTest):
    """50 cycles of create, start, stop, remove (not waiting for the guest to
    boot), plus 10 starts that fail after the network is up; the host must
    look the same before and after."""
    CYCLES = 50
    FAILURES = 10
    daemon_args = dict(plugins=PLUGINS + ("test-fail",),
                       plugin_sections='test-fail = { event = "started"; name_prefix = "bad"; };')

    def snapshot(self):
        d = self.d
        # <run>/vms, the parent of the VMs' run directories, is made by the
        # core on the first start and stays; what is inside it must not.
        return {"passt": sorted(passt_procs(d)), "qemu": sorted(qemu_procs(d)),
                "run_files": [f for f in files_under(d.run) if f != "vms"],
                "fds": quiet_fd_count(d.proc.pid)}

    def wait_state(self, name, states, timeout=60):
        # Tighter polling than the harness: the soak is mostly waiting.
        return wait_for(lambda: (lambda v: v if v and v["state"] in states else None)(
            self.d.vm(name)), timeout, "%s to be %s" % (name, "/".join(states)), interval=0.05)

    def cycle(self, name, k, port):
        d = self.d
        st, vm = d.api("POST", "/v1/vms", {"name": name, "image": "tiny", "networks": PASST,
                                           "ports": [tcp(port)]})
        self.assertEqual(st, 201, vm)
        vm = self.wait_state(name, ("running", "failed"))
        if name.startswith("bad"):
            self.assertEqual(vm["state"], "failed")
            self.assertIn("failing on purpose", vm["reason"])
        else:
            self.assertEqual(vm["state"], "running", vm["reason"])
            if k % 2:
                st, _ = d.api("POST", "/v1/vms/%s/stop" % name, {"force": True})
            else:
                st, _ = d.api("POST", "/v1/vms/%s/kill" % name)
            self.assertEqual(st, 202)
            self.wait_state(name, ("stopped",))
        st, _ = d.api("DELETE", "/v1/vms/" + name)
        self.assertEqual(st, 200)

    def test_soak(self):
        d = self.d
        before = self.snapshot()
        t0 = time.monotonic()
        errors = []

        # Two lanes in parallel (the daemon runs jobs of different VMs on
        # different workers), each with half of the cycles and failures.
        def lane(n):
            try:
                for j in range(self.CYCLES // 2):
                    self.cycle("soak%d-%d" % (n, j), j, 26600 + n)
                    if j % 5 == 4:
                        self.cycle("bad%d-%d" % (n, j), j, 26700 + n)
            except Exception as e:  # reported below, with its lane
                errors.append("lane %d: %r" % (n, e))

        lanes = [threading.Thread(target=lane, args=(n,)) for n in (0, 1)]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join()
        took = time.monotonic() - t0
        self.assertEqual(errors, [])
        log = d.read_log()
        self.assertEqual(log.count("passt pid "), self.CYCLES + self.FAILURES)
        self.assertEqual(log.count("started fails on purpose"), self.FAILURES)
        # The API's last connection may still be closing: allow a moment.
        end = time.monotonic() + 10
        after = self.snapshot()
        while after != before and time.monotonic() < end:
            time.sleep(0.2)
            after = self.snapshot()
        print("\n  soak: %d cycles + %d failed starts in %.1f s\n  before: %s\n  after:  %s" % (
            self.CYCLES, self.FAILURES, took, before, after), flush=True)
        self.assertEqual(after, before)
        self.assertEqual(d.api("GET", "/v1/vms")[1]["vms"], [])


# The boot and re-adoption paths also run on backend-libvirt (which
# hands the stream NIC to its QEMU on the command line); the config checks,
# the refusals, the crash during passt's start and the soak are about
# net-passt alone and run once.
per_backend(Boot, Readoption, namespace=globals())


if __name__ == "__main__":
    unittest.main()
