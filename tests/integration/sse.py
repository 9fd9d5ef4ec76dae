"""A Server-Sent Events client for GET /v1/events over the daemon's unix
socket: a raw HTTP/1.1 request, the chunked body decoded by hand (so that a
read waits for exactly what the test asks and no more), and the stream split
into events and comments. Stdlib only."""
import json
import socket
import time


class SSE:
    def __init__(self, d, query="", last_id=None, token=None, headers=None, timeout=30):
        """Subscribes to d's /v1/events + query. last_id: sent as
        Last-Event-ID. Waits for the status line and headers; for a 200 also
        for the stream's opening comment, so that the subscription is in
        place when this returns."""
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(timeout)
        self.s.connect(d.sock)
        tok = token if token is not None else d.token
        req = "GET /v1/events%s HTTP/1.1\r\nHost: cvmm\r\nAccept: text/event-stream\r\n" % query
        if tok:
            req += "Authorization: Bearer %s\r\n" % tok
        if last_id is not None:
            req += "Last-Event-ID: %s\r\n" % last_id
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.s.sendall((req + "\r\n").encode())
        self.raw = b""   # bytes received, not yet decoded
        self.text = ""   # decoded body, not yet split into blocks
        head = self._until_raw(b"\r\n\r\n", time.monotonic() + timeout)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                        for l in lines[1:] if ":" in l}
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.ended = False
        self.body = None
        # the answers are checked against doc/openapi.json (harness.Daemon)
        self.check = getattr(d, "openapi_check", None)
        self.url = "/v1/events" + query
        if self.status != 200:
            n = int(self.headers.get("content-length", "0"))
            while len(self.raw) < n:
                self._recv(time.monotonic() + timeout)
            self.body = json.loads(self.raw[:n].decode())
            if self.check:
                self.check("GET", self.url, self.status, self.headers.get("content-type"), self.body)
            return
        if self.check:
            self.check("GET", self.url, self.status, self.headers.get("content-type"), "")
        self.hello = self.next_block(timeout)

    def close(self):
        self.s.close()

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no data in time")
        self.s.settimeout(left)
        data = self.s.recv(65536)
        if not data:
            raise EOFError("the daemon closed the stream")
        self.raw += data

    def _until_raw(self, sep, deadline):
        while sep not in self.raw:
            self._recv(deadline)
        head, self.raw = self.raw.split(sep, 1)
        return head

    def _decode_more(self, deadline):
        """Moves at least one more chunk of the body into self.text."""
        if not self.chunked:
            self._recv(deadline)
            self.text += self.raw.decode()
            self.raw = b""
            return
        # A chunk is taken whole or not at all: a timeout in between must
        # leave the stream as it was.
        while True:
            if b"\r\n" in self.raw:
                size_line, rest = self.raw.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    self.ended = True
                    raise EOFError("the daemon ended the stream")
                if len(rest) >= size + 2:
                    self.text += rest[:size].decode()
                    self.raw = rest[size + 2:]
                    return
            self._recv(deadline)

    def next_block(self, timeout=30):
        """The next event or comment: {"comment": text} or {"id": N or None,
        "data": parsed JSON}."""
        deadline = time.monotonic() + timeout
        while "\n\n" not in self.text:
            self._decode_more(deadline)
        block, self.text = self.text.split("\n\n", 1)
        out = {"id": None}
        data = []
        for line in block.split("\n"):
            if line.startswith(":"):
                out["comment"] = line[1:].strip()
            elif line.startswith("id:"):
                out["id"] = int(line[3:].strip())
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            out["data"] = json.loads("\n".join(data))
            if self.check:
                self.check("GET", self.url, "event", None, out["data"])
        return out

    def next_event(self, timeout=30):
        """The next event, comments (keep-alives) skipped."""
        deadline = time.monotonic() + timeout
        while True:
            b = self.next_block(max(0.01, deadline - time.monotonic()))
            if "data" in b:
                return b

    def events_until(self, pred, timeout=60, what="an event"):
        """Events up to and including the first for which pred(event) holds."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                e = self.next_event(max(0.01, deadline - time.monotonic()))
            except socket.timeout:
                raise AssertionError("timed out waiting for %s; got %s" % (
                    what, [(x["id"], x["data"].get("type"), x["data"].get("message"))
                           for x in got]))
            got.append(e)
            if pred(e):
                return got

    def quiet(self, seconds):
        """The events that arrive within seconds (comments skipped)."""
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.next_event(max(0.01, deadline - time.monotonic())))
            except socket.timeout:
                break
        return got
