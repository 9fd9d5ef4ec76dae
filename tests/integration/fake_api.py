#!/usr/bin/env python3
"""Canned cvmmd API (README "API (v1)") on a unix socket, for developing the
cvmm CLI before the daemon runs. Not a test fixture: real tests use cvmmd.

    python3 tests/integration/fake_api.py SOCKET [--token T]

Starts with two VMs (web1 running, db1 stopped). Action routes take the id
only, as the README writes them. "logs" streams chunked text; with follow=1
it keeps sending a line every 0.3 s for a few seconds, then ends.
"""
import json
import os
import socketserver
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN = None
VMS = {}


def vm(name, state, ports=(), **kw):
    v = {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "name": name, "image": "tiny",
         "backend": "qemu", "vcpu": 1, "memory_mb": 256, "disk_gb": 0, "cid": 1000 + len(VMS),
         "state": state, "reason": "", "desired": state, "networks": [{"mode": "user"}],
         "ports": list(ports), "pid": 4242 if state == "running" else None, "restarts": 0,
         "created": 1795000000.1, "started": 1795000001.2 if state == "running" else None}
    v.update(kw)
    VMS[v["id"]] = v
    return v


vm("web1", "running", [{"protocol": "tcp", "host_address": "127.0.0.1",
                        "host_port": 18080, "vm_port": 8080}])
vm("db1", "stopped", vcpu=2, memory_mb=1024, disk_gb=4)

HOST = {"version": "0.1.0", "abi": "1.0",
        "limits": {"vcpu": 64, "memory_mb": 65536, "vms": 32},
        "usage": {"vcpu": 3, "memory_mb": 1280, "vms": 2},
        "cid_pool": {"from": 1000, "to": 1999, "used": 2},
        "backends": ["qemu", "libvirt"], "network_modes": ["user", "passt", "bridge"],
        "accelerator": "kvm"}
PLUGINS = {"plugins": [
    {"name": "backend-qemu", "version": "0.1.0", "description": "QEMU backend",
     "provides": ["backend:qemu"]},
    {"name": "net-user", "version": "0.1.0", "description": "slirp networking",
     "provides": ["network:user"]}]}
IMAGES = {"images": [{"name": "tiny", "kernel": "bzImage", "size_gb": 0}]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self):  # a unix peer has no address
        return "unix"

    def log_message(self, fmt, *args):
        sys.stderr.write("fake_api: " + (fmt % args) + "\n")

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.reply(status, {"error": {"code": code, "message": message}})

    def find(self, key, by_name=True):
        for v in VMS.values():
            if v["id"] == key or (by_name and v["name"] == key):
                return v
        return None

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def route(self, method):
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        if TOKEN and self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.error(401, "unauthorized", "missing or invalid token")
        if method == "GET" and parts in (["v1", "host"], ["v1", "plugins"], ["v1", "images"]):
            return self.reply(200, {"host": HOST, "plugins": PLUGINS, "images": IMAGES}[parts[1]])
        if parts == ["v1", "vms"] and method == "GET":
            return self.reply(200, {"vms": list(VMS.values())})
        if parts == ["v1", "vms"] and method == "POST":
            b = self.body()
            sys.stderr.write("fake_api: create body %s\n" % json.dumps(b))
            if not b.get("name") or not b.get("image"):
                return self.error(400, "bad_request", "name and image are required")
            if b.get("vcpu", 1) > HOST["limits"]["vcpu"]:
                return self.error(400, "bad_request", "vcpu %d exceeds the host limit of %d"
                                  % (b["vcpu"], HOST["limits"]["vcpu"]))
            if any(v["name"] == b["name"] for v in VMS.values()):
                return self.error(409, "conflict", "VM '%s' already exists" % b["name"])
            start = b.pop("start", True)
            v = vm(b.pop("name"), "starting" if start else "defined", b.pop("ports", []), **b)
            return self.reply(201, v)
        if len(parts) < 3 or parts[:2] != ["v1", "vms"]:
            return self.error(404, "not_found", "no such route")
        v = self.find(parts[2], by_name=len(parts) == 3)
        if not v:
            return self.error(404, "not_found", "VM '%s' not found" % parts[2])
        if len(parts) == 3 and method == "GET":
            return self.reply(200, v)
        if len(parts) == 3 and method == "DELETE":
            del VMS[v["id"]]
            return self.reply(200, {"removed": v["id"]})
        action = parts[3] if len(parts) == 4 else None
        if method == "POST" and action in ("start", "stop", "restart", "kill"):
            b = self.body()
            sys.stderr.write("fake_api: %s body %s\n" % (action, json.dumps(b)))
            if action == "start" and v["state"] == "running":
                return self.error(409, "conflict", "VM '%s' is already running" % v["name"])
            v["state"] = {"start": "starting", "restart": "starting"}.get(action, "stopping")
            return self.reply(202, v)
        if method == "GET" and action == "logs":
            return self.logs(v, parse_qs(url.query))
        return self.error(405, "method_not_allowed", "%s not allowed here" % method)

    def logs(self, v, q):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        lines = ["[    0.%06d] boot line %d of %s\n" % (i, i, v["name"]) for i in range(10)]
        tail = int(q["tail"][0]) if "tail" in q else None
        lines = lines[-tail:] if tail else ([] if tail == 0 else lines)
        if q.get("follow") == ["1"]:
            lines += ["follow %d\n" % i for i in range(10)]
        try:
            for i, line in enumerate(lines):
                data = line.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                if q.get("follow") == ["1"] and line.startswith("follow"):
                    time.sleep(0.3)
            self.wfile.write(b"0\r\n\r\n")
        except BrokenPipeError:
            pass

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    if len(sys.argv) not in (2, 4) or (len(sys.argv) == 4 and sys.argv[2] != "--token"):
        sys.exit(__doc__)
    path = sys.argv[1]
    TOKEN = sys.argv[3] if len(sys.argv) == 4 else None
    if os.path.exists(path):
        os.unlink(path)
    with Server(path, Handler) as srv:
        srv.serve_forever()
