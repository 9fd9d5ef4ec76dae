"""The CLI and the daemon's front door: exit codes scripts rely on, clear
errors, config checking."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import CVMM, CVMMD, DaemonTest


class CliContract(DaemonTest):
    daemon_args = dict(auth_tokens=["integration-token-0123456789"])

    def test_exit_codes_and_json(self):
        d = self.d
        d.cli("create", "c1", "--image", "tiny", "--no-start")
        self.assertEqual(d.cli("info", "nope", check=False).returncode, 4)
        dup = d.cli("create", "c1", "--image", "tiny", "--no-start", check=False)
        self.assertEqual(dup.returncode, 5)
        self.assertIn("exists already", dup.stderr)
        bad = d.cli("create", "bad/name", "--image", "tiny", check=False)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("name:", bad.stderr)
        over = d.cli("create", "big", "--image", "tiny", "--vcpu", "64", "--no-start", check=False)
        self.assertEqual(over.returncode, 5)
        self.assertIn("16", over.stderr)  # the limit is in the message
        js = d.cli("--json", "list").stdout
        self.assertIn('"name":', js)
        self.assertIn('"c1"', js)
        env = dict(os.environ, CVMM_SOCKET=d.sock)
        env.pop("CVMM_TOKEN", None)
        noauth = subprocess.run([CVMM, "list"], env=env, capture_output=True, text=True)
        self.assertEqual(noauth.returncode, 1)
        self.assertIn("token", noauth.stderr)
        env["CVMM_SOCKET"] = os.path.join(d.dir, "nothing.sock")
        gone = subprocess.run([CVMM, "list"], env=env, capture_output=True, text=True)
        self.assertEqual(gone.returncode, 3)
        self.assertIn("nothing.sock", gone.stderr)
        d.cli("remove", "c1")


class CheckConfig(unittest.TestCase):
    def test_check_config_names_file_line_key(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write('log_level = "info";\ncvm = {\n  cid_pool_size = 0;\n};\n')
        try:
            p = subprocess.run([CVMMD, "--check-config", f.name], capture_output=True, text=True)
            self.assertEqual(p.returncode, 2)
            self.assertIn("%s:3: cvm.cid_pool_size" % f.name, p.stderr)
            good = os.path.join(os.path.dirname(__file__), "../../conf/cvmm.conf")
            p = subprocess.run([CVMMD, "--check-config", good], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
        finally:
            os.unlink(f.name)


class HungDaemon:
    """A unix socket that accepts and reads requests like cvmmd, but answers
    only what it is told to: GET /v1/vms/x (so the CLI resolves VM x), and
    "/logs" with a body trickled over `trickle` seconds when that is set.
    Everything else gets no answer at all."""

    def __init__(self, trickle=None):
        self.dir = tempfile.mkdtemp(prefix="cvmm-hung-")
        self.sock = os.path.join(self.dir, "cvmm.sock")
        self.trickle = trickle
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(self.sock)
        self.srv.listen(16)
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(4096)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                if path == "/v1/vms/x":
                    body = b'{"id": "x", "name": "x", "state": "running"}'
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                elif "/logs" in path and self.trickle:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                              b"Connection: close\r\n\r\n")
                    end = time.monotonic() + self.trickle
                    n = 0
                    while time.monotonic() < end:
                        c.sendall(b"line %d\n" % n)
                        n += 1
                        time.sleep(0.25)
                    c.sendall(b"done\n")
                    c.close()
                    return
                else:
                    return  # never answer; the connection stays open
        except OSError:
            return

    def close(self):
        self.srv.close()
        for c in self.conns:
            c.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class CliTimeout(unittest.TestCase):
    """A daemon that accepts but never answers must not hang the CLI."""

    def run_cli(self, sock, *args):
        t0 = time.monotonic()
        p = subprocess.run([CVMM, "--socket", sock] + list(args), capture_output=True,
                           text=True, timeout=60)
        return p, time.monotonic() - t0

    def test_hung_daemon_times_out(self):
        h = HungDaemon()
        self.addCleanup(h.close)
        p, took = self.run_cli(h.sock, "--timeout", "2", "list")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("did not answer GET /v1/vms", p.stderr)
        self.assertIn("within 2.0 s", p.stderr)
        self.assertIn(h.sock, p.stderr)
        self.assertTrue(1.9 <= took < 10, took)
        # Following the console: the limit covers the wait for the reply.
        p, took = self.run_cli(h.sock, "--timeout", "1", "logs", "-f", "x")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("did not answer GET /v1/vms/x/logs", p.stderr)
        self.assertTrue(0.9 <= took < 10, took)
        bad = self.run_cli(h.sock, "--timeout", "soon", "list")[0]
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--timeout", bad.stderr)

    def test_logs_follow_streams_past_the_timeout(self):
        h = HungDaemon(trickle=2.5)
        self.addCleanup(h.close)
        p, took = self.run_cli(h.sock, "--timeout", "1", "logs", "-f", "x")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("line 0\n"), p.stdout)
        self.assertTrue(p.stdout.endswith("done\n"), p.stdout)
        self.assertGreaterEqual(took, 2.4)


class CliInstalled(unittest.TestCase):
    """A static cvmm runs cvmm-full for --url (README "A fast CLI"): found
    in bin/../libexec/cvmm of an install under any prefix."""

    def install(self, libexec=True):
        """(prefix, its bin/cvmm, a URL nobody answers): cvmm copied into a
        prefix of its own, with an empty libexec/cvmm if asked."""
        t = tempfile.mkdtemp(prefix="cvmm-cli-")
        self.addCleanup(shutil.rmtree, t, True)
        os.makedirs(os.path.join(t, "bin"))
        if libexec:
            os.makedirs(os.path.join(t, "libexec", "cvmm"))
        cvmm = os.path.join(t, "bin", "cvmm")
        shutil.copy(CVMM, cvmm)
        # A bound port nobody listens on: refused at once.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.addCleanup(s.close)
        return t, cvmm, "http://127.0.0.1:%d" % s.getsockname()[1]

    def test_url_from_an_install_layout(self):
        t, cvmm, url = self.install()
        full = os.path.join(os.path.dirname(CVMM), "cvmm-full")
        if os.path.exists(full):  # not in a sanitizer build: cvmm is dynamic there
            shutil.copy(full, os.path.join(t, "libexec", "cvmm", "cvmm-full"))
        p = subprocess.run([cvmm, "--url", url, "host"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("cannot connect to cvmmd at %s" % url, p.stderr)
        self.assertIn("refused", p.stderr)

    def test_without_cvmm_full(self):
        # A static cvmm installed without its cvmm-full (a copied binary, a
        # partial package): --url and --env-file say what is missing and
        # fail, never hang or fall back to the local socket.
        t, cvmm, url = self.install(libexec=False)
        env = os.path.join(t, "app.env")
        with open(env, "w") as f:
            f.write("A=1\n")
        static = os.path.exists(os.path.join(os.path.dirname(CVMM), "cvmm-full"))
        for what, argv in (("--url", ["--url", url, "host"]),
                           ("--env-file", ["--socket", os.path.join(t, "none.sock"), "create",
                                           "--image", "tiny", "--env-file", env, "x"])):
            p = subprocess.run([cvmm] + argv, capture_output=True, text=True, timeout=30)
            if static and "needs" in p.stderr:
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertRegex(p.stderr, r"^cvmm: %s needs /\S+/cvmm-full: " % what)
            else:  # a dynamic cvmm, or a cvmm-full installed where it looks last
                self.assertEqual(p.returncode, 3, p.stderr)
                self.assertIn("cannot connect to cvmmd", p.stderr)

    def test_cvmm_full_that_is_cvmm_again(self):
        # An operator "fixes" a missing cvmm-full with a copy of (or a link
        # to) the static cvmm: it must say so, not exec itself for ever.
        t, cvmm, url = self.install()
        static = os.path.exists(os.path.join(os.path.dirname(CVMM), "cvmm-full"))
        full = os.path.join(t, "libexec", "cvmm", "cvmm-full")
        for how in ("copy", "symlink"):
            if os.path.lexists(full):
                os.unlink(full)
            if how == "copy":
                shutil.copy(CVMM, full)
            else:
                os.symlink(cvmm, full)
            try:
                p = subprocess.run([cvmm, "--url", url, "host"], capture_output=True, text=True,
                                   timeout=20)
            except subprocess.TimeoutExpired:
                self.fail("%s: cvmm-full as a %s of the static cvmm: no answer in 20 s" % (
                    how, how))
            if static:
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("--url needs cvmm-full", p.stderr)
                self.assertIn("static cvmm", p.stderr)
            else:  # a dynamic cvmm runs no cvmm-full
                self.assertEqual(p.returncode, 3, p.stderr)


if __name__ == "__main__":
    unittest.main()
