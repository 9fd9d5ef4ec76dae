"""The live event feed: GET /v1/events (Server-Sent Events) and `cvmm events`.
A subscriber sees a VM's life (created, starting, running, stopping,
stopped, removing, removed) in order with increasing ids; a client that
reconnects with Last-Event-ID gets exactly what it missed; filters by VM and
type hold; a client of an earlier daemon run is told it lost events; 200
subscribers that vanish leave no descriptor behind."""
import os
import socket
import subprocess
import time

from harness import CVMM, DaemonTest, fd_count, quiet_fd_count, wait_for
from sse import SSE

TOKEN = "events-token-0123456789"


def kinds(events):
    """(type, message) of each event."""
    return [(e["data"]["type"], e["data"]["message"]) for e in events]


class Events(DaemonTest):
    daemon_args = dict(auth_tokens=[TOKEN])

    def cli_events(self, *args):
        env = dict(os.environ, CVMM_SOCKET=self.d.sock, CVMM_TOKEN=TOKEN)
        return subprocess.Popen([CVMM, "events"] + list(args), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def test_lifecycle_in_order_resume_and_filters(self):
        d = self.d
        all_ = SSE(d)
        self.assertEqual(all_.status, 200)
        self.assertTrue(all_.headers["content-type"].startswith("text/event-stream"))
        self.assertIn("cvmm events from id", all_.hello.get("comment", ""))
        by_name = SSE(d, "?vm=ev1")
        lifecycle = SSE(d, "?type=created,removed")
        cli = self.cli_events("ev1", "--type", "created", "--type", "removed", "--count", "2")
        cli_json = self.cli_events("--json", "--count", "1")
        # The CLI has subscribed once the daemon counts it: wait for both
        # streams' threads (three SSE clients here plus two).
        time.sleep(1)

        other = d.create("other", start=False)  # events the VM filter must drop
        o = d.create("ev1", vcpu=1, memory_mb=128)
        by_id = SSE(d, "?vm=" + o["id"])
        d.wait_state("ev1", "running")
        d.wait_ready("ev1")
        st, _ = d.api("POST", "/v1/vms/ev1/stop", {"timeout": 30})
        self.assertEqual(st, 202)
        d.wait_state("ev1", "stopped", timeout=60)
        self.assertEqual(d.api("DELETE", "/v1/vms/ev1")[0], 200)

        is_removed = lambda e: e["data"]["type"] == "removed" and e["data"]["name"] == "ev1"
        got = all_.events_until(is_removed, what="ev1's removal")
        ids = [e["id"] for e in got]
        self.assertEqual(ids, sorted(set(ids)), "ids not strictly increasing: %s" % ids)
        mine = [k for e, k in zip(got, kinds(got)) if e["data"]["name"] == "ev1"]
        for e in got:
            self.assertEqual(e["data"]["id"], e["id"])
            self.assertIn(e["data"]["name"], ("ev1", "other"))
        # The whole life, in order (other events may sit in between).
        want = [("define", None), ("created", None), ("state", "-> starting"),
                ("state", "starting -> running"), ("state", "running -> stopping"),
                ("state", "stopping -> stopped"), ("state", "stopped -> removing"),
                ("removed", None)]
        i = 0
        for t, m in mine:
            if i < len(want) and t == want[i][0] and (want[i][1] is None or want[i][1] in m):
                i += 1
        self.assertEqual(i, len(want), "ev1's events %s do not contain, in order, %s" % (
            mine, want))
        # The other VM's events are there too, with the right VM id.
        self.assertIn(("created", "created from image 'tiny'"),
                      [k for e, k in zip(got, kinds(got)) if e["data"]["vm"] == other["id"]])

        # Filter by name, and by id (subscribed after the create: from there on).
        named = by_name.events_until(is_removed, what="ev1's removal (?vm=ev1)")
        self.assertEqual([e["id"] for e in named],
                         [e["id"] for e in got if e["data"]["name"] == "ev1"])
        by_id_got = by_id.events_until(is_removed, what="ev1's removal (?vm=ID)")
        self.assertTrue(by_id_got and all(e["data"]["vm"] == o["id"] for e in by_id_got))
        self.assertEqual([e["id"] for e in by_id_got],
                         [e["id"] for e in got
                          if e["data"]["vm"] == o["id"] and e["id"] >= by_id_got[0]["id"]])
        # Filter by type.
        life = lifecycle.events_until(is_removed, what="ev1's removal (?type=)")
        self.assertEqual([(e["data"]["name"], e["data"]["type"]) for e in life],
                         [("other", "created"), ("ev1", "created"), ("ev1", "removed")])

        # Reconnect: Last-Event-ID of the event after which the client
        # "lost" its connection gives exactly the ones after it, no more.
        k = len(got) // 2
        again = SSE(d, last_id=got[k]["id"])
        missed = again.events_until(is_removed, what="the missed events")
        self.assertEqual([e["id"] for e in missed], ids[k + 1:])
        self.assertEqual(kinds(missed), kinds(got[k + 1:]))
        self.assertEqual(again.quiet(0.5), [], "events beyond the missed ones")
        # The same with ?last_event_id= (for clients that cannot set headers).
        q = SSE(d, "?last_event_id=%d&type=removed" % got[0]["id"])
        self.assertEqual(kinds(q.events_until(is_removed, what="removed (query id)")),
                         [("removed", "removed with its disk and state")])

        # The CLI printed the two lines it was asked for, and ended.
        out, err = cli.communicate(timeout=30)
        self.assertEqual(cli.returncode, 0, err)
        lines = out.splitlines()
        self.assertEqual(len(lines), 2, out)
        self.assertRegex(lines[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4} event "
                                   r"'created' for VM 'ev1': created from image 'tiny'$")
        self.assertIn("event 'removed' for VM 'ev1'", lines[1])
        out, err = cli_json.communicate(timeout=30)
        self.assertEqual(cli_json.returncode, 0, err)
        self.assertIn('"name":"other"', out.replace(" ", ""))
        for s in (all_, by_name, by_id, lifecycle, again, q):
            s.close()
        self.assertEqual(d.api("DELETE", "/v1/vms/other")[0], 200)

    def test_refusals(self):
        d = self.d
        s = SSE(d, token="wrong-token")
        self.assertEqual(s.status, 401)
        s.close()
        for query, frag in (("?type=a%20b", "type"), ("?vm=a,", "vm")):
            s = SSE(d, query)
            self.assertEqual(s.status, 400, query)
            self.assertIn(frag, s.body["error"]["message"])
            s.close()
        s = SSE(d, last_id="12abc")
        self.assertEqual(s.status, 400)
        self.assertIn("Last-Event-ID", s.body["error"]["message"])
        s.close()
        self.assertEqual(d.api("POST", "/v1/events")[0], 405)
        bad = self.cli_events("--type", "no good")
        _, err = bad.communicate(timeout=30)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("type", err)

    def test_lost_across_a_daemon_restart(self):
        d = self.d
        s = SSE(d)
        d.create("r1", start=False)
        old = s.events_until(lambda e: e["data"]["type"] == "created", what="r1 created")
        s.close()
        d.stop()
        d.start()
        d.create("r2", start=False)
        # An id of the earlier run: the client is told it lost events, then
        # gets what this run has (r2's define and created).
        again = SSE(d, last_id=old[-1]["id"])
        got = again.events_until(lambda e: e["data"].get("type") == "created",
                                 what="r2 created after the lost event")
        self.assertEqual(got[0]["data"]["type"], "lost")
        self.assertIsNone(got[0]["id"])
        self.assertIn("not of this daemon run", got[0]["data"]["message"])
        self.assertEqual([(e["data"]["name"], e["data"]["type"]) for e in got[1:]],
                         [("r2", "define"), ("r2", "created")])
        self.assertGreater(got[1]["id"], old[-1]["id"], "ids of a new run must be larger")
        again.close()
        for n in ("r1", "r2"):
            self.assertEqual(d.api("DELETE", "/v1/vms/" + n)[0], 200)

    def test_abandoned_subscribers_are_dropped(self):
        d = self.d
        before = quiet_fd_count(d.proc.pid)  # the start's own requests closed
        socks = []
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.sock)
            s.sendall(("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                       % TOKEN).encode())
            socks.append(s)
        wait_for(lambda: fd_count(d.proc.pid) >= before + 200, 20, "200 subscribers")
        for s in socks:
            s.close()
        wait_for(lambda: fd_count(d.proc.pid) <= before + 2, 5,
                 "the subscribers' descriptors to go")
        # Nothing was held up: the API answers at once, and a new subscriber
        # gets the next event.
        t0 = time.monotonic()
        self.assertEqual(d.api("GET", "/v1/vms")[0], 200)
        self.assertLess(time.monotonic() - t0, 2)
        s = SSE(d)
        d.create("after", start=False)
        self.assertEqual(s.next_event(10)["data"]["name"], "after")
        s.close()
        self.assertEqual(d.api("DELETE", "/v1/vms/after")[0], 200)


if __name__ == "__main__":
    import unittest
    unittest.main()
