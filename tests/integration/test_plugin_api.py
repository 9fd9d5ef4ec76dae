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


if __name__ == "__main__":
    unittest.main()
