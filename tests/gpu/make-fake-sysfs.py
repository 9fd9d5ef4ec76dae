#!/usr/bin/python3
"""make-fake-sysfs.py KIND DIR: a fake sysfs tree (DIR/sys) of a machine.

KIND is "hgx" (a 2-socket HGX H200: 96 CPUs, even ones on node 0, odd ones
on node 1; 8 GPUs 10de:2335, each under its own PCIe switch with a
ConnectX-7 15b3:1021; 4 NVSwitches 10de:22a4 behind a switch of their own;
GPU 5 with an audio function in its IOMMU group) or "desktop" (one GPU
10de:2684 with its audio function 10de:22ba in one group, a NIC on the
chipset, one node of 16 CPUs, numa_node -1 as desktops report it; the GPU
is the boot display, boot_vga 1).

The layout is the kernel's: devices nest under the bridges above them in
sys/devices/pci0000:00/..., sys/bus/pci/devices/<bdf> links there, each
device's `driver` and `iommu_group` are links, sys/kernel/iommu_groups/N/
devices lists the group. DIR/sim/native.json names each device's own
driver, for the simulator (sysfs-sim), which needs to know what
drivers_probe would pick.
"""
import json
import os
import sys


class Tree:
    def __init__(self, top):
        self.top = top
        self.sys = os.path.join(top, "sys")
        self.devs = {}  # bdf -> abs dir
        self.native = {}
        self.group = 0
        for d in ("bus/pci/devices", "bus/pci/drivers", "kernel/iommu_groups",
                  "devices/system/node"):
            os.makedirs(os.path.join(self.sys, d), exist_ok=True)
        for f in ("bus/pci/drivers_probe",):
            self.write(os.path.join(self.sys, f), "")
        self.write(os.path.join(self.sys, "bus/pci/drivers_autoprobe"), "1\n")
        self.driver("vfio-pci")

    @staticmethod
    def write(path, text):
        with open(path, "w") as f:
            f.write(text)

    def driver(self, name):
        d = os.path.join(self.sys, "bus/pci/drivers", name)
        if not os.path.isdir(d):
            os.makedirs(d)
            self.write(os.path.join(d, "bind"), "")
            self.write(os.path.join(d, "unbind"), "")
            self.write(os.path.join(d, "new_id"), "")
        return d

    def link(self, target, at):
        os.symlink(os.path.relpath(target, os.path.dirname(at)), at)

    def add(self, bdf, parent, vendor, device, cls, node, drv, group=None):
        base = self.devs[parent] if parent else os.path.join(
            self.sys, "devices", "pci" + bdf[:7])
        d = os.path.join(base, bdf)
        os.makedirs(d)
        self.devs[bdf] = d
        self.write(os.path.join(d, "vendor"), "0x%04x\n" % vendor)
        self.write(os.path.join(d, "device"), "0x%04x\n" % device)
        self.write(os.path.join(d, "class"), "0x%06x\n" % cls)
        self.write(os.path.join(d, "numa_node"), "%d\n" % node)
        self.write(os.path.join(d, "driver_override"), "(null)\n")
        # PCIe Gen5 x16, as an H200 board's links are (NCCL reads these)
        self.write(os.path.join(d, "max_link_speed"), "32.0 GT/s PCIe\n")
        self.write(os.path.join(d, "max_link_width"), "16\n")
        self.link(d, os.path.join(self.sys, "bus/pci/devices", bdf))
        if group is None:
            group = self.group
            self.group += 1
        g = os.path.join(self.sys, "kernel/iommu_groups", str(group), "devices")
        os.makedirs(g, exist_ok=True)
        self.link(d, os.path.join(g, bdf))
        self.link(os.path.dirname(g), os.path.join(d, "iommu_group"))
        self.native[bdf] = drv
        if drv:
            dd = self.driver(drv)
            self.link(dd, os.path.join(d, "driver"))
            self.link(d, os.path.join(dd, bdf))
        return group

    def node(self, n, cpus):
        d = os.path.join(self.sys, "devices/system/node", "node%d" % n)
        os.makedirs(d)
        self.write(os.path.join(d, "cpulist"), ",".join(str(c) for c in cpus) + "\n")

    def finish(self):
        os.makedirs(os.path.join(self.top, "sim"), exist_ok=True)
        self.write(os.path.join(self.top, "sim/native.json"),
                   json.dumps(self.native, indent=1, sort_keys=True) + "\n")


BRIDGE = 0x060400


def hgx(t):
    t.node(0, range(0, 96, 2))
    t.node(1, range(1, 96, 2))
    for i in range(8):
        node = i // 4
        b = 0x10 + 0x20 * i
        rp = "0000:00:01.%d" % i
        up, d0, d1 = ("0000:%02x:00.0" % b, "0000:%02x:00.0" % (b + 1),
                      "0000:%02x:01.0" % (b + 1))
        gpu, nic = "0000:%02x:00.0" % (b + 2), "0000:%02x:00.0" % (b + 3)
        t.add(rp, None, 0x8086, 0x1bbf, BRIDGE, node, "pcieport")
        t.add(up, rp, 0x1000, 0xc030, BRIDGE, node, "pcieport")
        t.add(d0, up, 0x1000, 0xc030, BRIDGE, node, "pcieport")
        t.add(d1, up, 0x1000, 0xc030, BRIDGE, node, "pcieport")
        g = t.add(gpu, d0, 0x10de, 0x2335, 0x030200, node, "nvidia")
        if i == 5:  # a GPU with its audio function, in the same group
            t.add(gpu[:-1] + "1", d0, 0x10de, 0x22ba, 0x040300, node, "snd_hda_intel", g)
        t.add(nic, d1, 0x15b3, 0x1021, 0x020000, node, "mlx5_core")
    # the NVSwitches: one switch of their own on node 0
    t.add("0000:00:02.0", None, 0x8086, 0x1bbf, BRIDGE, 0, "pcieport")
    t.add("0000:04:00.0", "0000:00:02.0", 0x1000, 0xc030, BRIDGE, 0, "pcieport")
    for k in range(4):
        dp = "0000:05:%02x.0" % k
        t.add(dp, "0000:04:00.0", 0x1000, 0xc030, BRIDGE, 0, "pcieport")
        t.add("0000:%02x:00.0" % (6 + k), dp, 0x10de, 0x22a4, 0x068000, 0, "nvidia")


def desktop(t):
    t.node(0, range(16))
    t.add("0000:00:01.0", None, 0x8086, 0xa70d, BRIDGE, -1, "pcieport")
    g = t.add("0000:01:00.0", "0000:00:01.0", 0x10de, 0x2684, 0x030000, -1, "nvidia")
    # the only display device: the firmware's and the console's (boot_vga)
    t.write(os.path.join(t.devs["0000:01:00.0"], "boot_vga"), "1\n")
    t.add("0000:01:00.1", "0000:00:01.0", 0x10de, 0x22ba, 0x040300, -1, "snd_hda_intel", g)
    t.add("0000:00:1c.0", None, 0x8086, 0x7a38, BRIDGE, -1, "pcieport")
    t.add("0000:02:00.0", "0000:00:1c.0", 0x8086, 0x15f3, 0x020000, -1, "igc")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("hgx", "desktop"):
        sys.exit("usage: make-fake-sysfs.py hgx|desktop DIR")
    t = Tree(sys.argv[2])
    {"hgx": hgx, "desktop": desktop}[sys.argv[1]](t)
    t.finish()


if __name__ == "__main__":
    main()
