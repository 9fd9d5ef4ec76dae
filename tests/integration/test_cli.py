"""The CLI and the daemon's front door: exit codes scripts rely on, clear
errors, config checking."""
import os
import subprocess
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


if __name__ == "__main__":
    unittest.main()
