"""Streaming memberships follow deletes (issue 5): after DELETE /data/core/ups/access/entities the
profile exits the segments it qualified for through the deleted records and events, and after a
dataset delete the profiles that qualified through that dataset exit too — as soon as the delete
is acknowledged, and on the change stream."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402
from test_stream import SseClient  # noqa: E402

DEFS = "/data/core/ups/segment/definitions"
BIG = 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 10000'
GOLD = '_acme.tier = "gold"'


def now_ms():
    return int(time.time() * 1000)


class SegmentDeleteTest(kt.KithTestCase):
    fixture_needed = True

    def create(self, expr):
        r = self.admin.post(DEFS, {"name": kt.uid("seg-"), "schema": {"name": "_xdm.context.profile"},
                                   "expression": {"type": "PQL", "format": "pql/text",
                                                  "value": expr}})
        self.assertStatus(r, 201)
        kt.wait_backfill(self.admin, r.json)  # existing profiles may enter: before the stream opens
        return r.json

    def status(self, crm, seg):
        prof = self.admin.profile("CRMID", crm)
        return (kt.get_path(prof, "entity.segmentMembership.ups", {}) or {}).get(
            seg["id"], {}).get("status")

    def qualify(self, crm, fx=None, events_dataset=None, records_dataset=None):
        fx = fx or self.fx
        fx.ingest_record({"_acme": {"crmId": crm, "tier": "gold"},
                          "identityMap": kt.idmap(("CRMID", crm))}, records_dataset)
        fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(now_ms() - 1000),
                         "eventType": "commerce.purchases",
                         "commerce": {"order": {"priceTotal": 20000}},
                         "identityMap": kt.idmap(("CRMID", crm))}, events_dataset)

    def test_profile_delete_exits(self):
        big, gold = self.create(BIG), self.create(GOLD)
        crm, other = kt.uid("c-"), kt.uid("c-")
        self.qualify(crm)
        self.qualify(other)
        self.assertEqual(self.status(crm, big), "realized")
        self.assertEqual(self.status(crm, gold), "realized")
        s = SseClient(self.server, self.server.admin_key, query="?segmentId=%s,%s" % (big["id"],
                                                                                    gold["id"]))
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200)
        # a change is published after its group is acknowledged: the entries of `other` (written
        # before the stream opened) may still arrive; they are not what this test is about
        late = s.drain(0.3)
        self.assertTrue(all(f["data"]["identity"]["id"] == other and f["data"]["status"] == "realized"
                            for f in late), late)
        r = self.admin.delete(kt.Client.ENTITIES + "?" + kt.qs(
            schema__name="_xdm.context.profile", entityId=crm, entityIdNS="CRMID"))
        self.assertStatus(r, 202)
        # acknowledged: the memberships already say so (the event is gone at once, not later)
        self.assertEqual(self.status(crm, big), "exited")
        self.assertEqual(self.status(crm, gold), "exited")
        got = sorted((f["data"]["segmentId"], f["data"]["status"], f["data"]["identity"]["id"])
                     for f in (s.next(), s.next()))
        self.assertEqual(got, sorted([(big["id"], "exited", crm), (gold["id"], "exited", crm)]))
        # nobody else moved
        self.assertEqual(self.status(other, big), "realized")
        self.assertEqual(s.drain(0.3), [])
        # new data qualifies the profile again, with no trace of the deleted purchase
        self.fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(now_ms() - 500),
                              "eventType": "commerce.purchases",
                              "commerce": {"order": {"priceTotal": 9000}},
                              "identityMap": kt.idmap(("CRMID", crm))})
        self.assertEqual(self.status(crm, big), "exited")
        self.fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(now_ms() - 400),
                              "eventType": "commerce.purchases",
                              "commerce": {"order": {"priceTotal": 2000}},
                              "identityMap": kt.idmap(("CRMID", crm))})
        self.assertEqual(self.status(crm, big), "realized")

    def test_dataset_delete_exits(self):
        api = self.admin
        fx = self.fx
        big, gold = self.create(BIG), self.create(GOLD)
        events2 = api.create_dataset(fx.event_schema_id, kt.uid("web2-"))
        records2 = api.create_dataset(fx.profile_schema_id, kt.uid("crm2-"))
        crm, other = kt.uid("c-"), kt.uid("c-")
        self.qualify(crm, events_dataset=events2, records_dataset=records2)
        self.qualify(other)
        self.assertEqual(self.status(crm, big), "realized")
        self.assertEqual(self.status(crm, gold), "realized")
        self.assertStatus(api.delete(kt.Client.DATASETS + "/" + events2), 200)
        self.assertEqual(self.status(crm, big), "exited")
        self.assertIn(self.status(crm, gold), ("realized", "existing"))  # its record stays
        self.assertStatus(api.delete(kt.Client.DATASETS + "/" + records2), 200)
        self.assertEqual(self.status(crm, gold), "exited")
        self.assertIn(self.status(other, big), ("realized", "existing"))
        self.assertIn(self.status(other, gold), ("realized", "existing"))


if __name__ == "__main__":
    kt.main()
