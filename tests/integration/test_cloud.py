"""Guests as people run them (issue 9): a Debian 12 guest built from Debian
packages (scripts/build-debian-guest.sh, cached), booted under TCG through
cvmm.

  - as a partitioned disk with its own GRUB, made an image with `cvmm image
    import --firmware bios|uefi --cloud-init`: booted by SeaBIOS (QEMU
    backend) and by OVMF with the VM's own variable store (libvirt backend);
  - with cloud-init (plugin cloud-init): over SSH through a mapped port, with
    a key made here, the guest has the hostname, the user (with sudo) and
    the address asked for; a restart hands it the same seed and cloud-init
    does not run its per-instance modules again (a runcmd counter stays at
    1); the seed ISO, read back with isoinfo, holds exactly the expected
    files; an image is not removed while a VM is made from it;
  - as kernel + root filesystem (image "debian") on net-overlay across two
    namespace hosts: each guest takes its address by DHCP (network-config
    says dhcp4) from its host's dnsmasq, and the two guests ping each other.

Every boot runs the real cloud-init of Debian's package, so a boot takes
minutes under TCG: the timeouts are generous (CVMM_DEBIAN_BOOT_TIMEOUT).
"""
import atexit
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import Daemon, NetnsDaemon, Netns, qemu_pids_for, sh, shared_libvirtd, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "build-debian-guest.sh")
BOOT = float(os.environ.get("CVMM_DEBIAN_BOOT_TIMEOUT", "600"))
PLUGINS = ("backend-qemu", "net-user", "cloud-init")

_built = {}


def debian_guest():
    """(cache dir with disk.qcow2, image dir holding image "debian"), built
    once per process (the script's cache makes it cheap after the first
    build); the image dir is this process's own and goes at exit."""
    if not _built:
        images = tempfile.mkdtemp(prefix="cvmm-cloud-images-")
        os.chmod(images, 0o755)
        atexit.register(shutil.rmtree, images, True)
        t0 = time.monotonic()
        r = subprocess.run([SCRIPT, "--image-dir", images], capture_output=True, text=True,
                           timeout=3600)
        if r.returncode != 0:
            raise AssertionError("build-debian-guest.sh failed:\n" + r.stderr[-3000:])
        print("debian guest ready in %.0f s" % (time.monotonic() - t0), flush=True)
        _built["cache"] = r.stdout.strip().splitlines()[-1]
        _built["images"] = images
    return _built["cache"], _built["images"]


def keypair(d):
    key = os.path.join(d, "id_ed25519")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cvmm-test", "-f", key)
    with open(key + ".pub") as f:
        return key, f.read().strip()


def ssh(port, key, user, cmd, timeout=60):
    return subprocess.run(
        ["ssh", "-i", key, "-p", str(port), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
         "-o", "ConnectTimeout=15", "%s@127.0.0.1" % user, cmd],
        capture_output=True, text=True, timeout=timeout)


def isoinfo(iso, *args):
    return subprocess.run(["isoinfo", "-i", iso] + list(args), capture_output=True, text=True,
                          check=True).stdout


def console_marker(d, name, marker, timeout=BOOT):
    """Waits for marker in the VM's console; the console's tail on failure."""
    try:
        return wait_for(lambda: re.search(marker, d.logs(name)), timeout,
                        "%r on the console of %s" % (marker, name))
    except AssertionError:
        raise AssertionError("no %r on %s's console in %.0f s; its tail:\n%s"
                             % (marker, name, timeout, d.logs(name)[-3000:]))


class CloudTest(unittest.TestCase):
    backend = "qemu"
    plugins = PLUGINS

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root")
        self.cache, self.images = debian_guest()
        self.tmp = tempfile.mkdtemp(prefix="cvmm-cloud-")
        args = dict(plugins=self.plugins, image_path=self.images, backend=self.backend)
        if self.backend == "libvirt":
            args["libvirt_uri"] = shared_libvirtd().uri
        self.d = Daemon(**args)
        self.d.start()

    def tearDown(self):
        log = self.d.read_log()
        left = self.d.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)
        for name in os.listdir(self.images):
            if name != "debian":
                shutil.rmtree(os.path.join(self.images, name), ignore_errors=True)
        if left:
            self.fail("QEMU processes left behind: %s\n%s" % (left, log[-2000:]))

    def import_image(self, name, firmware):
        t0 = time.monotonic()
        out = self.d.cli("image", "import", name, os.path.join(self.cache, "disk.qcow2"),
                         "--firmware", firmware, "--cloud-init").stdout
        print("import %s: %.1f s" % (name, time.monotonic() - t0), flush=True)
        self.assertIn("%s: imported" % name, out)
        st, o = self.d.api("GET", "/v1/images")
        img = [i for i in o["images"] if i["name"] == name][0]
        self.assertEqual(img.get("firmware"), firmware, img)
        self.assertTrue(img.get("cloud_init"), img)

    def boot_marker(self, name, hostname):
        """Creates VM name from the imported image, with cloud-init printing
        a line on the console once it ran; returns the VM and the line."""
        runcmd = ["echo CVMM-UP $(hostname) efi=$(test -d /sys/firmware/efi && echo yes || "
                  "echo no) > /dev/ttyS0"]
        t0 = time.monotonic()
        self.d.create(name, image=name, memory_mb=1024, vcpu=2,
                      cloud_init={"hostname": hostname, "runcmd": runcmd})
        vm = self.d.wait_state(name, ("running", "failed"), timeout=120)
        self.assertEqual(vm["state"], "running", vm["reason"])
        m = console_marker(self.d, name, r"CVMM-UP (\S+) efi=(\w+)")
        print("%s (%s): cloud-init ran %.0f s after create" % (name, self.backend,
                                                             time.monotonic() - t0), flush=True)
        return vm, m


