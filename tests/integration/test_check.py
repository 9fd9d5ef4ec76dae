"""The readiness report through the real daemon and CLI: GET /v1/host/check
and `cvmm check`, on this host (the core's items read the real /proc, /sys
and /dev) with gpu-vfio on the fake HGX and desktop sysfs trees
(tests/gpu/make-fake-sysfs.py) for its GPU items. Each core item is checked
against what this machine has, read independently here, so the suite holds
on a host with an IOMMU too; on the CI machines (guests without nested
virtualization or IOMMU) the report must fail on both and say how to fix
it. No QEMU is started."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from harness import Daemon

HERE = os.path.dirname(os.path.abspath(__file__))
GPU_TOOLS = os.path.join(HERE, "..", "gpu")


def host_has_iommu():
    return os.path.isdir("/sys/class/iommu") and bool(os.listdir("/sys/class/iommu"))


class Check(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cvmm-check-")
        self.d = None

    def tearDown(self):
        if self.d:
            self.d.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def daemon(self, kind):
        tree = os.path.join(self.tmp, kind)
        subprocess.run([sys.executable, os.path.join(GPU_TOOLS, "make-fake-sysfs.py"), kind, tree],
                       check=True)
        d = Daemon(plugins=("backend-qemu", "net-user", "gpu-vfio"),
                   plugin_sections='gpu-vfio = { root = "%s"; };' % tree)
        with open(d.conf) as f:
            conf = f.read()
        conf = conf.replace("cvm = {", 'cvm = {\n  gpu = { enabled = true; exclude = '
                            '[ "0000:d2:00.0" ]; };', 1)
        with open(d.conf, "w") as f:
            f.write(conf)
        d.start()
        self.d = d
        return d

    def items(self, d):
        st, o = d.api("GET", "/v1/host/check")
        self.assertEqual(st, 200, o)
        by = {i["name"]: i for i in o["items"]}
        self.assertEqual(len(by), len(o["items"]), "item names are unique")
        for i in o["items"]:
            self.assertIn(i["status"], ("ok", "warn", "fail"), i)
            self.assertEqual(bool(i["fix"]), i["status"] != "ok", i)
        self.assertEqual((o["ok"], o["warn"], o["fail"]),
                         tuple(sum(i["status"] == s for i in o["items"])
                               for s in ("ok", "warn", "fail")))
        return o, by

    def test_this_host_and_the_hgx_tree(self):
        d = self.daemon("hgx")
        o, by = self.items(d)
        # The core's items, against this machine.
        for name in ("cpu_virtualization", "kvm", "iommu", "iommu_groups", "vfio", "qemu",
                     "ovmf", "passt", "nvidia_drm"):
            self.assertIn(name, by)
        if host_has_iommu():
            self.assertEqual(by["iommu"]["status"], "ok", by["iommu"])
        else:
            self.assertEqual(by["iommu"]["status"], "fail", by["iommu"])
            self.assertIn("intel_iommu=on", by["iommu"]["fix"])
            self.assertIn("no IOMMU is on", by["iommu"]["detail"])
        kvm_ok = os.path.exists("/dev/kvm")
        self.assertEqual(by["kvm"]["status"] == "fail", not kvm_ok, by["kvm"])
        qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                              text=True).stdout.splitlines()[0]
        self.assertEqual(by["qemu"]["status"], "ok")
        self.assertIn(qemu, by["qemu"]["detail"])
        # gpu-vfio's items: every GPU and NVSwitch of the tree, with the
        # excluded one a warning that says why.
        gpus = [n for n in by if n.startswith("gpu 0000:")]
        self.assertEqual(len(gpus), 8)
        self.assertEqual(len([n for n in by if n.startswith("nvswitch ")]), 4)
        self.assertEqual(by["gpu 0000:12:00.0"]["status"], "ok", by["gpu 0000:12:00.0"])
        self.assertIn("node 0, IOMMU group", by["gpu 0000:12:00.0"]["detail"])
        self.assertEqual(by["gpu 0000:d2:00.0"]["status"], "warn")
        self.assertIn("not offered", by["gpu 0000:d2:00.0"]["detail"])

        # The CLI: a table, the fixes under their items, exit 1 on a failure.
        p = d.cli("check", check=False)
        self.assertEqual(p.returncode, 1 if o["fail"] else 0, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ITEM"), lines[0])
        self.assertTrue(any(l.startswith("gpu 0000:12:00.0") and " ok " in l for l in lines))
        if not host_has_iommu():
            at = next(k for k, l in enumerate(lines) if l.startswith("iommu "))
            self.assertIn("fail", lines[at])
            self.assertIn("fix: enable VT-d", lines[at + 1])
        self.assertIn("%d ok, %d warn, %d fail" % (o["ok"], o["warn"], o["fail"]), p.stdout)

    def test_desktop_boot_gpu_fails(self):
        d = self.daemon("desktop")
        o, by = self.items(d)
        gpu = by["gpu 0000:01:00.0"]
        self.assertEqual(gpu["status"], "fail", gpu)
        self.assertIn("boot display", gpu["detail"])
        self.assertIn("headless", gpu["fix"])
        p = d.cli("check", check=False)
        self.assertEqual(p.returncode, 1, p.stdout)


if __name__ == "__main__":
    unittest.main()
