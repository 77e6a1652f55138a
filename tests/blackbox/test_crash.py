"""Durability: every acknowledged write survives SIGKILL and a clean SIGTERM (DESIGN section 7)."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

C = kt.Client
T0 = 1700000000000


class CrashTest(kt.KithTestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = None

    def setUp(self):
        self.srv = self.new_server()
        self.api = self.srv.api()
        self.fx = kt.Fixture(self.api)

    def ingest_n(self, n, tag):
        acked = []
        for i in range(n):
            email = "%s-%d@crash.example" % (tag, i)
            ecid = kt.ecid()
            self.fx.ingest_record({"identityMap": kt.idmap(("Email", email), ("ECID", ecid), primary=0),
                                   "_acme": {"points": i, "note": tag}})
            ev = kt.web_event([("ECID", ecid)], T0 + i, seq=i)
            self.fx.ingest_event(ev)
            acked.append((email, ecid, i, ev["_id"]))
        return acked

    def verify(self, acked):
        api = self.srv.api()
        missing = []
        for email, ecid, i, ev_id in acked:
            r = api.lookup("Email", email)
            if r.status != 200:
                missing.append((email, r.status))
                continue
            p = kt.profile_of(r)
            self.assertEqual(kt.get_path(p["entity"], "_acme.points"), i)
            self.assertIn(("ecid", ecid), kt.identities_of(p))
            ev = api.events("Email", email)
            self.assertStatus(ev, 200)
            self.assertIn(ev_id, [c["entityId"] for c in ev.json["children"]])
        self.assertEqual(missing, [], "acknowledged records lost")

    def restart_and_check_metadata(self):
        api = self.srv.api()
        self.assertStatus(api.get(C.SCHEMAS + "/" + kt.enc(self.fx.profile_schema_id)), 200)
        self.assertStatus(api.get(C.DATASETS + "/" + self.fx.crm), 200)

    def test_sigkill_after_last_ack(self):
        acked = self.ingest_n(60, kt.uid("k"))
        self.srv.stop(signal.SIGKILL)
        self.srv.start()
        self.restart_and_check_metadata()
        self.verify(acked)
        # The inlet still works after the restart.
        more = self.ingest_n(3, kt.uid("after"))
        self.verify(more)

    def test_sigterm_then_restart(self):
        acked = self.ingest_n(40, kt.uid("t"))
        self.srv.terminate_ok(self)
        self.srv.start()
        self.restart_and_check_metadata()
        self.verify(acked)

    def test_batch_ack_survives_sigkill(self):
        tag = kt.uid("b")
        msgs, expect = [], []
        for i in range(50):
            email = "%s-%d@crash.example" % (tag, i)
            msgs.append(self.fx.record({"identityMap": kt.idmap(("Email", email)), "_acme": {"points": i}}))
            expect.append((email, i))
        r = self.api.send_batch(self.fx.inlet, msgs)
        self.assertStatus(r, 207)
        self.assertTrue(all("xactionId" in x for x in r.json["responses"]), "%r" % r)
        self.srv.stop(signal.SIGKILL)
        self.srv.start()
        for email, i in expect:
            p = self.srv.api().profile("Email", email)
            self.assertEqual(kt.get_path(p["entity"], "_acme.points"), i)

    def test_sigkill_during_concurrent_ingest(self):
        """Clients send as fast as they can; kithd is killed mid-stream. Every 200 must survive."""
        acked = []
        lock = threading.Lock()
        stop = threading.Event()
        tag = kt.uid("c")
        inlet, schema, ds = self.fx.inlet, self.fx.profile_schema_id, self.fx.crm
        port = self.srv.port

        def worker(w):
            i = 0
            while not stop.is_set():
                email = "%s-%d-%d@crash.example" % (tag, w, i)
                env = kt.envelope(schema, ds, {"identityMap": kt.idmap(("Email", email)),
                                               "_acme": {"points": i}})
                try:
                    resp = kt.http_request(port, "POST", "/collection/" + inlet,
                                           kt.json.dumps(env).encode(),
                                           {"Content-Type": "application/json"}, timeout=10)
                except Exception:
                    return
                if resp.status == 200:
                    with lock:
                        acked.append((email, i))
                elif resp.status != 429:
                    return
                i += 1

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            with lock:
                if len(acked) >= 200:
                    break
            time.sleep(0.05)
        self.srv.proc.kill()  # SIGKILL while requests are in flight
        stop.set()
        for t in threads:
            t.join(30)
        self.srv.stop()
        with lock:
            got = list(acked)
        self.assertGreater(len(got), 0, "no request acknowledged before the kill")
        self.srv.start()
        api = self.srv.api()
        lost = []
        for email, i in got:
            r = api.lookup("Email", email)
            if r.status != 200:
                lost.append(email)
            else:
                self.assertEqual(kt.get_path(kt.profile_of(r)["entity"], "_acme.points"), i)
        self.assertEqual(lost, [], "%d of %d acknowledged records lost" % (len(lost), len(got)))

    def graph_of(self, idents):
        """identity -> (clusterId, frozenset of members) for every identity, through explain."""
        api = self.srv.api()
        out = {}
        for ns, v in idents:
            r = api.get("/data/core/identity/cluster/explain?" + kt.qs(ns=ns, id=v))
            if r.status == 404:
                out[(ns, v)] = None
                continue
            self.assertStatus(r, 200)
            out[(ns, v)] = (r.json["clusterId"],
                            frozenset((m["namespace"], m["id"]) for m in r.json["members"]))
        return out

    def test_identity_graph_survives_sigkill(self):
        """Links and merges from concurrent clients, SIGKILL mid-stream: the graph of every acknowledged
        record is there after the restart and consistent (each member reports the same cluster); then,
        quiesced, a second SIGKILL + restart gives identical clusters (the identity log: DESIGN 7)."""
        tag = kt.uid("g")
        inlet, schema, ds = self.fx.inlet, self.fx.profile_schema_id, self.fx.crm
        port = self.srv.port
        acked, lock, stop = [], threading.Lock(), threading.Event()
        people = 40  # a small pool of people: new ECIDs join them, shared ECIDs merge them

        def worker(w):
            i = 0
            while not stop.is_set():
                a = "%s-%d" % (tag, (w * 7 + i) % people)
                ids = [("CRMID", a), ("ECID", "%s%02d%06d" % ("0" * 30, w, i))]
                if i % 5 == 4:  # a device shared with another person: their clusters merge
                    ids.append(("CRMID", "%s-%d" % (tag, (w * 13 + i * 3) % people)))
                env = kt.envelope(schema, ds, {"identityMap": kt.idmap(*ids, primary=0)})
                try:
                    resp = kt.http_request(port, "POST", "/collection/" + inlet,
                                           kt.json.dumps(env).encode(),
                                           {"Content-Type": "application/json"}, timeout=10)
                except Exception:
                    return
                if resp.status == 200:
                    with lock:
                        acked.append(ids)
                elif resp.status != 429:
                    return
                i += 1

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            with lock:
                if len(acked) >= 150:
                    break
            time.sleep(0.05)
        self.srv.proc.kill()  # SIGKILL while requests are in flight
        stop.set()
        for t in threads:
            t.join(30)
        self.srv.stop()
        with lock:
            got = list(acked)
        self.assertGreater(len(got), 0, "no request acknowledged before the kill")
        self.srv.start()
        idents = sorted({(ns, v) for ids in got for ns, v in ids})
        g = self.graph_of(idents)
        for ids in got:  # every acknowledged record's identities are in one cluster
            cls = {g[(ns, v)][0] if g[(ns, v)] else None for ns, v in ids}
            self.assertEqual(len(cls), 1, "record %r split after the restart: %r" % (ids, cls))
            self.assertNotIn(None, cls)
        for key, val in g.items():  # each member of a cluster reports that cluster
            for m in val[1]:
                other = g.get(m)
                if other is not None:
                    self.assertEqual(other, val)
        # Quiesced: metrics show the index; a second SIGKILL gives identical clusters.
        m = self.srv.api().get("/metrics")
        self.assertStatus(m, 200)
        self.assertRegex(m.text, r"(?m)^kith_identity_log_records_total \d+$")
        self.assertRegex(m.text, r"(?m)^kith_identity_cache_bytes \d+$")
        if os.environ.get("KITH_TEST_VERBOSE"):
            sys.stderr.write("\n" + "\n".join(l for l in m.text.splitlines() if l.startswith("kith_identity_log")) + "\n")
        self.fx.ingest_record({"identityMap": kt.idmap(("CRMID", "%s-0" % tag), ("CRMID", "%s-1" % tag))})
        before = self.graph_of(idents)
        self.assertTrue(all(before.values()))
        self.srv.stop(signal.SIGKILL)
        self.srv.start()
        self.assertEqual(self.graph_of(idents), before)

    def test_merged_cluster_survives_sigkill(self):
        crms = [kt.uid("m") for _ in range(6)]
        for i in range(5):
            self.fx.ingest_record({"identityMap": kt.idmap(("CRMID", crms[i]), ("CRMID", crms[i + 1])),
                                   "_acme": {"points": i}})
        self.srv.stop(signal.SIGKILL)
        self.srv.start()
        want = {("crmid", c) for c in crms}
        for c in crms:
            p = self.srv.api().profile("CRMID", c)
            self.assertEqual(kt.identities_of(p), want)
        # New links after the restart still merge with the recovered cluster.
        extra = kt.uid("m")
        self.fx.ingest_record({"identityMap": kt.idmap(("CRMID", crms[0]), ("CRMID", extra))})
        self.assertIn(("crmid", crms[5]), kt.identities_of(self.srv.api().profile("CRMID", extra)))

    def test_sigterm_during_concurrent_ingest(self):
        """SIGTERM while clients send: kithd drains, exits 0, and every 200 survives."""
        acked, lock, stop = [], threading.Lock(), threading.Event()
        tag = kt.uid("g")
        inlet, schema, ds, port = self.fx.inlet, self.fx.profile_schema_id, self.fx.crm, self.srv.port

        def worker(w):
            i = 0
            while not stop.is_set():
                email = "%s-%d-%d@drain.example" % (tag, w, i)
                env = kt.envelope(schema, ds, {"identityMap": kt.idmap(("Email", email)),
                                               "_acme": {"points": i}})
                try:
                    resp = kt.http_request(port, "POST", "/collection/" + inlet, kt.json.dumps(env).encode(),
                                           {"Content-Type": "application/json"}, timeout=10)
                except Exception:
                    return
                if resp.status == 200:
                    with lock:
                        acked.append((email, i))
                elif resp.status >= 500:
                    with lock:
                        acked.append(("5xx", resp.status))
                    return
                i += 1

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        self.srv.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.srv.proc.wait(30)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(rc, 0, "SIGTERM under load must exit 0:\n%s" % self.srv.log_tail())
        self.srv.stop()
        with lock:
            got = list(acked)
        self.assertNotIn("5xx", [g[0] for g in got], "a 5xx during shutdown")
        self.assertGreater(len(got), 0)
        self.srv.start()
        api = self.srv.api()
        lost = [e for e, _ in got if api.lookup("Email", e).status != 200]
        self.assertEqual(lost, [], "%d of %d acknowledged records lost" % (len(lost), len(got)))

    def test_last_update_wins_after_sigkill(self):
        email = kt.uid() + "@upd.example"
        last = {}
        for i in range(30):
            ds = self.fx.crm if i % 2 == 0 else self.fx.loyalty
            self.fx.ingest_record({"identityMap": kt.idmap(("Email", email)),
                                   "_acme": {"points": i, "note": "n%d" % i}}, ds)
            last = {"points": i, "note": "n%d" % i}
        self.srv.stop(signal.SIGKILL)
        self.srv.start()
        ent = self.srv.api().profile("Email", email)["entity"]
        self.assertEqual(kt.get_path(ent, "_acme.points"), last["points"])
        self.assertEqual(kt.get_path(ent, "_acme.note"), last["note"])

    def test_deletes_survive_sigkill(self):
        api = self.api
        email = kt.uid() + "@deleted.example"
        self.fx.ingest_record({"identityMap": kt.idmap(("Email", email)), "_acme": {"note": "keep"}}, self.fx.crm)
        self.fx.ingest_record({"identityMap": kt.idmap(("Email", email)), "_acme": {"tier": "gold"}},
                              self.fx.loyalty)
        r = api.post(C.KEYS, {"name": "revoked", "role": "viewer", "sandboxes": ["prod"]})
        self.assertStatus(r, 200, 201)
        kid = r.json["id"]
        secret = next(r.json[f] for f in ("key", "apiKey", "api_key", "secret", "token", "value")
                      if isinstance(r.json.get(f), str))
        sb = "sb" + kt.uid()
        self.assertStatus(api.post(C.SANDBOXES, {"name": sb, "title": "t", "type": "development"}), 200, 201)
        fx_sb = kt.Fixture(api.in_sandbox(sb))
        fx_sb.ingest_record({"identityMap": kt.idmap(("Email", email))})
        self.assertStatus(api.delete(C.DATASETS + "/" + self.fx.loyalty), 200, 202, 204)
        self.assertStatus(api.delete(C.KEYS + "/" + kt.enc(kid)), 200, 204)
        self.assertStatus(api.delete(C.SANDBOXES + "/" + sb), 200, 202, 204)
        time.sleep(0.5)  # let asynchronous deletes, if any, reach the store
        self.srv.stop(signal.SIGKILL)
        self.srv.start()
        api = self.srv.api()
        ent = api.profile("Email", email)["entity"]
        self.assertEqual(kt.get_path(ent, "_acme.note"), "keep")
        self.assertIsNone(kt.get_path(ent, "_acme.tier"), "a deleted dataset came back after restart")
        self.assertProblem(api.get(C.DATASETS + "/" + self.fx.loyalty), 404)
        self.assertProblem(self.srv.api(key=secret).get(C.SCHEMAS), 401)
        self.assertNotIn(sb, api.get(C.SANDBOXES).text)
        self.assertStatus(api.post(C.SANDBOXES, {"name": sb, "title": "t", "type": "development"}), 200, 201)
        self.assertStatus(api.in_sandbox(sb).lookup("Email", email), 404)

    def test_keys_and_sandboxes_survive_restart(self):
        sb = "sb" + kt.uid()
        r = self.api.post(C.SANDBOXES, {"name": sb, "title": "t", "type": "development"})
        self.assertStatus(r, 200, 201)
        r = self.api.post(C.KEYS, {"name": "persist", "role": "viewer", "sandboxes": ["prod"]})
        self.assertStatus(r, 200, 201)
        secret = next(r.json[f] for f in ("key", "apiKey", "api_key", "secret", "token", "value")
                      if isinstance(r.json.get(f), str))
        self.srv.stop(signal.SIGKILL)
        self.srv.start()
        self.assertStatus(self.srv.api(key=secret).get(C.SCHEMAS), 200)
        self.assertIn(sb, self.srv.api().get(C.SANDBOXES).text)


if __name__ == "__main__":
    kt.main()
