"""The API's description (doc/openapi.json, served at GET /v1/openapi.json)
against the real daemon: the document is well-formed OpenAPI 3.1 whose
schemas are valid JSON Schema 2020-12 and whose references resolve; every
route the daemon lists (GET /v1/routes: the core's and those of the loaded
bundled plugins) is described with its method, and every described
operation is served: a request to it is not the router's "no such
endpoint" 404 or its 405. Every answer of these requests is checked
against the description by the harness, like those of every other suite.

Whether each answer of the other suites matches is checked in the harness
(openapi_check.py), for the whole integration suite."""
import glob
import json
import os
import re
import unittest

import jsonschema

import openapi_check
from harness import Daemon, IMAGES

ROOT = openapi_check.ROOT
# The bundled plugins that add routes or members (x-cvmm-plugin), with
# what they need to load here; their remote services are loopback ports
# nobody listens on (their routes then answer 502, which is described).
PLUGINS = ("backend-qemu", "net-user", "cloud-init", "confidential", "gateway", "gpu-vfio",
           "key-provider", "kms")
SECTIONS = ('kms = { urls = [ "http://127.0.0.1:9" ]; timeout_ms = 500; guest_calls_route = true; };\n'
            'key-provider = { address = "127.0.0.1"; port = 9; timeout_ms = 500; '
            'connect_timeout_ms = 200; guest_calls_route = true; };\n'
            'gateway = { base_domain = "example.test"; port = 8443; agent_port = 8090; '
            'timeout_ms = 500; guest_calls_route = true; };\n')
TOKEN = "openapi-test-token-0123"
HTTP_STATUS = re.compile(r"^([1-5][0-9][0-9]|[1-5]XX|default)$")


def walk(node, path=""):
    """Every (JSON pointer, dict) in node."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, path + "/" + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + "/" + str(i))


class Document(unittest.TestCase):
    """The file itself: OpenAPI 3.1's structure (Debian has no OpenAPI
    validator), JSON Schema's metaschema for every schema."""

    def setUp(self):
        with open(openapi_check.SPEC_FILE) as f:
            self.doc = json.load(f)

    def test_structure(self):
        d = self.doc
        self.assertRegex(d["openapi"], r"^3\.1\.\d+$")
        self.assertTrue(d["info"]["title"] and d["info"]["version"])
        self.assertIn("bearer", d["components"]["securitySchemes"])
        allowed = {"openapi", "info", "servers", "paths", "components", "security", "tags",
                   "webhooks", "jsonSchemaDialect", "externalDocs"}
        self.assertEqual(set(d) - allowed, set())
        ids = []
        for tpl, item in d["paths"].items():
            self.assertTrue(tpl.startswith("/"), tpl)
            params = set(re.findall(r"\{([^}]+)\}", tpl))
            ops = [m for m in item if m in openapi_check.METHODS]
            self.assertTrue(ops, tpl)
            self.assertEqual(set(item) - set(ops) - {"parameters", "summary", "description"},
                             set(), tpl)
            for m in ops:
                op = item[m]
                where = "%s %s" % (m.upper(), tpl)
                ids.append(op.get("operationId"))
                self.assertTrue(op.get("summary"), where)
                self.assertTrue(op["responses"], where)
                for code, r in op["responses"].items():
                    self.assertRegex(code, HTTP_STATUS, where)
                    r = openapi_check.spec().resolve(r)
                    self.assertTrue(r.get("description"), "%s %s" % (where, code))
                declared = {p["name"] for p in item.get("parameters", []) + op.get("parameters", [])
                            if p["in"] == "path"}
                self.assertEqual(declared, params, "%s: path parameters" % where)
                for p in item.get("parameters", []) + op.get("parameters", []):
                    self.assertIn(p["in"], ("path", "query", "header", "cookie"), where)
                    self.assertIn("schema", p, where)
                    if p["in"] == "path":
                        self.assertIs(p.get("required"), True, where)
        self.assertEqual(len(ids), len(set(ids)), "operationIds are unique")

    def test_references_resolve(self):
        for where, node in walk(self.doc):
            ref = node.get("$ref")
            if isinstance(ref, str):
                self.assertTrue(ref.startswith("#/"), "%s: %s" % (where, ref))
                target = self.doc
                for part in ref[2:].split("/"):
                    self.assertIn(part, target, "%s: %s does not resolve" % (where, ref))
                    target = target[part]

    def test_schemas_are_json_schema_2020_12(self):
        schemas = [("/components/schemas/" + k, v) for k, v in self.doc["components"]["schemas"].items()]
        for where, node in walk(self.doc["paths"], "/paths"):
            if "schema" in node and isinstance(node["schema"], dict):
                schemas.append((where + "/schema", node["schema"]))
        self.assertGreater(len(schemas), 40)
        for where, s in schemas:
            try:
                jsonschema.Draft202012Validator.check_schema(s)
            except jsonschema.SchemaError as e:
                self.fail("%s: %s" % (where, e.message))

    def test_bundled_plugins_routes_are_described(self):
        """From the plugins' sources: a route a bundled plugin registers is
        in the description even when no test loads the plugin."""
        spec = openapi_check.spec()
        rx = re.compile(r'register_(vm_)?route\(\s*\w+,\s*"([A-Z]+)",\s*"([^"]+)"')
        found = 0
        for src in glob.glob(os.path.join(ROOT, "plugins", "*", "*.c")):
            if os.path.basename(src).startswith("test_"):
                continue
            plugin = os.path.basename(os.path.dirname(src))
            for vm, method, path in rx.findall(open(src).read()):
                tpl = ("/v1/vms/{id}/" if vm else "/v1/") + path
                found += 1
                op = spec.doc["paths"].get(tpl, {}).get(method.lower())
                self.assertIsNotNone(op, "%s: %s %s is not in doc/openapi.json" % (src, method, tpl))
                self.assertEqual(op.get("x-cvmm-plugin"), plugin, "%s %s" % (method, tpl))
        self.assertGreaterEqual(found, 6)


