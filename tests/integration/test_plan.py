"""The topology planner (gpu-vfio's plan.c) through the real daemon, on the
fake HGX sysfs tree (tests/gpu/make-fake-sysfs.py: 96 CPUs, even ones on node
0 and odd ones on node 1, 8 GPUs each under its own switch with a
ConnectX-7, 4 NVSwitches): `POST /v1/vms?dry_run=1` answers with the launch
spec the plugins built, and that spec must be, field for field, the
committed fixture in tests/fixtures/spec/ (hgx-full, hgx-2gpu-node1,
mirror-nogpu; and trust-sysconfig, the kms and gateway plugins' fw_cfg
entry). Those fixtures are what the renderers' golden argv and XML
(unit.qemu_argv, unit.libvirt_xml) are made from and what
check-with-qemu.sh and `virsh define` are run on: so the planner's output
is what those checks prove.

    CVMM_REGENERATE=1 ctest -R integration.plan   # rewrite the three fixtures
    CVMM_REGENERATE=1 build/tests/unit/test_qemu_argv
    CVMM_REGENERATE=1 build/tests/unit/test_libvirt_xml

Also here: refusals (not enough free CPUs on the node a VM's GPUs need, a
vCPU count the cells cannot split), pins leased at create and avoided by
the next VM, released at removal, and "nccl" (a flat tree, the NCCL topology
file named in a fw_cfg entry). Nothing boots: no QEMU is started."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

from harness import Daemon

HERE = os.path.dirname(os.path.abspath(__file__))
GPU_TOOLS = os.path.join(HERE, "..", "gpu")
FIXTURES = os.path.join(HERE, "..", "fixtures", "spec")
REGENERATE = os.environ.get("CVMM_REGENERATE") == "1"

# The fixtures' fixed identity: uuid, MAC, paths under /var/lib/cvmm and
# /run/cvmm (tests/fixtures/README.md, "Conventions for fixtures").
CASES = {
    # NVIDIA's full passthrough: every GPU, NVSwitch and GPUDirect NIC; 80
    # vCPUs pinned as in the guide (vCPU 0 -> 94, ... 39 -> 16 on node 0;
    # 40 -> 95, ... 79 -> 17 on node 1), CPUs 0-15 kept for the host.
    "hgx-full": ("0b6a3c1e-2d4f-4a8b-9c0d-1e2f3a4b5c6d", "52:54:00:0b:6a:3c",
                 {"vcpu": 80, "memory_mb": 16384,
                  "gpus": {"attach_mode": "all", "peer_nics": True}}),
    # Two GPUs of node 1 with their NICs: one cell bound to node 1; GPU
    # b2:00.0 comes with its audio function (same IOMMU group).
    "hgx-2gpu-node1": ("1c7b4d2f-3e5a-4b9c-8d1e-2f3a4b5c6d7e", "52:54:00:1c:7b:4d",
                       {"vcpu": 4, "memory_mb": 4096,
                        "gpus": {"attach_mode": "listed", "peer_nics": True,
                                 "gpus": [{"slot": "92:00.0"}, {"slot": "b2:00.0"}]}}),
    # "topology": "mirror" without devices: a cell per host node.
    "mirror-nogpu": ("2d8c5e3a-4f6b-4cad-9e2f-3a4b5c6d7e8f", "52:54:00:2d:8c:5e",
                     {"vcpu": 4, "memory_mb": 1024, "topology": "mirror"}),
}


def normalise(spec, d, vm_id, uuid, mac, name):
    """The daemon's paths, random id and MAC -> the fixtures' fixed ones."""
    text = json.dumps(spec)
    text = text.replace(d.data + "/", "/var/lib/cvmm/").replace(d.run + "/", "/run/cvmm/")
    text = text.replace(vm_id, uuid)
    spec = json.loads(text)
    for nic in spec.get("nics", []):
        nic["mac"] = mac
    # The image's files live where this host built it; the fixtures name
    # them under the development data_dir.
    for k in ("kernel", "initrd"):
        if spec.get(k):
            spec[k] = "/var/lib/cvmm/images/tiny/" + os.path.basename(spec[k])
    spec["name"] = name
    spec["cmdline"] = re.sub(r"cvmm\.name=\S+", "cvmm.name=" + name, spec.get("cmdline", ""))
    return spec


class Planner(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cvmm-plan-")
        cls.tree = os.path.join(cls.tmp, "tree")
        subprocess.run([sys.executable, os.path.join(GPU_TOOLS, "make-fake-sysfs.py"), "hgx",
                        cls.tree], check=True)
        # A dry run and a create only read sysfs: the tree itself will do.
        d = Daemon(plugins=("backend-qemu", "net-user", "gpu-vfio"),
                   plugin_sections='gpu-vfio = { root = "%s"; };' % cls.tree)
        with open(d.conf) as f:
            conf = f.read()
        conf = conf.replace("max_allocable_vcpu = 16; max_allocable_memory_in_mb = 16384;",
                            "max_allocable_vcpu = 96; max_allocable_memory_in_mb = 65536;")
        conf = conf.replace("cvm = {", 'cvm = {\n  host_cpus = "0-15";\n  gpu = { enabled = true; '
                            'listing = [ "10de:2335" ]; allow_attach_all = true; };', 1)
        with open(d.conf, "w") as f:
            f.write(conf)
        d.start()
        cls.d = d

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def dry(self, name, **body):
        b = {"name": name, "image": "tiny", "start": False}
        b.update(body)
        return self.d.api("POST", "/v1/vms?dry_run=1", b)

    def test_fixtures_are_what_the_planner_builds(self):
        for name, (uuid, mac, body) in sorted(CASES.items()):
            st, o = self.dry(name, **body)
            self.assertEqual(st, 200, "%s: %s" % (name, o))
            spec = normalise(o["spec"], self.d, o["vm"]["id"], uuid, mac, name)
            path = os.path.join(FIXTURES, name + ".json")
            if REGENERATE:
                with open(path, "w") as f:
                    json.dump(spec, f, indent=2)
                    f.write("\n")
                continue
            with open(path) as f:
                want = json.load(f)
            self.assertEqual(spec, want, "%s: the planner's spec differs from %s "
                             "(CVMM_REGENERATE=1 rewrites it; review the diff)" % (name, path))

    def test_full_passthrough_shape(self):
        st, o = self.dry("full", **CASES["hgx-full"][2])
        self.assertEqual(st, 200, o)
        s = o["spec"]
        self.assertEqual((s["sockets"], s["cores"], s["threads"]), (2, 40, 1))
        self.assertEqual([(c["cpus"], c["host_node"]) for c in s["numa"]],
                         [("0-39", 0), ("40-79", 1)])
        pins = {p["vcpu"]: int(p["host_cpus"]) for p in s["pins"]}
        # the guide's pinning: descending from the top of each node, the
        # 16 lowest CPUs (cvm.host_cpus) untouched
        self.assertEqual([pins[v] for v in range(40)], list(range(94, 15, -2)))
        self.assertEqual([pins[v] for v in range(40, 80)], list(range(95, 16, -2)))
        self.assertEqual(s["emulator_cpus"], "0-15")
        devs = {h["host"]: h for h in s["hostdevs"]}
        self.assertEqual(len(devs), 8 + 4 + 8 + 1)  # + GPU 5's audio function
        pcie = {e["id"]: e for e in s["pcie"]}
        self.assertEqual(sorted(e["bus_nr"] for e in s["pcie"] if e["kind"] == "expander"),
                         [0x20, 0x40])

        def cell(bus):  # the expander above a port
            while pcie[bus]["kind"] != "expander":
                bus = pcie[bus]["parent"]
            return pcie[bus]["numa_cell"]

        def switch(bus):
            return pcie[bus]["parent"] if pcie[bus]["kind"] == "switch-down" else None

        for i in range(8):
            gpu, nic = "0000:%02x:00.0" % (0x12 + 0x20 * i), "0000:%02x:00.0" % (0x13 + 0x20 * i)
            # each GPU under the same guest switch as its NIC, on its node's cell
            self.assertIsNotNone(switch(devs[gpu]["bus"]), gpu)
            self.assertEqual(switch(devs[gpu]["bus"]), switch(devs[nic]["bus"]), gpu)
            self.assertNotEqual(devs[gpu]["bus"], devs[nic]["bus"])
            self.assertEqual(cell(devs[gpu]["bus"]), i // 4, gpu)
        # no two GPUs share a switch; the NVSwitches share one of their own
        self.assertEqual(len({switch(devs["0000:%02x:00.0" % (0x12 + 0x20 * i)]["bus"])
                              for i in range(8)}), 8)
        nvs = {switch(devs["0000:%02x:00.0" % (6 + k)]["bus"]) for k in range(4)}
        self.assertEqual(len(nvs), 1)
        self.assertTrue(all(devs["0000:%02x:00.0" % (6 + k)].get("rom_off") for k in range(4)))
        # the audio function shares its GPU's guest slot
        self.assertEqual(devs["0000:b2:00.1"]["bus"], devs["0000:b2:00.0"]["bus"])
        self.assertEqual(devs["0000:b2:00.1"]["function"], 1)
        self.assertIn("pxb-pcie", " ".join(o["render"]["argv"]))

    def test_not_enough_cpus_is_refused_and_pins_are_leased(self):
        d = self.d
        # node 1 has 48 CPUs, 8 of them kept for the host: 40 free
        st, o = self.dry("big", vcpu=48, memory_mb=2048,
                         gpus={"attach_mode": "listed", "gpus": [{"slot": "92:00.0"}]})
        self.assertEqual(st, 409, o)
        self.assertIn("host node 1 has 40 free CPUs for the 48 vCPUs", o["error"]["message"])
        self.assertIn("cvm.host_cpus", o["error"]["message"])
        # cells must split the vCPUs evenly
        st, o = self.dry("odd", vcpu=3, memory_mb=1024, topology="mirror")
        self.assertEqual(st, 400, o)
        self.assertIn("3 vCPUs cannot be split evenly over the 2", o["error"]["message"])
        st, o = d.api("POST", "/v1/vms", {"name": "bad", "image": "tiny", "topology": "flat"})
        self.assertEqual(st, 400, o)
        self.assertIn("topology", o["error"]["message"])

        # A created VM leases its pins: the next one gets the CPUs below.
        a = d.create("p1", start=False, vcpu=16, memory_mb=1024,
                     gpus={"attach_mode": "listed", "gpus": [{"slot": "92:00.0"}]})
        st, o = self.dry("p2", vcpu=16, memory_mb=1024,
                         gpus={"attach_mode": "listed", "gpus": [{"slot": "d2:00.0"}]})
        self.assertEqual(st, 200, o)
        self.assertEqual([int(p["host_cpus"]) for p in o["spec"]["pins"]],
                         list(range(63, 32, -2)))
        # the VM says where its vCPUs are
        self.assertEqual(d.vm("p1")["host_cpus"], ",".join(str(c) for c in range(65, 96, 2)))
        with open(os.path.join(d.data, "gpu-vfio", "leases")) as f:
            self.assertIn("pins %s %s\n" % (a["id"], ",".join(str(c) for c in range(65, 96, 2))),
                          f.read())
        # 40 free on node 1 less 16 leased: 24 left
        st, o = self.dry("p3", vcpu=32, memory_mb=1024,
                         gpus={"attach_mode": "listed", "gpus": [{"slot": "d2:00.0"}]})
        self.assertEqual(st, 409, o)
        self.assertIn("24 free CPUs", o["error"]["message"])
        self.assertIn("16 pinned to other VMs", o["error"]["message"])
        self.assertEqual(d.api("DELETE", "/v1/vms/p1")[0], 200)
        st, o = self.dry("p3", vcpu=32, memory_mb=1024,
                         gpus={"attach_mode": "listed", "gpus": [{"slot": "d2:00.0"}]})
        self.assertEqual(st, 200, o)
        with open(os.path.join(d.data, "gpu-vfio", "leases")) as f:
            self.assertNotIn("pins", f.read())

    def test_nccl_flat_tree_and_fw_cfg(self):
        st, o = self.dry("n1", vcpu=8, memory_mb=2048, topology="nccl",
                         gpus={"attach_mode": "listed", "peer_nics": True,
                               "gpus": [{"slot": "12:00.0"}, {"slot": "92:00.0"}]})
        self.assertEqual(st, 200, o)
        s = o["spec"]
        self.assertEqual(len(s["numa"]), 2)
        self.assertEqual({e["kind"] for e in s["pcie"]}, {"root-port"})
        self.assertTrue(all(not e.get("parent") for e in s["pcie"]))
        argv = o["render"]["argv"]
        i = argv.index("-fw_cfg")
        self.assertRegex(argv[i + 1], r"^name=opt/cvmm/nccl-topo\.xml,file=/.*/nccl-topo\.xml$")
        # the CLI asks the same
        p = self.d.cli("create", "c1", "--image", "tiny", "--vcpu", "2", "--memory", "512",
                       "--topology", "mirror", "--dry-run")
        self.assertIn("pxb-pcie", p.stdout)
        st, o = self.dry("n2", vcpu=2, memory_mb=1024, topology="nccl")
        self.assertEqual(st, 400, o)
        self.assertIn("nccl", o["error"]["message"])


class SysConfigPlan(unittest.TestCase):
    """The guest's sys-config document (kms and gateway plugins): a dry run
    names it in one fw_cfg entry, for both backends; the spec is the
    fixture trust-sysconfig, from which unit.qemu_argv and unit.libvirt_xml
    render their goldens (and check-with-qemu.sh runs it)."""
    NAME, UUID, MAC = "trust-sysconfig", "3e9d6f4b-5a7c-4dbe-8f3a-4b5c6d7e8f90", "52:54:00:3e:9d:6f"

    def test_fixture_is_what_the_plugins_build(self):
        d = Daemon(plugins=("backend-qemu", "net-user", "kms", "gateway"),
                   plugin_sections='kms = { urls = [ "https://kms.example:8000" ]; }; '
                                   'gateway = { base_domain = "example.test"; };')
        d.start()
        try:
            st, o = d.api("POST", "/v1/vms?dry_run=1",
                          {"name": self.NAME, "image": "tiny", "start": False,
                           "kms_urls": ["https://own-kms.example:8000"]})
            self.assertEqual(st, 200, o)
            spec = normalise(o["spec"], d, o["vm"]["id"], self.UUID, self.MAC, self.NAME)
        finally:
            d.cleanup()
        entry = "name=opt/cvmm/sys-config.json,file=/run/cvmm/vms/%s/sys-config.json" % self.UUID
        for backend in ("qemu", "libvirt"):
            self.assertEqual([a["value"] for a in spec["args"] if a["backend"] == backend],
                             ["-fw_cfg", entry], spec["args"])
        path = os.path.join(FIXTURES, self.NAME + ".json")
        if REGENERATE:
            with open(path, "w") as f:
                json.dump(spec, f, indent=2)
                f.write("\n")
            return
        with open(path) as f:
            self.assertEqual(spec, json.load(f), "the spec differs from %s (CVMM_REGENERATE=1 "
                             "rewrites it; review the diff)" % path)


if __name__ == "__main__":
    unittest.main()
