"""GET /metrics with the real tools: the text passes `promtool check
metrics`, and a real Prometheus (Debian's) scraping cvmmd's TCP listener on
loopback with the bearer token sees the VMs, their resources and CPU time,
lifecycle durations and its own scrapes as API requests, through its own
query API. The token is needed unless cvm.metrics_public is set. A libvirt
VM's CPU time (its QEMU is libvirtd's child) is libvirt's count, as virsh
shows it."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from harness import Daemon, DaemonTest, shared_libvirtd, wait_for

TOKEN = "metrics-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpDaemon(Daemon):
    """A Daemon listening on 127.0.0.1:PORT instead of its unix socket."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.port = free_port()
        with open(self.conf) as f:
            text = f.read()
        with open(self.conf, "w") as f:
            f.write(text.replace('address = "unix:%s";' % self.sock,
                                 'address = "tcp:127.0.0.1:%d";' % self.port))

    def connection(self, timeout):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).strip()


class Prometheus:
    """A real Prometheus on a free loopback port, scraping target every
    second with a bearer token; its data in a temp dir."""

    def __init__(self, target_port, token):
        self.dir = tempfile.mkdtemp(prefix="cvmm-prom-")
        self.port = free_port()
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: cvmm
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials: "%s"
    static_configs:
      - targets: ["127.0.0.1:%d"]
