"""The web console (web/, core/web.c) in a real headless Chromium (Debian's
`chromium`), driven through the DevTools protocol over --remote-debugging-pipe
(no Python WebSocket library needed), against a real cvmmd on a loopback TCP
listener with a token and a real tiny guest under QEMU:

  log in (a wrong token refused by the form, the right one kept in
  sessionStorage), create a VM through the dialog, watch its boot line arrive
  in the console pane (a WebSocket on the console route), type a command into
  the pane and see the guest's answer, stop it, remove it; ?token= on the
  first load logs in and leaves the address bar; the page breaks no CSP rule
  and throws nothing.

Screenshots of every step go to BUILD/artifacts/web/NN-step.png. Without
Chromium the suite fails (scripts/install-deps.sh installs it)."""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from harness import BUILD, READY, BOOT_TIMEOUT, DaemonTest, wait_for
from test_tls import TOKEN, TcpDaemon, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.path.join(BUILD, "artifacts", "web")


class CDP:
    """A DevTools protocol session with one page of a headless Chromium,
    over the NUL-delimited JSON pipe (fds 3 and 4 of the browser)."""

    def __init__(self, width=1400, height=1300):
        self.profile = tempfile.mkdtemp(prefix="cvmm-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # Moved out of the way first: dup2 onto 3 and 4 must not clobber.
        hi_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 100)
        hi_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 100)

        def child():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        args = [CHROMIUM, "--headless=new", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                "--disable-dev-shm-usage", "--user-data-dir=" + self.profile,
                "--window-size=%d,%d" % (width, height), "--remote-debugging-pipe",
                "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses its sandbox as root
        self.log = open(os.path.join(self.profile, "chromium.log"), "w")
        self.proc = subprocess.Popen(args, preexec_fn=child, close_fds=False,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        for fd in (to_browser_r, from_browser_w, hi_r, hi_w):
            os.close(fd)
        self.next_id = 0
        self.replies = {}
        self.events = []
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.session = None
        targets = self.call("Target.getTargets")["targetInfos"]
        page = [t for t in targets if t["type"] == "page"][0]
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(domain + ".enable")

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self.from_browser, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self.cv:
                    self.replies[None] = "closed"
                    self.cv.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                m = json.loads(msg)
                with self.cv:
                    if "id" in m:
                        self.replies[m["id"]] = m
                    else:
                        self.events.append(m)
                    self.cv.notify_all()

    def send(self, method, **params):
        """Sends a command; reply(id) waits for its answer."""
        self.next_id += 1
        mid = self.next_id
        m = {"id": mid, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            m["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(m).encode() + b"\0")
        return mid

    def call(self, method, timeout=30, **params):
        return self.reply(self.send(method, **params), method, timeout)

    def reply(self, mid, method="", timeout=30):
        end = time.monotonic() + timeout
        with self.cv:
            while mid not in self.replies:
                if None in self.replies:
                    raise AssertionError("Chromium went away during %s" % method)
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("no answer from Chromium to %s" % method)
                self.cv.wait(left)
            r = self.replies.pop(mid)
        if "error" in r:
            raise AssertionError("%s: %s" % (method, r["error"]))
        return r.get("result", {})

    def js(self, expr, timeout=30):
        r = self.call("Runtime.evaluate", timeout=timeout, expression=expr, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError("%s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait_js(self, expr, timeout, what):
        last = [None]

        def check():
            last[0] = self.js(expr)
            return last[0]
        return wait_for(check, timeout, what)

    def take_events(self, method):
        with self.cv:
            hit = [e for e in self.events if e.get("method") == method]
        return hit

    def navigate(self, url):
        with self.cv:
            self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.take_events("Page.loadEventFired"), 30, "the page to load " + url)

    def rect(self, selector):
        r = self.js("(() => { const e = document.querySelector(%s); if (!e) return null;"
                    " e.scrollIntoView({block: 'center'}); const b = e.getBoundingClientRect();"
                    " return [b.x + b.width / 2, b.y + b.height / 2]; })()" % json.dumps(selector))
        if not r:
            raise AssertionError("no element " + selector)
        return r

    def click(self, selector, opens_dialog=False):
        """A real mouse click at the element's centre. One that opens a
        JavaScript dialog (confirm) is answered only once the dialog is:
        accept_dialog() does both."""
        x, y = self.rect(selector)
        self.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left",
                  clickCount=1)
        mid = self.send("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y,
                        button="left", clickCount=1)
        if opens_dialog:
            return mid
        self.reply(mid, "Input.dispatchMouseEvent")

    def accept_dialog(self, pending):
        wait_for(lambda: self.take_events("Page.javascriptDialogOpening"), 10,
                 "the page's confirmation dialog")
        self.call("Page.handleJavaScriptDialog", accept=True)
        self.reply(pending, "Input.dispatchMouseEvent")

    def fill(self, selector, text):
        """Focuses a form field, empties it and types text (real input events)."""
        self.click(selector)
        self.js("document.querySelector(%s).select && document.querySelector(%s).select()"
                % (json.dumps(selector), json.dumps(selector)))
        self.call("Input.dispatchKeyEvent", type="keyDown", key="Backspace", code="Backspace",
                  windowsVirtualKeyCode=8)
        self.call("Input.dispatchKeyEvent", type="keyUp", key="Backspace", code="Backspace",
                  windowsVirtualKeyCode=8)
        if text:
            self.call("Input.insertText", text=text)

    def keys(self, text):
        """Key presses, one per character, to the focused element."""
        for ch in text:
            if ch == "\n":
                down = dict(key="Enter", code="Enter", windowsVirtualKeyCode=13, text="\r")
            else:
                down = dict(key=ch, text=ch)
            self.call("Input.dispatchKeyEvent", type="keyDown", **down)
            self.call("Input.dispatchKeyEvent", type="keyUp",
                      **{k: v for k, v in down.items() if k != "text"})

    def screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path = os.path.join(ARTIFACTS, name + ".png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def problems(self):
        """What the page did wrong: exceptions, CSP violations, JS errors
        logged (a failed fetch of a refused token is expected, not here)."""
        out = [json.dumps(e["params"])[:400] for e in self.take_events("Runtime.exceptionThrown")]
        for e in self.take_events("Log.entryAdded"):
            entry = e["params"]["entry"]
            if entry["level"] == "error" and entry.get("source") != "network":
                out.append("%s: %s" % (entry.get("source"), entry.get("text", "")[:300]))
        return out

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.to_browser, self.from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def text_of(selector):
    return "((document.querySelector(%s) || {}).textContent || '')" % json.dumps(selector)


def visible(selector):
    return ("(() => { const e = document.querySelector(%s); return !!e && e.offsetParent !== null;"
            " })()" % json.dumps(selector))


def mapped_port():
    """A free TCP port inside the daemon's port_mapping range (harness)."""
    import random
    import socket
    for _ in range(100):
        port = random.randrange(20000, 40000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port in 20000-40000")


def row(name):
    return "#vms tbody tr[data-name=%s]" % json.dumps(name)


class WebConsole(DaemonTest):
    def setUp(self):
        if not CHROMIUM:
            self.fail("no chromium: the web console is tested in a real browser "
                      "(scripts/install-deps.sh installs Debian's chromium)")
        if os.geteuid() != 0:
            self.fail("needs root (QEMU guests)")
        from harness import IMAGES
        if not os.path.exists(os.path.join(IMAGES, "tiny", "metadata.json")):
            self.fail("image 'tiny' missing under %s: run scripts/build-test-guest.sh" % IMAGES)
        port = free_port()
        self.url = "http://127.0.0.1:%d" % port
        # Plain HTTP is allowed on loopback only (README "Secure listeners").
        self.d = TcpDaemon("tcp:127.0.0.1:%d" % port)
        try:
            self.d.start_tcp(self.url)
        except BaseException:
            self.d.cleanup()
            raise
        self.b = CDP()
        self.addCleanup(self.b.close)
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        self.shots = 0

    def tearDown(self):
        # A failure midway leaves the VM running: killed, so that the
        # leak check reports the failure, not a consequence of it.
        try:
            self.api("POST", "/v1/vms/web1/kill")
            wait_for(lambda: (self.api("GET", "/v1/vms/web1") or {}).get("state") != "running",
                     30, "web1 to end")
        except (AssertionError, AttributeError, subprocess.SubprocessError):
            pass
        super().tearDown()

    def shot(self, name):
        self.shots += 1
        return self.b.screenshot("%02d-%s" % (self.shots, name))

    def api(self, method, path):
        p = subprocess.run(["curl", "-sS", "-X", method, "-H", "Authorization: Bearer " + TOKEN,
                            self.url + path], capture_output=True, text=True, timeout=30)
        try:
            return json.loads(p.stdout)
        except ValueError:
            return p.stdout

    def test_console_in_a_browser(self):
        b = self.b
        t0 = time.monotonic()
        # -- the login form: a wrong token is refused with the API's words --
        b.navigate(self.url + "/")
        b.wait_js(visible("#login"), 10, "the login form")
        self.assertFalse(b.js(visible("#app")))
        self.shot("login")
        b.fill("#token", "not-the-token")
        b.click("#login-submit")
        b.wait_js(text_of("#login-error"), 10, "the login error")
        self.assertIn("401 unauthorized: missing or wrong bearer token", b.js(text_of("#login-error")))
        self.assertIsNone(b.js("sessionStorage.getItem('cvmm.token')"))
        self.shot("login-refused")

        # -- the right token: the app, kept for the tab only --
        b.fill("#token", TOKEN)
        b.click("#login-submit")
        b.wait_js(visible("#app"), 10, "the app after login")
        self.assertEqual(b.js("sessionStorage.getItem('cvmm.token')"), TOKEN)
        b.wait_js("document.querySelector('#live').textContent === 'live'", 10,
                  "the event stream to connect")
        b.wait_js(text_of("#plugins") + ".includes('backend-qemu')", 10, "the plugin panel")
        self.assertIn("of 16 allocated", b.js(text_of("#host")))
        self.shot("logged-in")

        # -- create a VM of image tiny through the dialog --
        b.click("#create-btn")
        b.wait_js("document.querySelector('#create').open && "
                  "[...document.querySelectorAll('#c-image option')].some(o => o.value === 'tiny')",
                  10, "the create dialog with the image list")
        b.fill("#c-name", "web1")
        b.js("document.querySelector('#c-image').value = 'tiny'")
        b.fill("#c-vcpu", "1")
        b.fill("#c-mem", "256")
        b.fill("#c-ports", "tcp:%d:8080" % mapped_port())
        self.shot("create-dialog")
        b.click("#c-submit")
        b.wait_js("!document.querySelector('#create').open || " + text_of("#c-error"), 10,
                  "the dialog to close")
        self.assertEqual(b.js(text_of("#c-error")), "")
        b.wait_js("!!document.querySelector(%s)" % json.dumps(row("web1")), 10, "web1's row")

        # -- its boot line in the console pane (live, over the WebSocket) --
        b.wait_js("document.querySelector(%s).dataset.state === 'running'"
                  % json.dumps(row("web1")), 60, "web1 running in the table")
        b.wait_js(text_of("#term-status") + ".startsWith('attached')", 30,
                  "the console pane to attach")
        b.wait_js(text_of("#term") + ".includes(%s)" % json.dumps(READY), BOOT_TIMEOUT,
                  "the boot line in the console pane")
        cells = b.js("[...document.querySelector(%s).cells].map(c => c.textContent)"
                     % json.dumps(row("web1")))
        self.assertEqual(cells[:5], ["web1", "running", "1", "256 MiB", "qemu"], cells)
        self.assertIn("user 10.0.2.15/24", cells[5])
        self.assertRegex(cells[6], r"^tcp:\d+→8080$")
        self.assertRegex(cells[9], r"^\d+(s|m \d+s)$")  # uptime
        b.wait_js(text_of("#events") + ".includes('web1')", 10, "web1's events in the panel")
        self.shot("booted")

        # -- type into the pane: the guest's shell answers --
        b.click("#term")
        b.keys("\necho web-ok-$((6*7))\n")
        b.wait_js(text_of("#term") + ".includes('web-ok-42')", 30,
                  "the guest's answer in the console pane")
        # The console log (written apart from the session) has it too.
        wait_for(lambda: "web-ok-42" in self.api("GET", "/v1/vms/web1/logs"), 15,
                 "the answer in the console log")
        self.shot("typed")

        # -- stop it with its button --
        b.click(row("web1") + " button[data-action=stop]")
        b.wait_js("document.querySelector(%s).dataset.state === 'stopped'"
                  % json.dumps(row("web1")), 60, "web1 stopped in the table")
        b.wait_js(text_of("#term") + ".includes('[console closed]')", 10,
                  "the console pane to see the session end")
        self.assertEqual(self.api("GET", "/v1/vms/web1")["state"], "stopped")
        self.shot("stopped")

        # -- remove it (the confirmation dialog accepted) --
        b.accept_dialog(b.click(row("web1") + " button[data-action=remove]", opens_dialog=True))
        b.wait_js("!document.querySelector(%s)" % json.dumps(row("web1")), 30,
                  "web1's row to go")
        self.assertEqual(self.api("GET", "/v1/vms/web1")["error"]["code"], "not_found")
        self.shot("removed")
        self.assertEqual(b.problems(), [])

        # -- ?token= on a first load: logged in, and gone from the address --
        b.js("sessionStorage.clear()")
        b.navigate(self.url + "/?token=" + TOKEN)
        b.wait_js(visible("#app"), 10, "the app from ?token=")
        self.assertEqual(b.js("location.href"), self.url + "/")
        self.assertEqual(b.js("sessionStorage.getItem('cvmm.token')"), TOKEN)
        b.wait_js("document.querySelector('#live').textContent === 'live'", 10,
                  "the event stream to connect")
        self.shot("token-in-url")
        b.js("sessionStorage.clear()")
        b.navigate(self.url + "/?token=wrong")
        b.wait_js(text_of("#login-error"), 10, "the login error for a wrong ?token=")
        self.assertIn("missing or wrong bearer token", b.js(text_of("#login-error")))
        self.assertEqual(b.js("location.href"), self.url + "/")
        self.shot("token-in-url-refused")
        self.assertEqual(b.problems(), [])
        print("web console test: %.1f s" % (time.monotonic() - t0))


class WebServing(DaemonTest):
    """What the daemon serves for the page, and what it refuses."""

    def test_assets_and_auth(self):
        d = self.d
        import http.client
        from harness import UnixHTTPConnection

        def get(path, headers=None):
            c = UnixHTTPConnection(d.sock)
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            c.close()
            return r, body
        r, body = get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Type"), "text/html; charset=utf-8")
        csp = r.getheader("Content-Security-Policy")
        self.assertIn("script-src 'self'", csp)
        self.assertIn("default-src 'none'", csp)
        self.assertEqual(r.getheader("Cache-Control"), "no-cache")
        self.assertIn(b'<script src="/ui/app.js"', body)
        self.assertNotIn(b"<script>", body)  # nothing inline: the CSP forbids it
        r, body = get("/ui/app.js")
        self.assertEqual(r.getheader("Content-Type"), "text/javascript; charset=utf-8")
        r, _ = get("/ui/app.css")
        self.assertEqual(r.getheader("Content-Type"), "text/css; charset=utf-8")
        # Anything else still needs the token (this daemon has auth off:
        # a 404 in the API's words, not a page).
        r, body = get("/ui/nothing.js")
        self.assertEqual(r.status, 404)
        self.assertIn(b"no such endpoint", body)


class WebAuth(unittest.TestCase):
    """?access_token= opens exactly the event stream and the console."""

    def setUp(self):
        port = free_port()
        self.url = "http://127.0.0.1:%d" % port
        self.d = TcpDaemon("tcp:127.0.0.1:%d" % port)
        self.addCleanup(self.d.cleanup)
        self.d.start_tcp(self.url)

    def curl(self, *args):
        return subprocess.run(["curl", "-sS", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}"]
                              + list(args), capture_output=True, text=True).stdout

    def test_query_token_routes(self):
        u = self.url
        self.assertEqual(self.curl(u + "/"), "200")
        self.assertEqual(self.curl(u + "/v1/host"), "401")
        self.assertEqual(self.curl(u + "/v1/host?access_token=" + TOKEN), "401")
        self.assertEqual(self.curl(u + "/v1/vms?access_token=" + TOKEN), "401")
        self.assertEqual(self.curl("-X", "POST", u + "/v1/vms?access_token=" + TOKEN), "401")
        self.assertEqual(self.curl(u + "/v1/events?access_token=wrong"), "401")
        # A NUL after the token does not cut it to the token.
        self.assertEqual(self.curl(u + "/v1/events?access_token=" + TOKEN + "%00junk"), "401")
        # The stream answers 200 and stays open (curl's -m ends it).
        self.assertEqual(self.curl(u + "/v1/events?access_token=" + TOKEN), "200")
        self.d.cvmm("create", "q1", "--image", "tiny", "--no-start")
        # Past auth: the console's own refusals (no upgrade, not running).
        self.assertEqual(self.curl(u + "/v1/vms/q1/console?access_token=" + TOKEN), "400")
        self.assertEqual(self.curl(u + "/v1/vms/q1/console?access_token=wrong"), "401")
        self.assertEqual(self.curl(
            "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
            "-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            u + "/v1/vms/q1/console?access_token=" + TOKEN), "409")
        self.assertEqual(self.curl(
            "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
            "-H", "Sec-WebSocket-Version: 8", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            u + "/v1/vms/q1/console?access_token=" + TOKEN), "400")


if __name__ == "__main__":
    unittest.main()
