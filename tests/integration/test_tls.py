"""Secure listeners: TLS on the TCP listener (a certificate made here with
openssl, checked by curl and by the cvmm CLI), plain HTTP refused off
loopback, and the unix socket's group and mode (cvm.unix_sock_group,
cvm.unix_sock_mode). No guest boots."""
import grp
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from harness import CVMM, CVMMD, Daemon, wait_for

TOKEN = "tls-test-token-0123456789"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), p.stderr))


def make_pki(d):
    """A CA, a server certificate it signed (for 127.0.0.1 and localhost),
    and a second CA that signed nothing of ours."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=cvmm test CA", cwd=d)
    openssl("req", "-x509", *ec, "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "2",
            "-subj", "/CN=another CA", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
            cwd=d)
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext", cwd=d)
    # A key that belongs to no certificate of ours.
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-out", "stray.key", cwd=d)


class TcpDaemon(Daemon):
    """A Daemon whose address is tcp:, answering over TLS when tls is set."""

    def __init__(self, address, cvm_extra="", **kw):
        super().__init__(auth_tokens=[TOKEN], **kw)
        self.address = address
        self.url = None
        self.cafile = None
        with open(self.conf) as f:
            text = f.read()
        text = text.replace('address = "unix:%s";' % self.sock, 'address = "%s";' % address)
        text = text.replace("cvm = {", "cvm = {\n  %s" % cvm_extra, 1)
        with open(self.conf, "w") as f:
            f.write(text)

    def check(self):
        return subprocess.run([CVMMD, "--check-config", self.conf], capture_output=True,
                              text=True)

    def start_tcp(self, url, cafile=None, timeout=30):
        self.url, self.cafile = url, cafile
        self.logf = open(self.log, "a")
        from harness import daemon_env
        self.proc = subprocess.Popen([CVMMD, "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env=daemon_env(self.plugins))
        wait_for(lambda: self.proc.poll() is not None or
                 self.cvmm("host", check=False).returncode == 0, timeout,
                 "cvmmd to answer at " + url)
        if self.proc.poll() is not None:
            raise AssertionError("cvmmd exited with %d:\n%s" % (self.proc.returncode,
                                                                self.read_log()[-3000:]))

    def cvmm(self, *args, check=True, env=None, cacert=True):
        e = dict(os.environ if env is None else env)
        e.pop("CVMM_SOCKET", None)
        e["CVMM_TOKEN"] = TOKEN
        pre = ["--url", self.url]
        if cacert and self.cafile:
            pre += ["--cacert", self.cafile]
        p = subprocess.run([CVMM] + pre + list(args), env=e, capture_output=True, text=True,
                           timeout=60)
        if check and p.returncode != 0:
            raise AssertionError("cvmm %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                           p.stderr))
        return p


class TlsTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root")
        self.pki = tempfile.mkdtemp(prefix="cvmm-pki-")
        self.addCleanup(shutil.rmtree, self.pki, ignore_errors=True)
        make_pki(self.pki)
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.cleanup()

    def daemon(self, address, cvm_extra=""):
        d = TcpDaemon(address, cvm_extra)
        self.daemons.append(d)
        return d

    def tls_keys(self, cert="server.pem", key="server.key"):
        return 'tls_cert = "%s"; tls_key = "%s";' % (os.path.join(self.pki, cert),
                                                     os.path.join(self.pki, key))

    def test_tls_listener_with_curl_and_cli(self):
        port = free_port()
        d = self.daemon("tcp:127.0.0.1:%d" % port, self.tls_keys())
        ca = os.path.join(self.pki, "ca.pem")
        d.start_tcp("https://127.0.0.1:%d" % port, cafile=ca)
        self.assertIn("(TLS)", d.read_log())

        # curl, verifying against our CA: the API answers.
        p = subprocess.run(["curl", "-sS", "--fail-with-body", "--cacert", ca, "-H",
                            "Authorization: Bearer " + TOKEN,
                            "https://127.0.0.1:%d/v1/host" % port],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["abi"][:2], "1.")
        # by name too (the certificate holds DNS:localhost)
        p = subprocess.run(["curl", "-sS", "--cacert", ca, "-H", "Authorization: Bearer " + TOKEN,
                            "https://localhost:%d/v1/vms" % port],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('"vms"', p.stdout)
        # curl trusting only another CA refuses the server (exit 60).
        p = subprocess.run(["curl", "-sS", "--cacert", os.path.join(self.pki, "other-ca.pem"),
                            "https://127.0.0.1:%d/v1/host" % port],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 60, p.stderr)

        # A plain-HTTP client to the TLS port gets no HTTP answer.
        p = subprocess.run(["curl", "-sS", "-m", "10", "http://127.0.0.1:%d/v1/host" % port],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stdout, "")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /v1/host HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % TOKEN.encode())
        got = b""
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    break
                got += b
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        self.assertFalse(got.startswith(b"HTTP/"), got[:80])
        self.assertNotIn(b'"abi"', got)

        # The CLI over https: --cacert, CVMM_CACERT, and refusals.
        d.cvmm("create", "over-tls", "--image", "tiny", "--no-start")
        out = d.cvmm("list").stdout
        self.assertRegex(out, r"over-tls\s+\S+\s+defined")
        env = dict(os.environ, CVMM_CACERT=ca)
        info = d.cvmm("--json", "info", "over-tls", env=env, cacert=False).stdout
        self.assertEqual(json.loads(info)["name"], "over-tls")
        # not trusted: the system's CAs (no --cacert), or another CA
        p = d.cvmm("list", check=False, env={k: v for k, v in os.environ.items()
                                             if k != "CVMM_CACERT"}, cacert=False)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("certificate is not trusted", p.stderr)
        p = d.cvmm("list", check=False, cacert=False,
                   env=dict(os.environ, CVMM_CACERT=os.path.join(self.pki, "other-ca.pem")))
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("certificate is not trusted", p.stderr)
        # a CA file that is not one
        p = d.cvmm("list", check=False, cacert=False,
                   env=dict(os.environ, CVMM_CACERT=os.path.join(self.pki, "ext")))
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("CA certificate file", p.stderr)
        # plain http to the TLS port
        plain = subprocess.run([CVMM, "--url", "http://127.0.0.1:%d" % port, "--token", TOKEN,
                                "--timeout", "10", "list"], capture_output=True, text=True,
                               timeout=60)
        self.assertEqual(plain.returncode, 3, plain.stderr)
        self.assertIn("https", plain.stderr)
        # --cacert without https is a usage error
        p = subprocess.run([CVMM, "--url", "http://127.0.0.1:%d" % port, "--cacert", ca, "list"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--cacert", p.stderr)
        d.cvmm("remove", "over-tls")

    def test_plain_tcp_only_on_loopback(self):
        port = free_port()
        for addr in ("tcp:0.0.0.0:%d" % port, "tcp:[::]:%d" % port, "tcp:10.1.2.3:%d" % port):
            d = self.daemon(addr)
            p = d.check()
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertRegex(p.stderr, r"cvmm\.conf:\d+: address: plain HTTP is accepted only "
                                       r"on a loopback address")
            self.assertIn("cvm.tls_cert", p.stderr)
            # and the daemon itself will not start with it
            r = subprocess.run([CVMMD, "-c", d.conf], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("loopback", r.stderr)
        for addr in ("tcp:127.0.0.1:%d" % port, "tcp:127.3.4.5:%d" % port,
                     "tcp:[::1]:%d" % port):
            p = self.daemon(addr).check()
            self.assertEqual(p.returncode, 0, p.stderr)
        # With TLS any address may be used.
        p = self.daemon("tcp:0.0.0.0:%d" % port, self.tls_keys()).check()
        self.assertEqual(p.returncode, 0, p.stderr)

        # Plain TCP on loopback works with the CLI.
        d = self.daemon("tcp:127.0.0.1:%d" % port)
        d.start_tcp("http://127.0.0.1:%d" % port)
        self.assertIn('"vms"', d.cvmm("--json", "list").stdout)

    def test_tls_settings_checked(self):
        port = free_port()
        addr = "tcp:0.0.0.0:%d" % port
        cases = [
            (self.tls_keys(cert="missing.pem"), r"cvm\.tls_cert: cannot read .*missing\.pem: "
                                                r"No such file"),
            (self.tls_keys(key="missing.key"), r"cvm\.tls_key: cannot read .*missing\.key"),
            (self.tls_keys(cert="ext"), r"cvm\.tls_cert: .*ext is not a PEM certificate"),
            (self.tls_keys(key="stray.key"), r"cvm\.tls_key: .*stray\.key is not the key of the "
                                             r"certificate"),
            (self.tls_keys(key="server.pem"), r"cvm\.tls_key: .*server\.pem is not a usable PEM "
                                              r"private key"),
            ('tls_cert = "%s/server.pem";' % self.pki, r"cvm\.tls_key: missing"),
        ]
        for extra, want in cases:
            p = self.daemon(addr, extra).check()
            self.assertEqual(p.returncode, 2, extra)
            self.assertRegex(p.stderr, r"cvmm\.conf:\d+: " + want)
        # TLS keys on a unix socket, socket keys on TCP
        d = TcpDaemon("unix:/tmp/x.sock", self.tls_keys())
        self.daemons.append(d)
        p = d.check()
        self.assertEqual(p.returncode, 2)
        self.assertRegex(p.stderr, r"cvm\.tls_cert: TLS is for a tcp: address")
        p = self.daemon("tcp:127.0.0.1:%d" % port, 'unix_sock_group = "root";').check()
        self.assertEqual(p.returncode, 2)
        self.assertRegex(p.stderr, r"cvm\.unix_sock_group: applies to a unix socket")


class UnixSocketAccess(unittest.TestCase):
    """cvm.unix_sock_group and cvm.unix_sock_mode on the real socket, and what
    they let a non-root member of the group do."""

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root")
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.cleanup()

    def start(self, cvm_extra):
        d = Daemon(extra="")
        self.daemons.append(d)
        with open(d.conf) as f:
            text = f.read()
        with open(d.conf, "w") as f:
            f.write(text.replace("cvm = {", "cvm = {\n  %s" % cvm_extra, 1))
        os.chmod(d.dir, 0o755)  # so that "nobody" can reach the socket
        d.start()
        return d

    def as_nobody(self, d, group):
        return subprocess.run(["setpriv", "--reuid=nobody", "--regid=%s" % group,
                               "--clear-groups", CVMM, "--socket", d.sock, "list"],
                              capture_output=True, text=True, timeout=60)

    def test_group_and_mode(self):
        group = "daemon"
        gid = grp.getgrnam(group).gr_gid
        d = self.start('unix_sock_group = "%s"; unix_sock_mode = "0660";' % group)
        st = os.stat(d.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(st.st_gid, gid)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        p = self.as_nobody(d, group)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("NAME", p.stdout)
        # not in the group: refused by the file's permissions
        p = self.as_nobody(d, "nogroup")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("Permission denied", p.stderr)

        # A numeric gid and a mode for the owner only.
        d2 = self.start('unix_sock_group = "%d"; unix_sock_mode = "0600";' % gid)
        st = os.stat(d2.sock)
        self.assertEqual(st.st_gid, gid)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        p = self.as_nobody(d2, group)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("Permission denied", p.stderr)

        # Defaults: root's group, 0660.
        d3 = self.start("")
        st = os.stat(d3.sock)
        self.assertEqual((st.st_gid, stat.S_IMODE(st.st_mode)), (0, 0o660))

    def test_bad_group_and_mode_refused(self):
        for extra, want in (('unix_sock_group = "no-such-group-cvmm";',
                             r'cvm\.unix_sock_group: no such group "no-such-group-cvmm"'),
                            ('unix_sock_mode = "0999";', r"cvm\.unix_sock_mode: must be an octal"),
                            ('unix_sock_mode = 660;', r"cvm\.unix_sock_mode: must be a string")):
            d = Daemon()
            self.daemons.append(d)
            with open(d.conf) as f:
                text = f.read()
            with open(d.conf, "w") as f:
                f.write(text.replace("cvm = {", "cvm = {\n  %s" % extra, 1))
            p = subprocess.run([CVMMD, "--check-config", d.conf], capture_output=True, text=True)
            self.assertEqual(p.returncode, 2, extra)
            self.assertRegex(p.stderr, r"cvmm\.conf:\d+: " + want)


if __name__ == "__main__":
    unittest.main()
