"""Event idempotency: an event is identified by (dataset, _id). A resend is acknowledged and not
stored again, whatever its timestamp; the same _id in another dataset is another event; deleting the
dataset forgets the ids; the duplicates are counted in /metrics."""
import kithtest as kt

T0 = 1_700_000_000_000


class DedupTest(kt.KithTestCase):
    fixture_needed = True

    def test_resend_with_another_timestamp_is_stored_once(self):
        fx = self.fx
        ecid = kt.ecid()
        ev = kt.web_event([("ECID", ecid)], T0 + 1000, page="first")
        fx.ingest_event(ev)
        again = dict(ev, timestamp=kt.iso(T0 + 99_000))
        again["web"] = {"webPageDetails": {"name": "second"}}
        fx.ingest_event(again)
        children = self.admin.events("ECID", ecid).json["children"]
        self.assertEqual(len(children), 1, children)
        self.assertEqual(children[0]["timestamp"], T0 + 1000, "the first one stays")
        self.assertEqual(kt.get_path(children[0]["entity"], "web.webPageDetails.name"), "first")

    def test_resend_in_one_batch(self):
        fx = self.fx
        ecid = kt.ecid()
        ev = kt.web_event([("ECID", ecid)], T0 + 2000)
        r = self.admin.send_batch(fx.inlet, [fx.event(ev), fx.event(dict(ev, timestamp=kt.iso(T0 + 3000)))])
        self.assertStatus(r, 207)
        self.assertTrue(all("xactionId" in x for x in r.json["responses"]), r.json)
        self.assertEqual(len(self.admin.events("ECID", ecid).json["children"]), 1)

    def test_same_id_in_another_dataset_is_another_event(self):
        fx = self.fx
        other = self.admin.create_dataset(fx.event_schema_id, kt.uid("web2-"))
        ecid = kt.ecid()
        ev = kt.web_event([("ECID", ecid)], T0 + 4000)
        fx.ingest_event(ev)
        fx.ingest_event(dict(ev, timestamp=kt.iso(T0 + 5000)), other)
        self.assertEqual(len(self.admin.events("ECID", ecid).json["children"]), 2)

    def test_dataset_delete_forgets_ids_and_metrics_count(self):
        fx = self.fx
        ds = self.admin.create_dataset(fx.event_schema_id, kt.uid("web3-"))
        ecid = kt.ecid()
        ev = kt.web_event([("ECID", ecid)], T0 + 6000)
        fx.ingest_event(ev, ds)
        fx.ingest_event(ev, ds)
        metrics = self.server.raw("GET", "/metrics").text
        line = [l for l in metrics.splitlines() if l.startswith("kith_events_duplicate_total")]
        self.assertTrue(line and int(line[0].split()[1]) >= 1, line)
        self.assertStatus(self.admin.delete("/data/foundation/catalog/dataSets/" + ds), 200, 204)
        ds2 = self.admin.create_dataset(fx.event_schema_id, kt.uid("web4-"))
        fx.ingest_event(ev, ds2)
        self.assertEqual(len(self.admin.events("ECID", ecid).json["children"]), 1)


if __name__ == "__main__":
    kt.main()