class UefiBoot(CloudTest):
    """The same disk booted by OVMF, with a variable store of the VM's own,
    made at define and gone with the VM: on the libvirt backend (CloudInitSsh
    boots the disk by SeaBIOS on the QEMU backend; one boot per backend
    keeps the suite within CI's time)."""
    backend = "libvirt"

    def test_uefi_disk_boots_with_own_vars(self):
        self.import_image("deb-uefi", "uefi")
        st, o = self.d.api("POST", "/v1/vms", {"name": "deb-uefi", "image": "deb-uefi",
                                               "memory_mb": 1024, "vcpu": 2, "start": False,
                                               "cloud_init": {"hostname": "efi1", "runcmd": [
                                                   "echo CVMM-UP $(hostname) efi=$(test -d "
                                                   "/sys/firmware/efi && echo yes || echo no) "
                                                   "> /dev/ttyS0"]}})
        self.assertEqual(st, 201, o)
        folder = os.path.join(self.d.data, "vms", o["id"])
        vars_ = os.path.join(folder, "uefi-vars.fd")
        # Made at DEFINE, before any start.
        wait_for(lambda: os.path.exists(vars_), 60, "the VM's UEFI variable store")
        self.assertEqual(os.path.getsize(vars_),
                         os.path.getsize("/usr/share/OVMF/OVMF_VARS_4M.fd"))
        t0 = time.monotonic()
        self.d.cli("start", "deb-uefi")
        vm = self.d.wait_state("deb-uefi", ("running", "failed"), timeout=120)
        self.assertEqual(vm["state"], "running", vm["reason"])
        # The QEMU by the VM's UUID on its command line (libvirt's QEMU is
        # not the VM's "pid").
        pid = wait_for(lambda: (qemu_pids_for(vm["id"]) or [None])[0], 30, "the QEMU")
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
        if self.backend == "qemu":
            self.assertIn(("if=pflash,format=raw,unit=1,file=%s" % vars_).encode(), argv)
        else:  # libvirt's own -blockdev for the <nvram>
            self.assertTrue(any(vars_.encode() in a for a in argv), argv)
        m = console_marker(self.d, "deb-uefi", r"CVMM-UP (\S+) efi=(\w+)")
        print("deb-uefi: cloud-init ran %.0f s after start" % (time.monotonic() - t0), flush=True)
        self.assertEqual(m.groups(), ("efi1", "yes"))
        self.d.api("DELETE", "/v1/vms/deb-uefi")
        wait_for(lambda: self.d.vm("deb-uefi") is None, 120, "deb-uefi removed")
        self.assertFalse(os.path.exists(folder))