class Served(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root: run the tests as root (a test that cannot run fails)")
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s" % IMAGES)
        self.d = Daemon(plugins=PLUGINS, plugin_sections=SECTIONS, auth_tokens=[TOKEN])
        self.d.start()

    def tearDown(self):
        left = self.d.cleanup()  # fails on answers that do not match the description
        self.assertEqual(left, [])

    def test_served_document_is_the_file(self):
        st, o = self.d.api("GET", "/v1/openapi.json")
        self.assertEqual(st, 200)
        with open(openapi_check.SPEC_FILE) as f:
            self.assertEqual(o, json.load(f))
        # with the API's auth
        st, o = self.d.api("GET", "/v1/openapi.json", token="wrong")
        self.assertEqual(st, 401, o)

    def test_description_and_routes_want_the_token(self):
        # What the API serves and who answers it is for the token's holders
        # only, however the path is spelled.
        for path in ("/v1/openapi.json", "/v1/routes", "/v1/routes?x=1", "//v1/routes",
                     "/v1/routes/", "/v1/%72outes", "/v1/./routes", "/v1/../v1/routes",
                     "/v1/openapi.json%00", "/metrics/../v1/routes"):
            for tok in ("", "wrong", TOKEN + "x"):
                st, o = self.d.api("GET", path, token=tok)
                self.assertEqual(st, 401, "%s with token %r: %s %s" % (path, tok, st, o))
        self.assertEqual(self.d.api("GET", "/v1/routes")[0], 200)
        self.assertEqual(self.d.api("POST", "/v1/openapi.json")[0], 405)

    def test_every_route_described_and_served(self):
        d, spec = self.d, openapi_check.spec()
        st, o = d.api("GET", "/v1/routes")
        self.assertEqual(st, 200, o)
        listed = {(r["method"], r["path"]): r.get("plugin") for r in o["routes"]}
        described = {(m, tpl): op.get("x-cvmm-plugin") for m, tpl, op in spec.operations()}
        # every route the daemon serves is described, marked with its plugin
        for key, plugin in sorted(listed.items()):
            self.assertTrue(key in described,
                            "%s %s (plugin %s) is not in doc/openapi.json" % (key + (plugin,)))
            self.assertEqual(described[key], plugin, "%s %s: x-cvmm-plugin" % key)
        # and every described route is one it lists (all its plugins are loaded)
        self.assertEqual(sorted(set(described) - set(listed)), [],
                         "described but not listed by GET /v1/routes")
        plugins = {p for p in described.values() if p}
        self.assertLessEqual(plugins, set(PLUGINS), "a plugin of the description is not loaded here")

        # Served: each operation, on a VM that exists (defined, never started)
        # and with bodies its handler refuses, so nothing boots or changes
        # before the last requests.
        d.create("oa1", start=False)
        values = {"id": "oa1", "name": "no-such-image", "snapshot": "s1", "file": "app.js"}
        # the VM's removal last, after its snapshot's
        order = sorted(described, key=lambda k: (k[0] == "DELETE", -len(k[1]) if k[0] == "DELETE" else 0, k[1]))
        answered = 0
        for method, tpl in order:
            url = re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], tpl)
            body = {"no_such_field": 1} if method == "POST" else None
            if (method, tpl) == ("GET", "/v1/events"):
                st, o = self.stream_status(url)
            else:
                st, o = d.api(method, url, body)
            self.assertFalse(openapi_check.router_rejection(st, o),
                             "%s %s: the router does not serve it: %d %s" % (method, url, st, o))
            answered += 1
        self.assertEqual(answered, len(described))
        self.assertGreater(d.openapi_checked, len(described))

    def stream_status(self, url):
        """The status of an endless answer (SSE), read without its body."""
        from harness import UnixHTTPConnection
        c = UnixHTTPConnection(self.d.sock, timeout=10)
        try:
            c.request("GET", url, headers={"Authorization": "Bearer " + TOKEN})
            r = c.getresponse()
            self.d.openapi_check("GET", url, r.status, r.getheader("Content-Type"), "")
            return r.status, None
        finally:
            c.close()


if __name__ == "__main__":
    unittest.main()
