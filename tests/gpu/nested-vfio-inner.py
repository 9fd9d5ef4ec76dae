"""Runs inside nested-vfio.sh's outer guest (a real kernel with an IOMMU and
VFIO), chrooted into the host's / shared read-only: cvmmd with gpu-vfio
binds the guest's virtio-rng-pci (1af4:1044) to vfio-pci at a start, the
inner QEMU opens /dev/vfio/N, a stop gives the device back to virtio-pci.
Prints "NESTED: ..." lines on the console; "NESTED: PASS" at the end."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Daemon, qemu_pids_for  # noqa: E402

ID = ("0x1af4", "0x1044")


def say(msg):
    print("NESTED: " + msg, flush=True)


def driver(slot):
    link = "/sys/bus/pci/devices/%s/driver" % slot
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def main():
    slot = None
    for s in sorted(os.listdir("/sys/bus/pci/devices")):
        with open("/sys/bus/pci/devices/%s/vendor" % s) as v, \
                open("/sys/bus/pci/devices/%s/device" % s) as dv:
            if (v.read().strip(), dv.read().strip()) == ID:
                slot = s
    if not slot:
        say("FAIL no 1af4:1044 device")
        return 1
    group = os.path.basename(os.readlink("/sys/bus/pci/devices/%s/iommu_group" % slot))
    orig = driver(slot)
    say("device %s, IOMMU group %s, driver %s" % (slot, group, orig))
    d = Daemon(plugins=("backend-qemu", "net-user", "gpu-vfio"),
               plugin_sections='gpu-vfio = { root = "/"; };')
    with open(d.conf) as f:
        conf = f.read()
    conf = conf.replace("cvm = {", 'cvm = {\n  gpu = { enabled = true; listing = [ "1af4:1044" ]; };',
                        1)
    with open(d.conf, "w") as f:
        f.write(conf)
    t0 = time.time()
    d.start(timeout=120)
    try:
        st, o = d.api("GET", "/v1/host/check", timeout=120)
        by = {i["name"]: i for i in o.get("items", [])}
        for name in ("iommu", "iommu_groups", "vfio", "gpu " + slot):
            it = by.get(name, {})
            say("check %s: %s %s" % (name, it.get("status"), it.get("detail")))
        st, o = d.api("POST", "/v1/vms", {"name": "inner", "image": "tiny", "memory_mb": 256,
                                          "gpus": {"attach_mode": "listed",
                                                   "gpus": [{"slot": slot}]}}, timeout=120)
        if st != 201:
            say("FAIL create: %s %s" % (st, o))
            return 1
        vm = d.wait_state("inner", ("running", "failed"), timeout=150)
        say("VM %s after %.0fs (%s)" % (vm["state"], time.time() - t0, vm.get("reason", "")))
        bound = driver(slot)
        say("driver while the VM runs: %s" % bound)
        pids = qemu_pids_for(vm["id"])
        opened = []
        for pid in pids:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if target.startswith("/dev/vfio/"):
                    opened.append(target)
        say("inner QEMU %s has open: %s" % (pids, sorted(set(opened))))
        ok = vm["state"] == "running" and bound == "vfio-pci" and \
            ("/dev/vfio/" + group) in opened
        # The inner guest (TCG inside TCG) lists its PCI functions on its
        # console: the device is there once it printed 1af4:1044.
        wait = float(os.environ.get("CVMM_NESTED_INNER_WAIT", "0"))
        seen = None
        t1 = time.time()
        while ok and wait and time.time() - t1 < wait:
            out = d.cli("logs", "inner", check=False).stdout
            seen = next((l for l in out.splitlines() if "1af4:1044" in l), None)
            if seen:
                break
            time.sleep(5)
        if wait:
            tail = d.cli("logs", "inner", check=False).stdout.strip().splitlines()[-3:]
            say("inner guest after %.0fs: %s (console tail: %s)" % (
                time.time() - t1, seen or "device not listed yet", tail))
        st, o = d.api("POST", "/v1/vms/inner/stop", {"force": True, "timeout": 1}, timeout=60)
        vm = d.wait_state("inner", ("stopped", "exited", "failed"), timeout=120)
        after = driver(slot)
        say("after stop (%s): driver %s" % (vm["state"], after))
        with open("/sys/bus/pci/devices/%s/driver_override" % slot) as f:
            override = f.read().strip()
        ok = ok and after == orig and override in ("", "(null)")
        d.api("DELETE", "/v1/vms/inner", timeout=60)
        say("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        log = d.read_log()
        for line in log.splitlines():
            if "gpu-vfio" in line or "vfio" in line.lower() or "error" in line.lower():
                print("cvmmd| " + line[-300:], flush=True)
        d.cleanup()


if __name__ == "__main__":
    sys.exit(main())
