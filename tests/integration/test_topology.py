"""A VM with the launch spec's ABI 1.2 topology boots under TCG, and the guest
sees it: two NUMA cells (vCPU 0 in node 0, vCPU 1 in node 1), an expander bus
per cell with its NUMA node, root ports, a PCIe switch (upstream and
downstream port), as printed by the tiny guest at boot
("cvmm-tiny: numa ...", "cvmm-tiny: pci BDF VENDOR:DEVICE CLASS node N",
scripts/build-test-guest.sh). On both backends the vCPU threads are pinned
crosswise (vCPU 0 -> host CPU 1, vCPU 1 -> host CPU 0) and every other QEMU
thread to CPU 0, checked in /proc/PID/task/*/status. The topology comes from
the test-topology plugin (tests/plugins/test_topology.c) through the 1.2
builders, as gpu-vfio's would. Once per backend (per_backend)."""
import os
import re
import unittest

from harness import DaemonTest, per_backend, qemu_pids_for, wait_for

SECTION = ('test-topology = { name_prefix = "topo"; sockets = 2; cells = ["0@0", "1@0"]; '
           'pins = ["0=1", "1=0"]; emulator_cpus = "0"; '
           'pcie = ["expander:pxb0::0:32", "expander:pxb1::1:64", "root-port:rp0:pxb0", '
           '"root-port:rp1:pxb1", "switch-up:sw0:rp1", "switch-down:sw0d0:sw0", '
           '"switch-down:sw0d1:sw0"]; };')

ROOT_PORT, SWITCH_UP, SWITCH_DOWN, PXB = "1b36:000c", "104c:8232", "104c:8233", "1b36:000b"


def cpus_allowed(pid):
    """{tid: Cpus_allowed_list} of every thread of pid."""
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, t)) as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    out[int(t)] = line.split(":", 1)[1].strip()
    return out


class Topology(DaemonTest):
    daemon_args = dict(plugins=("backend-qemu", "net-user", "test-topology"),
                       plugin_sections=SECTION)

    def test_guest_sees_cells_bridges_and_threads_are_pinned(self):
        d = self.d
        self.assertGreaterEqual(os.cpu_count(), 2, "the pins name host CPUs 0 and 1")
        vm = d.create("topo1", vcpu=2, memory_mb=256)
        d.wait_state("topo1", "running", timeout=120)
        d.wait_ready("topo1")
        log = d.logs("topo1")
        # Two NUMA nodes, one vCPU each, as the cells say.
        numa = dict(re.findall(r"cvmm-tiny: numa (node\d+) cpus (\S+)", log))
        self.assertEqual(numa, {"node0": "0", "node1": "1"}, log[-3000:])
        # The PCI tree: BDF -> (ids, class, node).
        pci = {m[0]: (m[1], m[2], m[3]) for m in
               re.findall(r"cvmm-tiny: pci (\S+) (\S+) (\S+) node (-?\d+)", log)}
        self.assertTrue(pci, log[-3000:])
        # Two expander host bridges on the root bus.
        self.assertEqual(sum(1 for b, v in pci.items() if v[0] == PXB and b.startswith("0000:00:")),
                         2, pci)
        # Their buses 0x20 (cell 0) and 0x40 (cell 1) each start with a root
        # port of that NUMA node.
        self.assertEqual(pci.get("0000:20:00.0"), (ROOT_PORT, "060400", "0"), pci)
        self.assertEqual(pci.get("0000:40:00.0"), (ROOT_PORT, "060400", "1"), pci)
        # Under cell 1's root port a switch: upstream port, two downstream ports.
        ups = [b for b, v in pci.items() if v[0] == SWITCH_UP]
        downs = sorted(b for b, v in pci.items() if v[0] == SWITCH_DOWN)
        self.assertEqual(ups, ["0000:41:00.0"], pci)
        self.assertEqual(downs, ["0000:42:00.0", "0000:42:01.0"], pci)
        self.assertTrue(all(pci[b][2] == "1" for b in ups + downs), pci)
        self.check_pins(vm)
        d.cli("stop", "topo1")
        d.wait_state("topo1", "stopped")
        d.cli("remove", "topo1")

    def check_pins(self, vm):
        pid = self.qemu_pid("topo1")
        threads = cpus_allowed(pid)
        # vCPU threads are named "CPU n/TCG" (-name debug-threads=on).
        names = {}
        for t in threads:
            with open("/proc/%d/task/%d/comm" % (pid, t)) as f:
                names[t] = f.read().strip()
        vcpu = {int(re.match(r"CPU (\d+)/", n).group(1)): t for t, n in names.items()
                if re.match(r"CPU \d+/", n)}
        self.assertEqual(sorted(vcpu), [0, 1], names)
        self.assertEqual(threads[vcpu[0]], "1", (names, threads))
        self.assertEqual(threads[vcpu[1]], "0", (names, threads))
        others = {names[t]: c for t, c in threads.items() if t not in vcpu.values()}
        self.assertTrue(others)
        self.assertEqual(set(others.values()), {"0"}, others)

    def test_builder_refusal_fails_the_start_naming_it(self):
        d = self.d
        # 3 vCPUs cannot make 2 sockets of equal cores: spec_set_topology
        # refuses and the start fails with the plugin's message.
        d.create("topo-bad", vcpu=3, memory_mb=256)
        vm = d.wait_state("topo-bad", "failed", timeout=60)
        self.assertIn("2 sockets for 3 vCPUs", vm["reason"])
        self.assertEqual(qemu_pids_for(vm["id"]), [])
        d.cli("remove", "topo-bad")


per_backend(Topology, namespace=globals())
