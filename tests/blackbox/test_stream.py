"""The membership change stream (issue 5 item 7; API.md section 6, kith path):
GET /data/core/ups/stream/memberships as server-sent events, read by a real streaming client
(http.client reading the chunked body line by line): realized then exited (by a timer, with no new
event), published only once durable, scoped to the key's sandbox, filtered by segment ids,
heartbeats, Last-Event-ID replay and gaps, bad parameters."""

import http.client
import json
import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

DEFS = "/data/core/ups/segment/definitions"
STREAM = "/data/core/ups/stream/memberships"
CAMPAIGNS = ('xEvent[eventType = "advertising.impressions"\n'
             '       and _acme.campaignId in ["c-101", "c-102", "c-103", "c-104", "c-105"]\n'
             '       and timestamp occurs <= %s before now]._acme.campaignId.distinct().count() >= 3')


def now_ms():
    return int(time.time() * 1000)


class SseClient:
    """Reads a server-sent event stream on a thread; frames arrive on a queue as dicts
    {"event", "id", "data"} (data parsed as JSON when it is) or {"comment"}."""

    def __init__(self, server, key, sandbox=None, query="", headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        hdrs = {"Authorization": "Bearer " + key, "Accept": "text/event-stream"}
        if sandbox:
            hdrs["x-sandbox-name"] = sandbox
        hdrs.update(headers or {})
        self.conn.request("GET", STREAM + query, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = dict((k.lower(), v) for k, v in self.resp.getheaders())
        self.frames = queue.Queue()
        self.ended = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._run, daemon=True).start()
        else:
            self.body = self.resp.read()

    def _run(self):
        frame = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode("utf-8").rstrip("\n")
                if line == "":
                    if frame:
                        if "data" in frame:
                            try:
                                frame["data"] = json.loads(frame["data"])
                            except ValueError:
                                pass
                        self.frames.put(frame)
                    frame = {}
                elif line.startswith(":"):
                    self.frames.put({"comment": line[1:].strip()})
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data" and "data" in frame:
                        frame["data"] += "\n" + value
                    else:
                        frame[name] = value
        except Exception:  # noqa: BLE001 - the test closes the connection under the reader
            pass
        finally:
            self.ended.set()

    def next(self, event="membership", timeout=10.0):
        """The next frame of kind event (comments are skipped unless event is None)."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no %r event within %.1f s" % (event, timeout))
            try:
                f = self.frames.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                if "comment" in f:
                    return f
            elif f.get("event") == event:
                return f

    def drain(self, wait=0.5):
        """Every membership frame that arrives within wait seconds."""
        out = []
        deadline = time.time() + wait
        while time.time() < deadline:
            try:
                f = self.frames.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if f.get("event") == "membership":
                out.append(f)
        return out

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except (OSError, AttributeError):
            pass
        self.conn.close()


class StreamTest(kt.KithTestCase):
    fixture_needed = True

    def create(self, expr, api=None):
        r = (api or self.admin).post(DEFS, {
            "name": kt.uid("seg-"), "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": "pql/text", "value": expr}})
        self.assertStatus(r, 201)
        kt.wait_backfill(api or self.admin, r.json)  # existing profiles may enter: not a change of the test
        return r.json

    def stream(self, query="", **kw):
        c = SseClient(self.server, self.server.admin_key, query=query, **kw)
        self.addCleanup(c.close)
        return c

    def impressions(self, crm, campaigns, fx=None, ts=None):
        t = ts or now_ms()
        for i, c in enumerate(campaigns):
            (fx or self.fx).ingest_event({
                "_id": kt.uid("ev-"), "timestamp": kt.iso(t + i),
                "eventType": "advertising.impressions", "_acme": {"campaignId": c},
                "identityMap": kt.idmap(("CRMID", crm))})

    def test_realized_then_exited_by_timer(self):
        seg = self.create(CAMPAIGNS % "4 seconds")
        s = self.stream("?segmentId=" + seg["id"])
        self.assertEqual(s.status, 200)
        self.assertTrue(s.headers["content-type"].startswith("text/event-stream"))
        self.assertEqual(s.headers.get("cache-control"), "no-cache")
        crm = kt.uid("c-")
        self.impressions(crm, ("c-101", "c-102"))
        self.assertEqual(s.drain(0.3), [])  # two campaigns: no change yet
        self.impressions(crm, ("c-103",))
        f = s.next(timeout=5)
        d = f["data"]
        self.assertEqual(d["segmentId"], seg["id"])
        self.assertEqual(d["status"], "realized")
        self.assertEqual(d["identity"]["namespace"]["code"], "CRMID")
        self.assertEqual(d["identity"]["id"], crm)
        self.assertIn("clusterId", d)
        self.assertIn("lastQualificationTime", d)
        # the profile already says so when the event arrives (published after the commit)
        prof = self.admin.profile("CRMID", crm)
        self.assertEqual(kt.get_path(prof, "entity.segmentMembership.ups")[seg["id"]]["status"],
                         "realized")
        # still qualifying: a fourth impression makes it "existing", which is no change
        self.impressions(crm, ("c-104",))
        self.assertEqual(s.drain(0.3), [])
        # no new event: the window passes and the timer exits the profile
        g = s.next(timeout=15)
        self.assertEqual(g["data"]["status"], "exited")
        self.assertEqual(g["data"]["identity"]["id"], crm)
        e1, q1 = f["id"].split(".")
        e2, q2 = g["id"].split(".")
        self.assertEqual(e1, e2)
        self.assertGreater(int(q2), int(q1))

    def test_filter_and_sandbox_scope(self):
        a = self.create('_acme.tier = "gold"')
        b = self.create('_acme.tier = "silver"')
        only_a = self.stream("?segmentId=" + a["id"])
        every = self.stream()
        sb = kt.uid("sb-")[:30].lower()
        self.assertStatus(self.admin.post(kt.Client.SANDBOXES, {"name": sb, "title": sb,
                                                                "type": "development"}), 201)
        other = self.stream(sandbox=sb)
        self.assertEqual(other.status, 200)
        crm = kt.uid("c-")
        self.fx.ingest_record({"_acme": {"crmId": crm, "tier": "silver"},
                               "identityMap": kt.idmap(("CRMID", crm))})
        self.fx.ingest_record({"_acme": {"crmId": crm, "tier": "gold"},
                               "identityMap": kt.idmap(("CRMID", crm))})
        got = [(f["data"]["segmentId"], f["data"]["status"]) for f in
               [every.next(), every.next(), every.next()]]
        # within one group, segments are evaluated in creation order
        self.assertEqual(got, [(b["id"], "realized"), (a["id"], "realized"), (b["id"], "exited")])
        f = only_a.next()
        self.assertEqual((f["data"]["segmentId"], f["data"]["status"]), (a["id"], "realized"))
        self.assertEqual(only_a.drain(0.3), [])
        # the other sandbox: its own segment and data only
        api2 = self.admin.in_sandbox(sb)
        fx2 = kt.Fixture(api2)
        c = self.create('_acme.tier = "gold"', api=api2)
        crm2 = kt.uid("c-")
        fx2.ingest_record({"_acme": {"crmId": crm2, "tier": "gold"},
                           "identityMap": kt.idmap(("CRMID", crm2))})
        f = other.next()
        self.assertEqual(f["data"]["segmentId"], c["id"])
        self.assertEqual(f["data"]["identity"]["id"], crm2)
        self.assertEqual(other.drain(0.3), [])
        self.assertEqual(every.drain(0.3), [])

    def test_heartbeat(self):
        s = self.stream("?heartbeat=1")
        f = s.next(event=None, timeout=5)
        self.assertIn("comment", f)
        hb = s.next(event=None, timeout=5)
        self.assertEqual(hb["comment"], "heartbeat")

    def test_last_event_id_replays_and_reports_gaps(self):
        seg = self.create('_acme.tier = "bronze"')
        s = self.stream("?segmentId=" + seg["id"])
        crms = [kt.uid("c-") for _ in range(3)]
        for crm in crms:
            self.fx.ingest_record({"_acme": {"crmId": crm, "tier": "bronze"},
                                   "identityMap": kt.idmap(("CRMID", crm))})
        frames = [s.next() for _ in crms]
        self.assertEqual([f["data"]["identity"]["id"] for f in frames], crms)
        # a client that saw the first one reconnects and gets the other two, in order
        r = self.stream("?segmentId=" + seg["id"], headers={"Last-Event-ID": frames[0]["id"]})
        again = [r.next(timeout=5) for _ in range(2)]
        self.assertEqual([f["id"] for f in again], [f["id"] for f in frames[1:]])
        self.assertEqual(r.drain(0.3), [])
        # an id of another server run: the stream says changes may be missing, then goes live
        g = self.stream("?segmentId=" + seg["id"], headers={"Last-Event-ID": "1.5"})
        gap = g.next(event="gap", timeout=5)
        self.assertEqual(gap["data"]["lastEventId"], "1.5")

    def test_bad_requests(self):
        s = self.stream("?segmentId=00000000-0000-4000-8000-000000000000")
        self.assertEqual(s.status, 400)
        self.assertEqual(json.loads(s.body)["errors"][0]["path"], "segmentId")
        for q in ("?heartbeat=0", "?heartbeat=x", "?buffer=0", "?buffer=100000"):
            s = self.stream(q)
            self.assertEqual(s.status, 400, q)
        s = SseClient(self.server, "not-a-key")
        self.assertEqual(s.status, 401)


class StreamShutdownTest(kt.KithTestCase):
    def test_open_streams_do_not_hold_shutdown(self):
        srv = self.new_server()
        streams = [SseClient(srv, srv.admin_key) for _ in range(3)]
        for s in streams:
            self.assertEqual(s.status, 200)
            s.next(event=None, timeout=5)  # the opening comment
        t0 = time.time()
        self.assertEqual(srv.stop(), 0)
        self.assertLess(time.time() - t0, 5.0)  # streams end at once instead of the 10 s drain
        for s in streams:
            self.assertTrue(s.ended.wait(5))
            s.close()


if __name__ == "__main__":
    kt.main()
