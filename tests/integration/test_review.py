"""Bugs found by the adversarial review of the rewritten core (issue 7),
each reproduced against the real daemon."""
import json
import os
import subprocess
import sys
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


def edit_manifest(d, vm_id, **changes):
    path = os.path.join(d.data, "vms", vm_id, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    m.update(changes)
    with open(path, "w") as f:
        json.dump(m, f)


def hook_daemon(hook_timeout, hang_seconds):
    """A daemon with test-fail (faults chosen by VM name) and a short
    cvm.hook_timeout."""
    d = Daemon(plugins=("backend-qemu", "net-user", "test-fail"),
               plugin_sections="test-fail = { from_name = true; hang_seconds = %d; };"
               % hang_seconds)
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, "w") as f:
        f.write(text.replace("cvm = {\n", "cvm = {\n  hook_timeout = %d;\n" % hook_timeout, 1))
    return d


class ResumedRemoval(unittest.TestCase):
    def test_requests_for_a_vm_whose_removal_resumes_get_409_and_it_is_removed(self):
        """A daemon killed during a removal (manifest state "removing")
        finishes it at its next start. Until then the VM is being removed:
        a start must get 409, as after a DELETE, and must not turn the
        removal into a start."""
        d = hook_daemon(hook_timeout=4, hang_seconds=8)
        try:
            d.start()
            # Four VMs whose resumed start hangs in PREPARE keep the four
            # workers busy, so the removal's resume waits its turn.
            busy = [d.create("hang-prepare-%d" % i, start=False)["id"] for i in range(4)]
            victim = d.create("victim", start=False)["id"]
            d.stop()
            for vm_id in busy:
                edit_manifest(d, vm_id, want_running=True)
            edit_manifest(d, victim, state="removing")
            d.start()
            st, o = d.api("POST", "/v1/vms/victim/start")
            self.assertEqual(st, 409, o)
            wait_for(lambda: d.api("GET", "/v1/vms/victim")[0] == 404, 60,
                     "the removal of VM victim to complete")
            self.assertFalse(os.path.exists(os.path.join(d.data, "vms", victim)))
        finally:
            d.cleanup()


class InterruptedCreate(unittest.TestCase):
    def test_the_resume_of_an_interrupted_create_undoes_its_define(self):
        """kill -9 while a create's DEFINE runs: at the next start the VM is
        removed, and what DEFINE did (a plugin's reservation: net-bridge's
        address, net-overlay's lease) must be undone, not left held."""
        d = hook_daemon(hook_timeout=60, hang_seconds=30)
        try:
            d.start()
            t = threading.Thread(target=lambda: d.api("POST", "/v1/vms",
                                                       {"name": "hang-define-x", "image": "tiny"},
                                                       timeout=5), daemon=True)
            t.start()
            wait_for(lambda: "hangs for 30 s on purpose" in d.read_log(), 20,
                     "DEFINE of hang-define-x to hang")
            d.kill9()
            before = len(d.read_log())
            d.start()
            wait_for(lambda: d.api("GET", "/v1/vms/hang-define-x")[0] == 404, 30,
                     "the interrupted create to be removed")
            after = d.read_log()[before:]
            self.assertIn("VM 'hang-define-x': undo undefine ran", after, after[-3000:])
            self.assertEqual(os.listdir(os.path.join(d.data, "vms")), [])
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()


HOLDER = r"""
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(16)
child = os.fork()
if child == 0:          # the child keeps the listening socket, as a child of
    os.setsid()         # cvmmd between fork and exec does when cvmmd is killed
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)    # and not the test's pipe
    os.dup2(null, 2)
    time.sleep(60)
    os._exit(0)
print(os.getpid(), child, flush=True)   # the listener itself exits
"""


class StaleSocket(unittest.TestCase):
    def test_a_socket_held_by_a_dead_daemons_child_is_taken_over(self):
        """cvmmd killed while a child was between fork and exec: the child
        still holds the listening socket for a moment, so a connect to it
        succeeds. The next cvmmd must not take that for another live daemon
        (CI saw "another cvmmd is listening there" in the crash suite): the
        listener the socket names is gone."""
        d = Daemon()
        child = None
        try:
            os.makedirs(os.path.dirname(d.sock), exist_ok=True)
            p = subprocess.run([sys.executable, "-c", HOLDER, d.sock], capture_output=True,
                               text=True, timeout=30, check=True)
            listener, child = (int(x) for x in p.stdout.split())
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(d.sock)  # still "listening", held by the child
            c.close()
            d.start()
            self.assertEqual(d.api("GET", "/v1/host")[0], 200)
            self.assertIn("held only by a leftover child of a daemon that is gone (pid %d)"
                          % listener, d.read_log())
        finally:
            if child:
                os.kill(child, 9)
            d.cleanup()

    def test_a_live_listener_is_not_taken_over(self):
        """The other side: a process that listened and still lives keeps its
        socket; cvmmd refuses to start, saying so."""
        d = Daemon()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.makedirs(os.path.dirname(d.sock), exist_ok=True)
            s.bind(d.sock)
            s.listen(4)
            with self.assertRaises(AssertionError) as cm:
                d.start(timeout=10)
            self.assertIn("another cvmmd is listening there", str(cm.exception))
        finally:
            s.close()
            d.cleanup()
