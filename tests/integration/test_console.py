"""cvmm console: the tiny guest's shell through the daemon's upgraded console
connection, on both backends (per_backend): a command typed by the writer
runs in the guest and its output reaches the writer and two read-only
readers; a second writer is refused until the first detaches (Ctrl-]); the
console log keeps everything; stopping the VM ends every session. Also the
console over TLS, and its refusals without a guest."""
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from harness import CVMM, DaemonTest, per_backend, wait_for

DETACH = b"\x1d"


class Attached:
    """One `cvmm console` process, its output collected as it comes."""

    def __init__(self, d, name, *opts, prefix=()):
        env = dict(os.environ, CVMM_SOCKET=d.sock)
        if d.token:
            env["CVMM_TOKEN"] = d.token
        self.p = subprocess.Popen([CVMM] + list(prefix) + ["console"] + list(opts) + [name],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.out = b""
        self.err = b""
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._pump, args=(self.p.stdout, "out"),
                                         daemon=True),
                        threading.Thread(target=self._pump, args=(self.p.stderr, "err"),
                                         daemon=True)]
        for t in self.threads:
            t.start()

    def _pump(self, f, attr):
        while True:
            b = os.read(f.fileno(), 4096)
            if not b:
                return
            with self.lock:
                setattr(self, attr, getattr(self, attr) + b)

    def text(self):
        with self.lock:
            return self.out.decode(errors="replace")

    def type(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def wait_for_output(self, what, timeout=60):
        return wait_for(lambda: what in self.text(), timeout,
                        "%r on the console (got %r)" % (what, self.text()[-300:]))

    def wait_attached(self, timeout=30):
        wait_for(lambda: b"Connected to the console" in self.err or self.p.poll() is not None,
                 timeout, "cvmm console to attach")
        if self.p.poll() is not None:
            raise AssertionError("cvmm console exited %d: %s" % (self.p.returncode, self.err))

    def finish(self, timeout=30):
        rc = self.p.wait(timeout=timeout)
        for t in self.threads:
            t.join(timeout=5)
        self._close()
        return rc

    def _close(self):
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for t in self.threads:
            t.join(timeout=5)
        self._close()


class ConsoleShell(DaemonTest):
    def test_shell_readers_and_one_writer(self):
        d = self.d
        d.create("con1")
        d.wait_ready("con1")
        sessions = []
        self.addCleanup(lambda: [s.kill() for s in sessions])
        r1 = Attached(d, "con1", "--readonly")
        r2 = Attached(d, "con1", "--readonly")
        w = Attached(d, "con1")
        sessions += [r1, r2, w]
        for s in (r1, r2, w):
            s.wait_attached()

        # The shell answers: the product is computed by the guest, so the
        # line can only come from a command that ran there.
        w.type(b"\necho console-ok-$((6*7))\n")
        for s in (w, r1, r2):
            s.wait_for_output("console-ok-42")
        w.type(b"uname -s; cat /proc/cmdline\n")
        w.wait_for_output("cvmm.name=con1")
        r1.wait_for_output("Linux")

        # One writer: the second is refused, with a clear error.
        second = subprocess.run([CVMM, "--socket", d.sock, "console", "con1"],
                                input=b"", capture_output=True, timeout=30)
        self.assertEqual(second.returncode, 5, second.stderr)
        self.assertIn(b"another client is typing on its console", second.stderr)
        # A reader typing changes nothing in the guest.
        r2.type(b"echo reader-typed-$((2*21))x\n")
        time.sleep(1.0)
        self.assertNotIn("reader-typed-42x", w.text())

        # Ctrl-] detaches the writer (exit 0), and its slot is free again.
        w.type(DETACH)
        self.assertEqual(w.finish(), 0, w.err)
        w2 = Attached(d, "con1")
        sessions.append(w2)
        w2.wait_attached()
        w2.type(b"echo second-writer-$((5*5))\n")
        for s in (w2, r1, r2):
            s.wait_for_output("second-writer-25")
        w2.type(b"before-detach" + DETACH)
        self.assertEqual(w2.finish(), 0, w2.err)

        # The bounded console log kept working all along.
        log = d.logs("con1")
        self.assertIn("console-ok-42", log)
        self.assertIn("second-writer-25", log)

        # Stopping the VM ends the readers' sessions.
        d.cli("kill", "con1")
        for s in (r1, r2):
            self.assertEqual(s.finish(), 0, s.err)
            self.assertIn(b"the console closed", s.err)
        # no console while it does not run
        p = subprocess.run([CVMM, "--socket", d.sock, "console", "con1"], input=b"",
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn(b"is not running", p.stderr)
        d.cli("remove", "con1")


per_backend(ConsoleShell, namespace=globals())


class ConsoleOverTls(DaemonTest):
    """The same upgrade through the TLS listener (MHD encrypts the upgraded
    stream itself)."""

    def setUp(self):
        from test_tls import TOKEN, TcpDaemon, free_port, make_pki
        if os.geteuid() != 0:
            self.fail("needs root")
        self.pki = tempfile.mkdtemp(prefix="cvmm-pki-")
        self.addCleanup(shutil.rmtree, self.pki, ignore_errors=True)
        make_pki(self.pki)
        port = free_port()
        self.d = TcpDaemon("tcp:127.0.0.1:%d" % port,
                           'tls_cert = "%s/server.pem"; tls_key = "%s/server.key";'
                           % (self.pki, self.pki))
        self.token = TOKEN
        try:
            self.d.start_tcp("https://127.0.0.1:%d" % port,
                             cafile=os.path.join(self.pki, "ca.pem"))
        except BaseException:
            self.d.cleanup()
            raise

    def test_console_over_tls(self):
        d = self.d
        d.cvmm("create", "tls1", "--image", "tiny")
        wait_for(lambda: "cvmm-tiny: ready" in d.cvmm("logs", "tls1").stdout, 120,
                 "tls1 to boot", interval=0.5)
        w = Attached(d, "tls1", prefix=("--url", d.url, "--cacert", d.cafile,
                                        "--token", self.token))
        self.addCleanup(w.kill)
        w.wait_attached()
        w.type(b"\necho over-tls-$((7*6))\n")
        w.wait_for_output("over-tls-42")
        w.type(DETACH)
        self.assertEqual(w.finish(), 0, w.err)
        d.cvmm("remove", "tls1")


class ConsoleRefusals(DaemonTest):
    def test_refusals_without_a_guest(self):
        d = self.d
        d.create("idle", start=False)
        # a plain GET (no upgrade) is a clear 400
        st, o = d.api("GET", "/v1/vms/idle/console")
        self.assertEqual(st, 400)
        self.assertIn("Upgrade: cvmm-console", o["error"]["message"])
        p = subprocess.run([CVMM, "--socket", d.sock, "console", "idle"], input=b"",
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn(b"is not running", p.stderr)
        p = subprocess.run([CVMM, "--socket", d.sock, "console", "nope"], input=b"",
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 4, p.stderr)
        d.cli("remove", "idle")


if __name__ == "__main__":
    unittest.main()
