"""The API's description (doc/openapi.json) as the tests use it: which
route template a request path is, and whether an answer the daemon gave
matches what the description says of that path, method and status.

The harness (Daemon.api) checks every answer it receives with
Spec.check(); Daemon.cleanup() fails the test with what did not match. Set
CVMM_OPENAPI_CHECK=0 to switch that off while looking at something else.

OpenAPI 3.1: every schema is JSON Schema 2020-12, validated with
python3-jsonschema; a schema's "$ref"s into components resolve against a
root that carries the document's components."""
import copy
import json
import os
import re
import urllib.parse

import jsonschema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_FILE = os.path.join(ROOT, "doc", "openapi.json")
METHODS = ("get", "post", "put", "delete", "patch")
DIALECT = "https://json-schema.org/draft/2020-12/schema"
# What the router answers for a path or method it does not serve, before
# any route runs (auth, body size, headers): documented as the Error object.
ROUTER_STATUSES = (400, 401, 404, 405, 413)


def router_rejection(status, body):
    """The router's own "no such endpoint" (404) or "use GET" (405)."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    msg = body["error"].get("message", "")
    return (status == 404 and msg.startswith("no such endpoint")) or status == 405


class Spec:
    def __init__(self, path=SPEC_FILE, doc=None):
        self.doc = doc if doc is not None else json.load(open(path))
        self.components = self.doc.get("components", {})
        self._validators = {}
        # Literal segments before parameters: /v1/host/check before any
        # /v1/{x}/check a plugin might add.
        self.templates = []
        for tpl in self.doc["paths"]:
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(tpl)) + "$"
            self.templates.append((tpl.count("{"), tpl, re.compile(rx)))
        self.templates.sort(key=lambda t: (t[0], t[1]))

    def operations(self):
        """(METHOD, template, operation) of every operation."""
        for tpl, item in self.doc["paths"].items():
            for m in METHODS:
                if m in item:
                    yield m.upper(), tpl, item[m]

    def template(self, url):
        path = urllib.parse.urlsplit(url).path
        if path == "/v1/vms/":  # the router's alias of /v1/vms
            path = "/v1/vms"
        for _, tpl, rx in self.templates:
            if rx.match(path):
                return tpl
        return None

    def resolve(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            node = self.doc
            for part in obj["$ref"].lstrip("#/").split("/"):
                node = node[part]
            obj = node
        return obj

    def validator(self, schema):
        key = id(schema)
        v = self._validators.get(key)
        if v is None:
            root = {"$schema": DIALECT, "components": self.components, "allOf": [schema]}
            v = jsonschema.Draft202012Validator(root)
            self._validators[key] = (v, schema)  # keeps schema alive: id() stays unique
        else:
            v = v[0]
        return v

    def schema_errors(self, schema, value, limit=3):
        errs = sorted(self.validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
        out = []
        for e in errs[:limit]:
            where = "/".join(str(p) for p in e.absolute_path) or "(the body)"
            out.append("%s: %s" % (where, e.message[:300]))
        return out

    def error_schema(self):
        return self.components["schemas"]["Error"]

    def check(self, method, url, status, ctype, body, request=None):
        """A list of what does not match (empty: the answer is as described).
        body: the parsed JSON, or the text when it is not JSON; request: the
        request's body, parsed (None: none or not JSON). status
        "event": body is the JSON of one event of GET /v1/events."""
        if status == "event":  # one event of GET /v1/events' stream
            return ["GET %s: event %s: %s" % (url, json.dumps(body)[:200], e) for e in
                    self.schema_errors(self.components["schemas"]["StreamEvent"], body)]
        tpl = self.template(url)
        what = "%s %s -> %d" % (method, url, status)
        if tpl is None or method.lower() not in self.doc["paths"][tpl]:
            # Not a route: only the router's refusal is a right answer.
            if status not in ROUTER_STATUSES:
                return ["%s: %s is not in the API description" % (
                    what, "the path" if tpl is None else "%s %s" % (method, tpl))]
            return ["%s: %s" % (what, e) for e in self.schema_errors(self.error_schema(), body)]
        op = self.doc["paths"][tpl][method.lower()]
        out = []
        # A body the daemon accepted is one the description allows: its
        # request schemas are not stricter than the daemon.
        rb = self.resolve(op.get("requestBody", {})).get("content", {}).get("application/json")
        if rb and isinstance(request, dict) and 200 <= status < 300:
            out += ["%s: the request body, accepted, is refused by the description: %s" % (what, e)
                    for e in self.schema_errors(rb["schema"], request)]
        return out + self.check_response(op, tpl, method, status, ctype, body, what)

    def check_response(self, op, tpl, method, status, ctype, body, what):
        responses = op.get("responses", {})
        resp = responses.get(str(status)) or responses.get("%dXX" % (status // 100)) or responses.get("default")
        if resp is None:
            return ["%s: status %d is not among %s %s's responses (%s)" % (
                what, status, method, tpl, ", ".join(sorted(responses)))]
        resp = self.resolve(resp)
        content = resp.get("content")
        if not content:
            return []
        base = (ctype or "").split(";")[0].strip().lower()
        if base not in content:
            return ["%s: Content-Type %r, the description says %s" % (what, ctype, ", ".join(content))]
        schema = content[base].get("schema")
        if schema is None:
            return []
        if base == "application/json":
            if isinstance(body, str):
                return ["%s: the body is not JSON: %.200r" % (what, body)]
            return ["%s (%s %s): %s" % (what, method, tpl, e) for e in self.schema_errors(schema, body)]
        return []


PLUGIN_FRAGMENTS = os.path.join(ROOT, "tests", "plugins")
_specs = {}


def with_fragments(doc, plugins):
    """doc with what test plugins (not bundled, so not in doc/openapi.json)
    add: tests/plugins/<name>.openapi.json holds their paths and their
    members of VMs, of the host and of the create body."""
    doc = copy.deepcopy(doc)
    sch = doc["components"]["schemas"]
    for name in plugins:
        f = os.path.join(PLUGIN_FRAGMENTS, name + ".openapi.json")
        if not os.path.exists(f):
            continue
        frag = json.load(open(f))
        doc["paths"].update(frag.get("paths", {}))
        for key, targets in (("vm_members", ("VM", "VMPartial")), ("host_members", ("Host",)),
                             ("fields", ("CreateVM", "PluginFields"))):
            for t in targets:
                sch[t]["properties"].update(frag.get(key, {}))
    return doc


def spec(plugins=()):
    """The description for a daemon that loaded plugins (cached)."""
    key = tuple(p for p in plugins if os.path.exists(os.path.join(PLUGIN_FRAGMENTS, p + ".openapi.json")))
    if key not in _specs:
        base = json.load(open(SPEC_FILE))
        _specs[key] = Spec(doc=with_fragments(base, key) if key else base)
    return _specs[key]


def enabled():
    return os.environ.get("CVMM_OPENAPI_CHECK", "1") != "0"
