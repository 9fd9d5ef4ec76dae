"""Volumes, disk snapshots and resize, against a real cvmmd and real QEMU
guests (TCG), on the QEMU backend; per_backend() at the end adds the
libvirt copy (whose snapshots go through libvirt's snapshot API).

What a user sees:
  - a VM created with volumes (one cvmm makes, one to keep, a read-only
    host file) boots with them as extra disks after its root disk: the
    guest lists vdb, vdc, vdd with their sizes; they are there again after
    a stop and a start, with what was written on them;
  - a snapshot is refused while the VM runs (409); on the stopped VM
    `cvmm snapshot create|list|revert|delete` work: a marker written into
    the disk after the snapshot is gone after the revert (read back with
    qemu-io), the snapshot is in `qemu-img snapshot -l` until deleted;
    duplicate, unknown and malformed names are refused (409, 404, 400);
  - `cvmm resize --disk-gb` grows the stopped VM's disk (the guest sees the
    new size at its next boot) and refuses to shrink it;
  - removing the VM removes its volumes except the one marked keep, which
    is moved out (its path in the answer) and can be attached to a new VM;
    the host file stays; a source inside a VM's folder is refused.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import DaemonTest, per_backend, wait_for

SECTORS_PER_GIB = 2 * 1024 * 1024


def qemu_io(path, cmd):
    p = subprocess.run(["qemu-io", "-f", "qcow2", "-c", cmd, path], capture_output=True,
                       text=True, timeout=60)
    return p.stdout + p.stderr


def pattern_is(path, byte):
    """The first 4 KiB of the image read back as byte (qemu-io read -P)."""
    out = qemu_io(path, "read -P 0x%x 0 4k" % byte)
    return "Pattern verification failed" not in out and "read 4096/4096" in out


def snapshots_in(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", path], capture_output=True,
                         text=True, check=True).stdout
    return [s["name"] for s in json.loads(out).get("snapshots", [])]


class Disks(DaemonTest):
    def setUp(self):
        self.host = tempfile.mkdtemp(prefix="cvmm-it-vol-")
        self.source = os.path.join(self.host, "host.img")
        with open(self.source, "wb") as f:
            f.truncate(8 << 20)  # 8 MiB, raw: 16384 sectors
        try:
            super().setUp()
        except BaseException:
            shutil.rmtree(self.host, ignore_errors=True)
            raise

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            shutil.rmtree(self.host, ignore_errors=True)

    def last_boot_disks(self, name):
        """{dev: sectors} the guest printed in its latest boot."""
        text = self.d.logs(name).split("cvmm-tiny: booting")[-1]
        return {m.group(1): int(m.group(2))
                for m in re.finditer(r"cvmm-tiny: disk (vd[a-z]+) (\d+)", text)}

    def boot_and_wait(self, name):
        """Starts the VM and waits for its (new) boot to be ready."""
        before = self.d.logs(name).count("cvmm-tiny: ready")
        self.d.cli("start", name)
        wait_for(lambda: self.d.logs(name).count("cvmm-tiny: ready") > before, 90,
                 "VM %s's boot to be ready" % name, interval=0.5)

    def test_volumes_snapshots_resize(self):
        d = self.d
        vm = d.create("v1", volumes=[{"name": "data", "size_gb": 1},
                                     {"name": "keepme", "size_gb": 1, "keep": True},
                                     {"source": self.source, "readonly": True}])
        self.assertEqual([v["name"] for v in vm["volumes"]], ["data", "keepme", "vol2"])
        folder = os.path.join(d.data, "vms", vm["id"])
        disk = os.path.join(folder, "disk.qcow2")
        data_vol = os.path.join(folder, "vol-data.qcow2")
        d.wait_ready("v1")
        self.assertEqual(self.last_boot_disks("v1"),
                         {"vda": SECTORS_PER_GIB, "vdb": SECTORS_PER_GIB,
                          "vdc": SECTORS_PER_GIB, "vdd": 16384})

        # Another VM may not use this one's disk as a volume.
        st, o = d.api("POST", "/v1/vms", {"name": "thief", "image": "tiny", "start": False,
                                           "volumes": [{"source": disk}]})
        self.assertEqual(st, 400, o)
        self.assertIn("inside a VM's folder", o["error"]["message"])

        # Snapshots are of a stopped VM's disk.
        st, o = d.api("POST", "/v1/vms/v1/snapshots", {"name": "s1"})
        self.assertEqual(st, 409, o)
        self.assertIn("stop it first", o["error"]["message"])
        d.cli("stop", "v1")
        d.wait_state("v1", "stopped", timeout=90)

        p = d.cli("snapshot", "create", "v1", "s1")
        self.assertEqual(p.stdout.strip(), "v1: snapshot 's1' created")
        self.assertIn("s1", d.cli("snapshot", "list", "v1").stdout)
        st, o = d.api("GET", "/v1/vms/v1/snapshots")
        self.assertEqual((st, [s["name"] for s in o["snapshots"]]), (200, ["s1"]), o)
        self.assertGreater(o["snapshots"][0]["created"], 1.6e9)
        self.assertEqual(snapshots_in(disk), ["s1"])
        self.assertEqual(d.cli("snapshot", "create", "v1", "s1", check=False).returncode, 5)
        self.assertEqual(d.cli("snapshot", "revert", "v1", "nope", check=False).returncode, 4)
        st, o = d.api("POST", "/v1/vms/v1/snapshots", {"name": "-bad name"})
        self.assertEqual(st, 400, o)
        self.assertIn("snapshot name", o["error"]["message"])

        # A marker written after the snapshot is gone after the revert.
        self.assertTrue(pattern_is(disk, 0))
        qemu_io(disk, "write -P 0xab 0 4k")
        self.assertTrue(pattern_is(disk, 0xab))
        p = d.cli("snapshot", "revert", "v1", "s1")
        self.assertEqual(p.stdout.strip(), "v1: snapshot 's1' reverted to")
        self.assertTrue(pattern_is(disk, 0), "the revert did not bring the disk back")
        d.cli("snapshot", "delete", "v1", "s1")
        self.assertEqual(d.api("GET", "/v1/vms/v1/snapshots")[1]["snapshots"], [])
        self.assertEqual(snapshots_in(disk), [])
        events = [e["message"] for e in d.api("GET", "/v1/vms/v1/events")[1]["events"]]
        for m in ("snapshot 's1' taken", "disk reverted to snapshot 's1'",
                  "snapshot 's1' deleted"):
            self.assertIn(m, events)

        # Resize: grows a stopped VM's disk, never shrinks it.
        p = d.cli("resize", "v1", "--disk-gb", "2")
        self.assertEqual(d.vm("v1")["disk_gb"], 2)
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", disk],
                                         capture_output=True, text=True, check=True).stdout)
        self.assertEqual(info["virtual-size"], 2 << 30)
        p = d.cli("resize", "v1", "--disk-gb", "1", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("never shrinks", p.stderr)
        self.assertEqual(d.vm("v1")["disk_gb"], 2)

        # Volumes are kept across restarts, with their content.
        qemu_io(data_vol, "write -P 0xcd 0 4k")
        self.boot_and_wait("v1")
        self.assertEqual(self.last_boot_disks("v1"),
                         {"vda": 2 * SECTORS_PER_GIB, "vdb": SECTORS_PER_GIB,
                          "vdc": SECTORS_PER_GIB, "vdd": 16384})
        st, o = d.api("POST", "/v1/vms/v1/resize", {"disk_gb": 3})
        self.assertEqual(st, 409, o)
        d.cli("kill", "v1")
        d.wait_state("v1", "stopped", timeout=60)
        self.assertTrue(pattern_is(data_vol, 0xcd))

        # Removal: volumes go, except the one to keep; the host file stays.
        st, o = d.api("DELETE", "/v1/vms/v1")
        self.assertEqual(st, 200, o)
        kept = o.get("kept_volumes", [])
        self.assertEqual(len(kept), 1, o)
        self.assertTrue(kept[0].startswith(os.path.join(d.data, "volumes") + "/"), kept)
        self.assertIn("keepme", kept[0])
        self.assertTrue(os.path.isfile(kept[0]))
        self.assertFalse(os.path.exists(folder))
        self.assertTrue(os.path.isfile(self.source))
        # ... and the kept one can be a new VM's volume.
        d.cli("create", "v2", "--image", "tiny", "--no-start", "--volume",
              "source=%s,name=old" % kept[0], "--volume", "name=new,size_gb=2,keep")
        vm2 = d.vm("v2")
        self.assertEqual([(v["name"], v.get("size_gb"), v["keep"]) for v in vm2["volumes"]],
                         [("old", None, False), ("new", 2, True)])
        self.assertEqual(vm2["volumes"][0]["source"], kept[0])
        self.assertEqual(vm2["volumes"][0]["format"], "qcow2")
        d.cli("remove", "v2")
        self.assertTrue(os.path.isfile(kept[0]))


per_backend(Disks, namespace=globals())

if __name__ == "__main__":
    unittest.main()