class CloudInitSsh(CloudTest):
    """cloud-init as a user meets it: SSH with the key given at create."""

    def test_user_hostname_address_restart_seed_and_image_remove(self):
        self.import_image("deb", "bios")
        key, pub = keypair(self.tmp)
        port = 27022
        ci = {"hostname": "web1", "user": "acc", "ssh_authorized_keys": [pub],
              "runcmd": ["echo run >> /var/lib/cvmm-runcmd-count"],
              "user_data": "#cloud-config\nhostname: ignored\nwrite_files:\n"
                           "  - path: /etc/cvmm-merged\n    content: from user_data\n"}
        t0 = time.monotonic()
        self.d.create("c1", image="deb", memory_mb=1024, vcpu=2,
                      networks=[{"mode": "user", "dhcp_start": "10.0.2.42"}],
                      ports=[{"protocol": "tcp", "host_address": "127.0.0.1",
                              "host_port": port, "vm_port": 22}],
                      cloud_init=ci)
        vm = self.d.wait_state("c1", ("running", "failed"), timeout=120)
        self.assertEqual(vm["state"], "running", vm["reason"])
        mac = vm["nics"][0]["mac"]

        # The seed, read back: exactly these three files, volume "cidata".
        iso = os.path.join(self.d.data, "vms", vm["id"], "cloud-init", "seed.iso")
        self.assertIn("Volume id: cidata", isoinfo(iso, "-d"))
        names = sorted(l.split()[-1] for l in isoinfo(iso, "-R", "-l").splitlines()
                       if l.startswith("-"))
        self.assertEqual(names, ["meta-data", "network-config", "user-data"])
        want = {
            "meta-data": 'instance-id: "%s"\nlocal-hostname: "web1"\n' % vm["id"],
            "user-data": "#cloud-config\nhostname: \"web1\"\npreserve_hostname: false\n"
                         "users:\n  - name: \"acc\"\n    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n"
                         "    shell: /bin/bash\n    lock_passwd: true\n"
                         "    ssh_authorized_keys: [%s]\n"
                         "runcmd: [\"echo run >> /var/lib/cvmm-runcmd-count\"]\n"
                         "write_files:\n  - path: /etc/cvmm-merged\n"
                         "    content: from user_data\n" % json.dumps(pub),
            "network-config": "version: 2\nethernets:\n  nic0:\n    match:\n"
                              "      macaddress: \"%s\"\n    dhcp4: false\n"
                              "    addresses: [\"10.0.2.42/24\"]\n    routes:\n"
                              "      - to: 0.0.0.0/0\n        via: \"10.0.2.2\"\n"
                              "    nameservers:\n      addresses: [\"10.0.2.3\"]\n" % mac,
        }
        for name, text in want.items():
            self.assertEqual(isoinfo(iso, "-R", "-x", "/" + name), text, name)
        seed_mtime = os.stat(iso).st_mtime_ns

        def logged_in():
            r = ssh(port, key, "acc", "cat /proc/sys/kernel/random/boot_id")
            return r.returncode == 0 and r.stdout.strip()
        boot1 = wait_for(logged_in, BOOT, "SSH as acc with the key given at create")
        print("c1: SSH answered %.0f s after create" % (time.monotonic() - t0), flush=True)
        # cloud-init's runcmd comes late in its final stage: wait for it.
        wait_for(lambda: ssh(port, key, "acc", "cloud-init status --wait >/dev/null; "
                             "cat /var/lib/cvmm-runcmd-count").stdout == "run\n",
                 BOOT, "cloud-init to finish")
        r = ssh(port, key, "acc", "hostname; id -un; ip -4 -o addr show eth0; "
                "sudo -n id -u; cat /etc/cvmm-merged")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "web1")
        self.assertEqual(lines[1], "acc")
        self.assertIn("inet 10.0.2.42/24", lines[2])
        self.assertEqual(lines[3], "0")
        self.assertEqual(lines[4], "from user_data")

        # The image is the VM's base: not removable while the VM exists.
        r = self.d.cli("image", "remove", "deb", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is the base of 1 VM ('c1')", r.stderr)

        # The image says cloud_init: a VM made without the field gets a
        # seed all the same (dry run: the seed disk after the root disk),
        # and "cloud_init": false opts out.
        st, o = self.d.api("POST", "/v1/vms?dry_run=1", {"name": "c2", "image": "deb"})
        self.assertEqual(st, 200, o)
        drives = [a for a in o["render"]["argv"] if a.startswith("file=")]
        self.assertEqual(len(drives), 2, drives)
        self.assertIn("/cloud-init/seed.iso,if=none,id=seed,format=raw,readonly=on", drives[1])
        st, o = self.d.api("POST", "/v1/vms?dry_run=1",
                           {"name": "c2", "image": "deb", "cloud_init": False})
        self.assertEqual(st, 200, o)
        self.assertEqual(len([a for a in o["render"]["argv"] if a.startswith("file=")]), 1)

        # A restart: the same seed, cloud-init does not run again.
        t1 = time.monotonic()
        self.d.cli("restart", "c1")
        boot2 = wait_for(lambda: (logged_in() or None) if logged_in() != boot1 else None, BOOT,
                         "SSH after the restart")
        print("c1: SSH again %.0f s after restart" % (time.monotonic() - t1), flush=True)
        r = ssh(port, key, "acc", "cloud-init status --wait >/dev/null; "
                "cat /var/lib/cvmm-runcmd-count; hostname")
        self.assertEqual(r.stdout, "run\nweb1\n", r.stderr)
        self.assertNotEqual(boot1, boot2)
        self.assertEqual(os.stat(iso).st_mtime_ns, seed_mtime, "the seed was remade")

        self.d.api("DELETE", "/v1/vms/c1")
        wait_for(lambda: self.d.vm("c1") is None, 120, "c1 removed")
        self.assertIn("deb: removed", self.d.cli("image", "remove", "deb").stdout)
        self.assertFalse(os.path.exists(os.path.join(self.images, "deb")))


class OverlayDhcp(unittest.TestCase):
    """The kernel + root filesystem variant on net-overlay across two
    namespace hosts, addresses by DHCP only."""

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root")
        self.cache, self.images = debian_guest()
        self.daemons = []
        self.h1, self.h2 = Netns("cvt-cl1"), Netns("cvt-cl2")
        sh("ip", "link", "add", "u0", "netns", self.h1.name, "type", "veth", "peer", "name", "u0",
           "netns", self.h2.name)
        for ns, addr in ((self.h1, "10.99.0.1/24"), (self.h2, "10.99.0.2/24")):
            ns.ip("addr", "add", addr, "dev", "u0")
            ns.ip("link", "set", "u0", "up")

    def tearDown(self):
        left = []
        try:
            for d in self.daemons:
                left += d.cleanup()
        finally:
            self.h1.close()
            self.h2.close()
        if left:
            self.fail("QEMU processes left behind: %s" % left)

    def daemon(self, ns, local, peer, slice_):
        sec = ('net-overlay = { vni = 4343; local = "%s"; interface = "u0"; peers = [ "%s" ]; '
               'subnet = "10.201.0.0/16"; slice = "%s"; };' % (local, peer, slice_))
        d = NetnsDaemon(ns, plugins=PLUGINS + ("net-overlay",), plugin_sections=sec,
                        image_path=self.images)
        self.daemons.append(d)
        return d.start()

    def test_guests_take_addresses_by_dhcp_and_reach_each_other(self):
        d1 = self.daemon(self.h1, "10.99.0.1", "10.99.0.2", "10.201.1.0/24")
        d2 = self.daemon(self.h2, "10.99.0.2", "10.99.0.1", "10.201.2.0/24")
        t0 = time.monotonic()
        for d, name, peer in ((d1, "o1", "10.201.2.2"), (d2, "o2", "10.201.1.2")):
            cmd = ("echo CVMM-ADDR $(ip -4 -o addr show eth0 | awk '{print $4}') > /dev/ttyS0; "
                   "for i in $(seq 120); do ping -c1 -W1 %s >/dev/null && "
                   "{ echo CVMM-PING-OK > /dev/ttyS0; break; }; sleep 1; done" % peer)
            d.create(name, image="debian", memory_mb=768, networks=[{"mode": "overlay"}],
                     cloud_init={"dhcp": True, "runcmd": [cmd]})
        for d, name, addr in ((d1, "o1", "10.201.1.2"), (d2, "o2", "10.201.2.2")):
            vm = d.wait_state(name, ("running", "failed"), timeout=120)
            self.assertEqual(vm["state"], "running", vm["reason"])
            self.assertEqual(vm["nics"][0]["address"], addr + "/16")
            # The seed says DHCP, not the address: the guest must ask for it.
            iso = os.path.join(d.data, "vms", vm["id"], "cloud-init", "seed.iso")
            self.assertIn("dhcp4: true", isoinfo(iso, "-R", "-x", "/network-config"))
            self.assertNotIn(addr, isoinfo(iso, "-R", "-x", "/network-config"))
        for d, name, addr in ((d1, "o1", "10.201.1.2"), (d2, "o2", "10.201.2.2")):
            console_marker(d, name, r"CVMM-ADDR %s/16" % re.escape(addr))
        for d, name in ((d1, "o1"), (d2, "o2")):
            console_marker(d, name, r"CVMM-PING-OK", timeout=180)
        print("overlay: both guests pinged each other %.0f s after create"
              % (time.monotonic() - t0), flush=True)
        # Handed out by this host's dnsmasq, recorded in its lease file.
        for d, name, addr in ((d1, "o1", "10.201.1.2"), (d2, "o2", "10.201.2.2")):
            with open(os.path.join(d.run, "net-overlay-dhcp", "leases")) as f:
                leases = f.read()
            self.assertIn("%s %s" % (d.vm(name)["nics"][0]["mac"], addr), leases)
        for d, name in ((d1, "o1"), (d2, "o2")):
            d.api("DELETE", "/v1/vms/" + name)
            wait_for(lambda: d.vm(name) is None, 120, name + " removed")
            # The last VM gone: so are the bridge and its DHCP server.
            wait_for(lambda: not os.path.exists(os.path.join(d.run, "net-overlay-dhcp")), 30,
                     "the DHCP server gone")


if __name__ == "__main__":
    unittest.main()
