"""The parts of the API a plugin owns (ABI 1.2), through the real daemon
with tests/plugins/test_api12.c: its create-body field (validated by the
plugin, refused with its message and nothing created), its parts of GET
/v1/host and of each VM, its routes, and DAEMON_START/DAEMON_STOP."""
import os
import unittest

from harness import DaemonTest


class PluginApi(DaemonTest):
    daemon_args = {"plugins": ("backend-qemu", "net-user", "test-api12")}

    def test_field_info_routes(self):
        d = self.d
        st, o = d.api("POST", "/v1/vms", {"name": "w1", "image": "tiny", "start": False,
                                          "widget": {"size": 11}})
        self.assertEqual(st, 400, o)
        self.assertIn("widget.size: must be between 1 and 10", o["error"]["message"])
        self.assertEqual(d.api("GET", "/v1/vms")[1]["vms"], [])
        self.assertEqual(os.listdir(os.path.join(d.data, "vms")), [])
        st, o = d.api("POST", "/v1/vms", {"name": "w1", "image": "tiny", "start": False,
                                          "gadget": 1})
        self.assertEqual(st, 400)
        self.assertIn("gadget: unknown field", o["error"]["message"])

        o = d.create("w1", start=False, widget={"size": 3})
        self.assertEqual(o["fields"], {"widget": {"size": 3}})
        self.assertEqual(o["widget"], {"asked": {"size": 3}})
        d.create("w2", start=False)
        self.assertEqual(d.vm("w2")["widget"], {"asked": None})
        vms = {v["name"]: v for v in d.api("GET", "/v1/vms")[1]["vms"]}
        self.assertEqual(vms["w1"]["widget"], {"asked": {"size": 3}})
        self.assertEqual(d.api("GET", "/v1/host")[1]["widget"], {"defined": 1})
        self.assertEqual(d.api("GET", "/v1/widgets"), (200, {"widgets": 1}))
        st, o = d.api("POST", "/v1/widgets/fail")
        self.assertEqual(st, 409)
        self.assertEqual(o["error"]["message"], "widgets: all widgets are busy")
        self.assertEqual(d.api("DELETE", "/v1/widgets")[0], 404)

        # The field is kept with the VM across a daemon restart.
        d.kill9()
        d.start()
        self.assertEqual(d.vm("w1")["fields"], {"widget": {"size": 3}})
        # (the plugin's count lives in its memory: it starts again at 0)
        self.assertEqual(d.api("DELETE", "/v1/vms/w1")[0], 200)
        self.assertEqual(d.api("DELETE", "/v1/vms/w2")[0], 200)
        self.assertEqual(d.api("GET", "/v1/host")[1]["widget"], {"defined": -1})
        d.stop()
        log = d.read_log()
        self.assertIn("test-api12: daemon start", log)
        self.assertIn("test-api12: daemon stop", log)


class DryRun(DaemonTest):
    def test_dry_run_renders_and_changes_nothing(self):
        d = self.d
        host_before = d.api("GET", "/v1/host")[1]
        st, o = d.api("POST", "/v1/vms?dry_run=1",
                      {"name": "dry1", "image": "tiny", "vcpu": 1, "memory_mb": 300,
                       "ports": [{"host_port": 23456, "vm_port": 80}]})
        self.assertEqual(st, 200, o)
        self.assertEqual(o["vm"]["name"], "dry1")
        argv = o["render"]["argv"]
        self.assertEqual(o["render"]["backend"], "qemu")
        self.assertIn("-uuid", argv)
        self.assertEqual(argv[argv.index("-uuid") + 1], o["vm"]["id"])
        self.assertTrue(any("hostfwd=tcp:127.0.0.1:23456-:80" in a for a in argv), argv)
        self.assertNotIn("missing", o["render"])
        # Nothing reserved, written or started.
        self.assertEqual(d.api("GET", "/v1/vms")[1]["vms"], [])
        self.assertEqual(os.listdir(os.path.join(d.data, "vms")), [])
        host_after = d.api("GET", "/v1/host")[1]
        self.assertEqual(host_before["usage"], host_after["usage"])
        self.assertEqual(host_before["cid_pool"], host_after["cid_pool"])
        # Refused exactly like a create.
        st, o = d.api("POST", "/v1/vms?dry_run=1", {"name": "dry1", "image": "tiny", "vcpu": 0})
        self.assertEqual(st, 400)
        self.assertIn("vcpu:", o["error"]["message"])
        d.create("taken", start=False)
        st, o = d.api("POST", "/v1/vms?dry_run=1", {"name": "taken", "image": "tiny"})
        self.assertEqual(st, 409)
        self.assertEqual(d.api("DELETE", "/v1/vms/taken")[0], 200)
        # The CLI prints the arguments, one a line.
        p = d.cli("create", "dry2", "--image", "tiny", "--dry-run")
        self.assertIn("-uuid\n", p.stdout)
        self.assertEqual(d.api("GET", "/v1/vms")[1]["vms"], [])


class DryRunLibvirt(DaemonTest):
    backend = "libvirt"

    def test_dry_run_renders_xml(self):
        st, o = self.d.api("POST", "/v1/vms?dry_run=1", {"name": "dryx", "image": "tiny"})
        self.assertEqual(st, 200, o)
        self.assertEqual(o["render"]["backend"], "libvirt")
        self.assertIn("<uuid>%s</uuid>" % o["vm"]["id"], o["render"]["xml"])
        self.assertEqual(self.d.api("GET", "/v1/vms")[1]["vms"], [])


if __name__ == "__main__":
    unittest.main()
