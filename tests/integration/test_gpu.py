"""gpu-vfio through the real daemon, on the fake HGX sysfs tree
(tests/gpu/make-fake-sysfs.py) mounted through the FUSE sysfs simulator
(tests/gpu/sysfs-sim), which moves driver links the way the kernel does on
driver_override/unbind/drivers_probe/bind writes.

What it shows: GET /v1/gpus, the "gpus" create field with its refusals and
exclusivity, the VM's held slots in its object, and a start whose binding
really happens (the devices move to vfio-pci) and is restored when QEMU then
cannot open the devices (there is no /dev/vfio here): every device is back
on its original driver, and the removal releases the lease. Not exercised:
a real IOMMU, a real GPU, QEMU opening a VFIO device."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from harness import Daemon, qemu_pids_for, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
GPU_TOOLS = os.path.join(HERE, "..", "gpu")


def driver_of(root, slot):
    link = os.path.join(root, "sys/bus/pci/devices", slot, "driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


class GpuVfio(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cvmm-gpu-")
        self.tree = os.path.join(self.tmp, "tree")
        self.mnt = os.path.join(self.tmp, "mnt")
        os.makedirs(self.mnt)
        subprocess.run([sys.executable, os.path.join(GPU_TOOLS, "make-fake-sysfs.py"), "hgx",
                        self.tree], check=True)
        # fusepy is a Debian package: the system's python3 has it.
        self.sim = subprocess.Popen(["/usr/bin/python3", os.path.join(GPU_TOOLS, "sysfs-sim"),
                                     self.tree, self.mnt])
        wait_for(lambda: os.path.exists(os.path.join(self.mnt, "sys/bus/pci/drivers_probe")), 10,
                 "the sysfs simulator to mount (root and /dev/fuse needed)")
        self.d = Daemon(plugins=("backend-qemu", "net-user", "gpu-vfio"),
                        plugin_sections='gpu-vfio = { root = "%s"; };' % self.mnt)
        with open(self.d.conf) as f:
            conf = f.read()
        conf = conf.replace("cvm = {", 'cvm = {\n  gpu = { enabled = true; listing = [ "10de:2335" ]; '
                            'exclude = [ "0000:b2:00.0" ]; allow_attach_all = false; };', 1)
        with open(self.d.conf, "w") as f:
            f.write(conf)
        self.d.start()

    def tearDown(self):
        log = self.d.read_log()
        left = self.d.cleanup()
        subprocess.run(["umount", self.mnt], check=False)
        try:
            self.sim.wait(5)
        except subprocess.TimeoutExpired:
            self.sim.kill()
            self.sim.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if left:
            self.fail("QEMU left behind: %s\n%s" % (left, log[-2000:]))

    def test_list_reserve_bind_restore_release(self):
        d = self.d
        st, g = d.api("GET", "/v1/gpus")
        self.assertEqual(st, 200, g)
        gpus = [x for x in g["gpus"] if x["kind"] == "gpu"]
        switches = [x for x in g["gpus"] if x["kind"] == "nvswitch"]
        # 8 GPUs less the excluded one; the 4 NVSwitches.
        self.assertEqual(len(gpus), 7, g)
        self.assertEqual(len(switches), 4)
        self.assertNotIn("0000:b2:00.0", [x["slot"] for x in gpus])
        self.assertFalse(g["allow_attach_all"])
        summary = d.api("GET", "/v1/host")[1]["gpus"]
        self.assertEqual((summary["gpus"], summary["nvswitches"], summary["held"]), (7, 4, 0))
        first = gpus[0]
        self.assertEqual(first["driver"], "nvidia")
        self.assertIsNone(first["vm"])
        self.assertTrue(first["peer_nic"])

        # Refusals name the field and the rule; nothing is created.
        st, o = d.api("POST", "/v1/vms", {"name": "g0", "image": "tiny", "start": False,
                                          "gpus": {"attach_mode": "all"}})
        self.assertEqual(st, 400, o)
        self.assertIn("gpus", o["error"]["message"])
        st, o = d.api("POST", "/v1/vms", {"name": "g0", "image": "tiny", "start": False,
                                          "gpus": {"attach_mode": "listed",
                                                   "gpus": [{"slot": "0000:b2:00.0"}]}})
        self.assertEqual(st, 400, o)
        self.assertIn("0000:b2:00.0", o["error"]["message"])
        self.assertEqual(d.api("GET", "/v1/vms")[1]["vms"], [])

        # A dry run renders the device (with its IOMMU group) and leases nothing.
        st, o = d.api("POST", "/v1/vms?dry_run=1",
                      {"name": "g1", "image": "tiny",
                       "gpus": {"attach_mode": "listed", "gpus": [{"slot": first["slot"]}]}})
        self.assertEqual(st, 200, o)
        self.assertTrue(any("vfio-pci" in a and first["slot"] in a for a in o["render"]["argv"]),
                        o["render"]["argv"])
        self.assertIsNone({x["slot"]: x["vm"] for x in d.api("GET", "/v1/gpus")[1]["gpus"]}
                          [first["slot"]])

        short = first["slot"][5:]  # "12:00.0" is accepted
        o = d.create("g1", start=False, gpus={"attach_mode": "listed", "gpus": [{"slot": short}]})
        self.assertIn(first["slot"], str(o.get("gpus")))
        held = {x["slot"]: x["vm"] for x in d.api("GET", "/v1/gpus")[1]["gpus"]}
        self.assertTrue(held[first["slot"]])
        # One VM at a time: busy is a conflict naming the slot.
        st, o = d.api("POST", "/v1/vms", {"name": "g2", "image": "tiny", "start": False,
                                          "gpus": {"attach_mode": "listed",
                                                   "gpus": [{"slot": first["slot"]}]}})
        self.assertEqual(st, 409, o)
        self.assertIn(first["slot"], o["error"]["message"])

        # A start binds the group to vfio-pci, then QEMU cannot open the
        # device (no /dev/vfio here): the start fails and the undo puts
        # every device back on its driver.
        self.assertEqual(d.api("POST", "/v1/vms/g1/start")[0], 202)
        vm = d.wait_state("g1", "failed", timeout=60)
        self.assertEqual(qemu_pids_for(vm["id"]), [])
        with open(os.path.join(self.tree, "sim", "log")) as f:
            log = f.read()
        self.assertIn("sys/bus/pci/devices/%s/driver_override vfio-pci" % first["slot"], log)
        self.assertIn("drivers_probe %s" % first["slot"], log)
        self.assertEqual(driver_of(self.tree, first["slot"]), "nvidia")
        with open(os.path.join(self.tree, "sys/bus/pci/devices", first["slot"],
                               "driver_override")) as f:
            self.assertIn(f.read().strip(), ("", "(null)"))
        self.assertIn("vfio", vm["reason"].lower() + d.read_log()[-4000:].lower())

        # The CLI shows the same, and creates with --gpu.
        table = d.cli("gpus").stdout
        self.assertIn(first["slot"], table)
        self.assertIn("nvswitch", table)
        p = d.cli("create", "g3", "--image", "tiny", "--gpu", gpus[1]["slot"], "--no-start")
        self.assertIn("g3", p.stdout)
        held = {x["slot"]: x["vm"] for x in d.api("GET", "/v1/gpus")[1]["gpus"]}
        self.assertTrue(held[gpus[1]["slot"]])
        self.assertEqual(d.api("DELETE", "/v1/vms/g3")[0], 200)

        # The removal releases the lease.
        self.assertEqual(d.api("DELETE", "/v1/vms/g1")[0], 200)
        held = {x["slot"]: x["vm"] for x in d.api("GET", "/v1/gpus")[1]["gpus"]}
        self.assertIsNone(held[first["slot"]])


if __name__ == "__main__":
    unittest.main()
