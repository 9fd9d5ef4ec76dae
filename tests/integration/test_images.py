"""Images and disks, against a real cvmmd and real QEMU (TCG).

A VM's disk is a qcow2 overlay naming the image's disk file by path. These
tests work on a private copy of image 'tiny' (so that its disk can be
replaced) and check what a user sees:
  - a disk_gb smaller than the image's disk is refused with 400 and the sizes;
    left out, it is the image's size in GiB, and the overlay QEMU gets has it;
  - after the image's disk file is replaced, starting a VM whose disk was made
    on the old one fails (state failed) with a reason naming the image and
    what changed, even across a daemon restart, and no QEMU runs; a VM that
    never ran starts on the new file;
  - every NIC's MAC is in `cvmm info` right after the create, user mode
    included, the same after a daemon restart and after the start, and it is
    the MAC QEMU is given.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import IMAGES, DaemonTest, qemu_pids_for, wait_for

MAC_RE = r"^52:54:00(:[0-9a-f]{2}){3}$"


def qemu_img(*args):
    return subprocess.run(["qemu-img"] + list(args), check=True, capture_output=True,
                          text=True).stdout


def virtual_size(path):
    return json.loads(qemu_img("info", "--output=json", "-U", path))["virtual-size"]


class Images(DaemonTest):
    def setUp(self):
        # A private image folder: 'copy' is tiny with its own disk file,
        # 'wide' has a 2.5 GiB disk. Kernel and initrd are tiny's own.
        self.images = tempfile.mkdtemp(prefix="cvmm-it-images-")
        src = os.path.join(IMAGES, "tiny")
        with open(os.path.join(src, "metadata.json")) as f:
            meta = json.load(f)
        for name in ("copy", "wide"):
            d = os.path.join(self.images, name)
            os.makedirs(d)
            for key in ("kernel", "initrd"):
                os.symlink(os.path.join(src, meta[key]), os.path.join(d, meta[key]))
            with open(os.path.join(d, "metadata.json"), "w") as f:
                json.dump(meta, f)
        shutil.copy2(os.path.join(src, meta["hda"]), os.path.join(self.images, "copy", meta["hda"]))
        qemu_img("create", "-q", "-f", "qcow2", os.path.join(self.images, "wide", meta["hda"]),
                 "2560M")
        self.hda = os.path.join(self.images, "copy", meta["hda"])
        self.daemon_args = {"image_path": self.images}
        try:
            super().setUp()
        except BaseException:
            shutil.rmtree(self.images, ignore_errors=True)
            raise

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            shutil.rmtree(self.images, ignore_errors=True)

    def disk_of(self, vm):
        return os.path.join(self.d.data, "vms", vm["id"], "disk.qcow2")

    def replace_hda(self):
        """A new version of the image's disk, put in place as tools do."""
        tmp = self.hda + ".new"
        qemu_img("create", "-q", "-f", "qcow2", tmp, "64M")
        os.rename(tmp, self.hda)

    def test_disk_gb_smaller_than_the_images_disk_is_refused(self):
        d = self.d
        st, o = d.api("POST", "/v1/vms", {"name": "w1", "image": "wide", "disk_gb": 2,
                                           "start": False})
        self.assertEqual(st, 400, o)
        self.assertEqual(o["error"]["message"],
                         "disk_gb: must be at least 3 GiB (image 'wide' has a 2.5 GiB disk)")
        p = d.cli("create", "w1", "--image", "wide", "--disk", "1", "--no-start", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("disk_gb: must be at least 3 GiB", p.stderr)
        self.assertEqual(d.api("GET", "/v1/vms")[1]["vms"], [])
        # Left out: the image's size, rounded up to GiB, and the disk has it.
        self.assertEqual(d.create("w2", image="wide", start=False)["disk_gb"], 3)
        self.assertEqual(d.create("w3", image="wide", disk_gb=4, start=False)["disk_gb"], 4)
        vm = d.create("c1", image="copy")
        self.assertEqual(vm["disk_gb"], 1)  # tiny's disk is 64 MiB
        vm = d.wait_state("c1", ("running", "failed"))
        self.assertEqual(vm["state"], "running", vm["reason"])
        self.assertEqual(virtual_size(self.disk_of(vm)), 1 << 30)
        d.cli("stop", "c1", "--force")
        d.wait_state("c1", "stopped")

    def test_start_on_a_replaced_image_disk_fails_naming_the_image(self):
        d = self.d
        vm = d.create("b1", image="copy")
        vm = d.wait_state("b1", ("running", "failed"))
        self.assertEqual(vm["state"], "running", vm["reason"])
        self.assertTrue(os.path.exists(self.disk_of(vm)))
        d.cli("stop", "b1", "--force")
        d.wait_state("b1", "stopped")
        fresh = d.create("b2", image="copy", start=False)  # its disk is not made yet
        ino = os.stat(self.hda).st_ino
        self.replace_hda()
        # The record is the manifest's: it holds across a daemon restart.
        d.stop()
        d.start()
        st, o = d.api("POST", "/v1/vms/b1/start")
        self.assertEqual(st, 202, o)
        vm = d.wait_state("b1", "failed")
        want = ("image 'copy': disk %s was replaced since VM 'b1' was created (inode %d -> %d"
                % (self.hda, ino, os.stat(self.hda).st_ino))
        self.assertIn(want, vm["reason"])
        self.assertEqual(qemu_pids_for(vm["id"]), [])
        events = d.api("GET", "/v1/vms/b1/events")[1]["events"]
        self.assertTrue(any(want in e["message"] for e in events), events)
        info = d.cli("info", "b1").stdout
        self.assertIn("was replaced since VM 'b1' was created", info)
        # Refused again at the next try: nothing was re-recorded.
        d.api("POST", "/v1/vms/b1/start")
        wait_for(lambda: any(e["message"].count("was replaced") for e in
                             d.api("GET", "/v1/vms/b1/events")[1]["events"][len(events):]),
                 30, "the second refusal")
        self.assertEqual(d.vm("b1")["state"], "failed")
        # A VM whose disk was never made starts on the new file.
        d.api("POST", "/v1/vms/%s/start" % fresh["id"])
        vm = d.wait_state("b2", ("running", "failed"))
        self.assertEqual(vm["state"], "running", vm["reason"])
        d.cli("stop", "b2", "--force")
        d.wait_state("b2", "stopped")

    def test_every_nic_has_its_mac_from_the_create_on(self):
        d = self.d
        vm = d.create("m1", image="copy", start=False,
                      networks=[{"mode": "user"}, {"mode": "user", "mac": "02:00:00:00:0A:0b"}])
        macs = [n.get("mac") for n in vm["nics"]]
        self.assertRegex(macs[0] or "", MAC_RE)
        self.assertEqual(macs[1], "02:00:00:00:0a:0b")
        self.assertEqual([n["mac"] for n in d.vm("m1")["nics"]], macs)
        info = d.cli("info", "m1").stdout
        for m in macs:
            self.assertIn(m, info)
        d.stop()
        d.start()
        self.assertEqual([n.get("mac") for n in d.vm("m1")["nics"]], macs)
        d.cli("start", "m1")
        vm = d.wait_state("m1", ("running", "failed"))
        self.assertEqual(vm["state"], "running", vm["reason"])
        self.assertEqual([n.get("mac") for n in vm["nics"]], macs)
        pids = wait_for(lambda: qemu_pids_for(vm["id"]), 30, "the VM's QEMU")
        with open("/proc/%d/cmdline" % pids[0], "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
        for m in macs:
            self.assertTrue(any(re.search(r"mac=%s\b" % m, a) for a in argv),
                            "MAC %s not given to QEMU: %s" % (m, argv))
        d.cli("stop", "m1", "--force")
        d.wait_state("m1", "stopped")
        self.assertEqual([n.get("mac") for n in d.vm("m1")["nics"]], macs)
        # A MAC no NIC may have is refused for every mode, by the core.
        st, o = d.api("POST", "/v1/vms", {"name": "m2", "image": "copy", "start": False,
                                           "networks": [{"mode": "user", "mac": "01:00:00:00:00:01"}]})
        self.assertEqual(st, 400, o)
        self.assertIn("networks[0].mac: must be a unicast MAC address", o["error"]["message"])


if __name__ == "__main__":
    unittest.main()