""" % (token, target_port))
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + conf,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.proc.poll() is not None or self.ready(), 60,
                 "Prometheus to be ready on 127.0.0.1:%d" % self.port)
        if self.proc.poll() is not None:
            raise AssertionError("prometheus exited with %d:\n%s" % (self.proc.returncode,
                                                                     self.read_log()))

    def read_log(self):
        with open(os.path.join(self.dir, "prometheus.log"), errors="replace") as f:
            return f.read()[-3000:]

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def ready(self):
        try:
            return self.get("/-/ready")[0] == 200
        except OSError:
            return False

    def query(self, q):
        """Prometheus's /api/v1/query: [(labels, value as float)]."""
        st, body = self.get("/api/v1/query?query=" + urllib.parse.quote(q))
        if st != 200:
            raise AssertionError("query %s: HTTP %d %s" % (q, st, body))
        o = json.loads(body)
        if o.get("status") != "success":
            raise AssertionError("query %s: %s" % (q, body))
        return [(r["metric"], float(r["value"][1])) for r in o["data"]["result"]]

    def wait_value(self, q, want, timeout=30):
        """Waits until q returns exactly one series whose value is want
        (a number or a predicate); returns its labels."""
        last = []

        def ok():
            nonlocal last
            last = self.query(q)
            if len(last) != 1:
                return False
            v = last[0][1]
            return (last[0][0] or True) if (want(v) if callable(want) else v == want) else False
        try:
            return wait_for(ok, timeout, "Prometheus: %s" % q, interval=0.5)
        except AssertionError:
            raise AssertionError("Prometheus query %s: last result %s; targets: %s" % (
                q, last, self.get("/api/v1/targets")[1][:1500]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Metrics(DaemonTest):
    def setUp(self):
        if not shutil.which("promtool") or not shutil.which("prometheus"):
            self.fail("promtool and prometheus missing: install Debian's prometheus "
                      "(scripts/install-deps.sh)")
        super().setUp()

    def start_daemon(self, **kw):
        # DaemonTest's unix-socket daemon is not used: this one listens on TCP.
        self.d.cleanup()
        self.d = TcpDaemon(**kw)
        try:
            self.d.start()
        except BaseException:
            self.d.cleanup()
            raise

    def test_prometheus_scrapes_cvmmd(self):
        self.start_daemon(auth_tokens=[TOKEN])
        d = self.d
        d.create("m1", vcpu=2, memory_mb=192)
        d.create("m2", start=False)
        d.wait_state("m1", "running")

        st, text = d.api("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(d.last_ctype.startswith("text/plain; version=0.0.4"), d.last_ctype)
        rc, out = promtool_check(text)
        self.assertEqual(rc, 0, "promtool check metrics: %s\n%s" % (out, text[:3000]))
        self.assertIn('cvmm_vms{state="running"} 1\n', text)
        self.assertIn('cvmm_vms{state="defined"} 1\n', text)
        # Without the token: refused (cvm.metrics_public is not set).
        self.assertEqual(d.api("GET", "/metrics", token="")[0], 401)
        self.assertEqual(d.api("GET", "/metrics", token="wrong")[0], 401)

        prom = Prometheus(d.port, TOKEN)
        try:
            prom.wait_value('up{job="cvmm"}', 1)
            prom.wait_value('cvmm_vms{state="running"}', 1)
            prom.wait_value('cvmm_vms{state="defined"}', 1)
            prom.wait_value('cvmm_vm_vcpus{vm="m1"}', 2)
            prom.wait_value('cvmm_vm_memory_bytes{vm="m1"}', 192 * 1024 * 1024)
            prom.wait_value('cvmm_vm_cpu_seconds_total{vm="m1"}', lambda v: v > 0)
            prom.wait_value('cvmm_vm_info{vm="m2",state="defined",backend="qemu"}', 1)
            prom.wait_value('cvmm_lifecycle_duration_seconds_count{op="start"}', 1)
            prom.wait_value('cvmm_lifecycle_duration_seconds_count{op="define"}', 2)
            prom.wait_value('cvmm_plugin_step_duration_seconds_count{plugin="backend-qemu",'
                            'step="launch"}', 1)
            prom.wait_value('cvmm_plugin_errors_total{plugin="net-user"}', 0)
            # Its own scrapes, as API requests by route template and code.
            prom.wait_value('cvmm_api_request_duration_seconds_count{route="/metrics",'
                            'code="200",method="GET"}', lambda v: v >= 2)
            prom.wait_value('cvmm_api_request_duration_seconds_count{route="/v1/vms",'
                            'code="201"}', 2)
            # A histogram Prometheus can compute with.
            prom.wait_value('histogram_quantile(0.5, sum by (le) (rate('
                            'cvmm_api_request_duration_seconds_bucket{route="/metrics"}[10s])))',
                            lambda v: 0 < v < 1)

            # A state change reaches Prometheus at its next scrape.
            self.assertEqual(d.api("POST", "/v1/vms/m1/stop", {"force": True})[0], 202)
            d.wait_state("m1", "stopped")
            prom.wait_value('cvmm_vms{state="running"}', 0)
            prom.wait_value('cvmm_vms{state="stopped"}', 1)
            prom.wait_value('cvmm_lifecycle_duration_seconds_count{op="stop"}', 1)
            self.assertEqual(prom.query('cvmm_vm_cpu_seconds_total{vm="m1"}'), [],
                             "a stopped VM has no CPU time series")
        finally:
            prom.stop()
        for n in ("m1", "m2"):
            self.assertEqual(d.api("DELETE", "/v1/vms/" + n)[0], 200)
        rc, out = promtool_check(d.api("GET", "/metrics")[1])
        self.assertEqual(rc, 0, out)

    def test_libvirt_vm_cpu_seconds(self):
        lv = shared_libvirtd()
        self.start_daemon(auth_tokens=[TOKEN], backend="libvirt", libvirt_uri=lv.uri)
        d = self.d
        vm_id = d.create("l1")["id"]
        d.wait_state("l1", "running")
        series = 'cvmm_vm_cpu_seconds_total{vm="l1",id="%s"} ' % vm_id

        def scrape():
            st, text = d.api("GET", "/metrics")
            self.assertEqual(st, 200, text)
            values = [float(l[len(series):]) for l in text.splitlines() if l.startswith(series)]
            return (values[0] if values else None), text

        first, text = scrape()
        self.assertIsNotNone(first, "no CPU time for the libvirt VM:\n" + text[-3000:])
        rc, out = promtool_check(text)
        self.assertEqual(rc, 0, out)
        # libvirt's own count, read after the scrape, is at least as much
        # (the text rounds to hundredths).
        stats = lv.virsh("domstats", "--cpu-total", "cvmm-l1").stdout
        ns = [int(l.split("=")[1]) for l in stats.split() if l.startswith("cpu.time=")]
        self.assertEqual(len(ns), 1, stats)
        self.assertTrue(0 < first <= ns[0] / 1e9 + 0.01, (first, stats))
        # A guest under TCG keeps using CPU: the counter grows.
        wait_for(lambda: (scrape()[0] or 0) > first, 30, "the CPU time of l1 to grow")

        self.assertEqual(d.api("POST", "/v1/vms/l1/stop", {"force": True})[0], 202)
        d.wait_state("l1", "stopped")
        self.assertIsNone(scrape()[0], "a stopped VM has no CPU time series")
        self.assertEqual(d.api("DELETE", "/v1/vms/l1")[0], 200)

    def test_metrics_public(self):
        self.start_daemon(auth_tokens=[TOKEN], extra="", plugin_sections="")
        self.d.stop()
        with open(self.d.conf) as f:
            text = f.read()
        with open(self.d.conf, "w") as f:
            f.write(text.replace("cvm = {", "cvm = {\n  metrics_public = true;", 1))
        self.d.start()
        st, text = self.d.api("GET", "/metrics", token="")
        self.assertEqual(st, 200)
        self.assertEqual(promtool_check(text)[0], 0)
        # Only /metrics: the rest of the API still wants the token.
        self.assertEqual(self.d.api("GET", "/v1/vms", token="")[0], 401)
        self.assertEqual(self.d.api("GET", "/v1/events", token="")[0], 401)


if __name__ == "__main__":
    unittest.main()
