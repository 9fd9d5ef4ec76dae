"""Bugs found by the adversarial review of the rewritten core (issue 7),
each reproduced against the real daemon."""
import json
import os
import socket
import threading
import time
import unittest

from harness import Daemon, DaemonTest, wait_for


def raw_request(sock_path, path):
    """GET path over the daemon's socket; returns (status, body bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


class ErrorBodies(DaemonTest):
    def test_error_echoing_a_name_is_valid_utf8_json(self):
        # Byte sequences that look like UTF-8 to a naive check but are not:
        # a UTF-16 surrogate, an overlong 3-byte form, a code point past
        # U+10FFFF. A strict client (Python's json on bytes) must parse it.
        for seq in ("%ED%A0%80", "%E0%80%AF", "%F4%90%80%80", "%F5%80%80%80"):
            st, body = raw_request(self.d.sock, "/v1/vms/x" + seq + "y")
            self.assertEqual(st, 404, body)
            try:
                o = json.loads(body.decode("utf-8"))
            except ValueError as e:
                self.fail("%s: body is not UTF-8 JSON (%s): %r" % (seq, e, body))
            self.assertIn("no VM", o["error"]["message"])


if __name__ == "__main__":
    unittest.main()
