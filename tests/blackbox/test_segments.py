"""Segment service (issue 5; aep-spec 4.1, 4.2, 4.5, 4.8; API.md section 6): definitions CRUD,
bulk-get, errors naming line and column, evaluationInfo decided by kith; streaming
membership of the seed's three segments over HTTP, a profile leaving a time window with no new event
(timers), segments of segments, identity merges."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

DEFS = "/data/core/ups/segment/definitions"

WEEK = ('xEvent[eventType = "commerce.purchases"].max(timestamp) occurs = 7 days before today')
BIG = 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 10000'
CAMPAIGNS = ('xEvent[eventType = "advertising.impressions"\n'
             '       and _acme.campaignId in ["c-101", "c-102", "c-103", "c-104", "c-105"]\n'
             '       and timestamp occurs <= %s before now]._acme.campaignId.distinct().count() >= 3')
DAY = 86400000


def definition(expr, name=None, fmt="pql/text"):
    return {"name": name or kt.uid("seg-"), "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": fmt, "value": expr}}


def now_ms():
    return int(time.time() * 1000)


class SegmentTest(kt.KithTestCase):
    fixture_needed = True

    def create(self, expr, **kw):
        r = self.admin.post(DEFS, definition(expr, **kw))
        self.assertStatus(r, 201)
        return r.json

    def membership(self, crm):
        prof = self.admin.profile("CRMID", crm)
        return kt.get_path(prof, "entity.segmentMembership.ups", {}) or {}

    def status(self, crm, seg):
        return self.membership(crm).get(seg["id"], {}).get("status")

    def event(self, crm, ts, etype, **fields):
        ent = {"_id": kt.uid("ev-"), "timestamp": kt.iso(ts), "eventType": etype,
               "identityMap": kt.idmap(("CRMID", crm))}
        ent.update(fields)
        self.fx.ingest_event(ent)

    def purchase(self, crm, ts, total):
        self.event(crm, ts, "commerce.purchases", commerce={"order": {"priceTotal": total}})

    def impression(self, crm, ts, campaign):
        self.event(crm, ts, "advertising.impressions", _acme={"campaignId": campaign})

    # --- definitions ------------------------------------------------------------------------------

    def test_crud(self):
        d = self.create(BIG, name=kt.uid("big-"))
        for f in ("id", "name", "expression", "evaluationInfo", "schema", "creationTime",
                  "updateTime", "sandbox"):
            self.assertIn(f, d)
        self.assertTrue(d["evaluationInfo"]["continuous"]["enabled"])
        self.assertFalse(d["evaluationInfo"]["batch"]["enabled"])
        self.assertIn("kith:reason", d["evaluationInfo"])
        r = self.admin.get(DEFS + "/" + d["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json, d)
        lst = self.admin.get(DEFS + "?limit=100").json
        self.assertIn(d["id"], [s["id"] for s in lst["segments"]])
        self.assertGreaterEqual(lst["page"]["totalCount"], 1)
        r = self.admin.patch(DEFS + "/" + d["id"], {"description": "rich people"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["description"], "rich people")
        self.assertEqual(r.json["expression"]["value"], BIG)
        r = self.admin.post(DEFS + "/bulk-get", {"ids": [{"id": d["id"]}, {"id": "nope"}]})
        self.assertStatus(r, 207)
        self.assertEqual(r.json["results"][d["id"]]["name"], d["name"])
        self.assertEqual(r.json["results"]["nope"]["status"], 404)
        self.assertStatus(self.admin.delete(DEFS + "/" + d["id"]), 200)
        self.assertProblem(self.admin.get(DEFS + "/" + d["id"]), 404)
        self.assertProblem(self.admin.delete(DEFS + "/" + d["id"]), 404)

    def test_bad_expressions(self):
        r = self.admin.post(DEFS, definition('person.name.firstName = "x" and\n  (_acme.points > )'))
        self.assertProblem(r, 400)
        err = r.json["errors"][0]
        self.assertEqual(err["path"], "/expression/value")
        self.assertEqual(err["line"], 2)
        self.assertIn("column", err)
        r = self.admin.post(DEFS, definition('_acme.noSuchField = "x"'))
        self.assertProblem(r, 400)
        self.assertIn("noSuchField", r.json["errors"][0]["message"])
        r = self.admin.post(DEFS, definition('inSegment("00000000-0000-4000-8000-000000000000")'))
        self.assertProblem(r, 400)
        self.assertProblem(self.admin.post(DEFS, {"name": "x"}), 400)
        name = kt.uid("dup-")
        self.create('_acme.tier = "gold"', name=name)
        self.assertProblem(self.admin.post(DEFS, definition('_acme.tier = "gold"', name=name)), 409)

    # --- streaming --------------------------------------------------------------------------------

    def test_seed_segments(self):
        week = self.create(WEEK)
        big = self.create(BIG)
        camp = self.create(CAMPAIGNS % "30 minutes")
        crm = kt.uid("c-")
        now = now_ms()
        today = now - now % DAY
        self.purchase(crm, today - 7 * DAY + 3600000, 6000)
        m = self.membership(crm)
        self.assertEqual(m[week["id"]]["status"], "realized")
        self.assertNotIn(big["id"], m)
        self.purchase(crm, today - 8 * DAY, 5000)  # older: max stays 7 days ago
        self.assertIn(self.status(crm, week), ("realized", "existing"))
        self.assertIn(self.status(crm, big), ("realized",))
        # a newer purchase: the last one is no longer 7 days ago
        self.purchase(crm, now - 1000, 10)
        self.assertEqual(self.status(crm, week), "exited")
        self.assertIn(self.status(crm, big), ("realized", "existing"))
        # campaigns: two distinct, then a duplicate, then a third one
        self.impression(crm, now - 60000, "c-101")
        self.impression(crm, now - 50000, "c-102")
        self.impression(crm, now - 40000, "c-102")
        self.assertIsNone(self.status(crm, camp))
        self.impression(crm, now - 30000, "c-999")
        self.assertIsNone(self.status(crm, camp))
        self.impression(crm, now - 20000, "c-105")
        m = self.membership(crm)
        self.assertEqual(m[camp["id"]]["status"], "realized")
        self.assertIn("lastQualificationTime", m[camp["id"]])

    def test_leaves_window_with_no_new_event(self):
        camp = self.create(CAMPAIGNS % "4 seconds")
        crm = kt.uid("c-")
        now = now_ms()
        for i, c in enumerate(("c-101", "c-102", "c-103")):
            self.impression(crm, now - 500 + i, c)
        self.assertEqual(self.status(crm, camp), "realized")
        deadline = time.time() + 15
        while time.time() < deadline and self.status(crm, camp) != "exited":
            time.sleep(0.25)
        self.assertEqual(self.status(crm, camp), "exited")
        # it still exits correctly after a restart-free re-entry
        later = now_ms()
        for i, c in enumerate(("c-103", "c-104", "c-105")):
            self.impression(crm, later + i, c)
        self.assertEqual(self.status(crm, camp), "realized")

    def test_enters_later_by_timer(self):
        # A purchase 6 days ago enters "7 days before today" tomorrow; a purchase stamped in the
        # near future enters a "in the last 3 seconds" window when its time comes.
        soon = self.create('xEvent[eventType = "commerce.purchases" and '
                           'timestamp occurs <= 3 seconds before now].count() >= 1')
        crm = kt.uid("c-")
        self.purchase(crm, now_ms() + 1500, 1)
        self.assertIsNone(self.status(crm, soon))
        deadline = time.time() + 10
        while time.time() < deadline and self.status(crm, soon) is None:
            time.sleep(0.2)
        self.assertEqual(self.status(crm, soon), "realized")
        deadline = time.time() + 10
        while time.time() < deadline and self.status(crm, soon) != "exited":
            time.sleep(0.2)
        self.assertEqual(self.status(crm, soon), "exited")

    def test_segment_of_segments_and_profile_attributes(self):
        gold = self.create('_acme.tier = "gold"')
        big = self.create(BIG)
        both = self.create('inSegment("%s") and inSegment("%s")' % (gold["id"], big["id"]))
        self.assertTrue(both["evaluationInfo"]["continuous"]["enabled"])
        self.assertEqual(sorted(both["dependencies"]), sorted([gold["id"], big["id"]]))
        crm = kt.uid("c-")
        self.fx.ingest_record({"_acme": {"crmId": crm, "tier": "gold"},
                               "identityMap": kt.idmap(("CRMID", crm))})
        self.assertEqual(self.status(crm, gold), "realized")
        self.assertIsNone(self.status(crm, both))
        self.purchase(crm, now_ms() - 1000, 20000)
        self.assertIn(self.status(crm, big), ("realized", "existing"))
        self.assertEqual(self.status(crm, both), "realized")
        self.fx.ingest_record({"_acme": {"crmId": crm, "tier": "silver"},
                               "identityMap": kt.idmap(("CRMID", crm))})
        self.assertEqual(self.status(crm, gold), "exited")
        self.assertEqual(self.status(crm, both), "exited")
        # a segment in use cannot be deleted
        self.assertProblem(self.admin.delete(DEFS + "/" + gold["id"]), 409)
        self.assertStatus(self.admin.delete(DEFS + "/" + both["id"]), 200)
        self.assertStatus(self.admin.delete(DEFS + "/" + gold["id"]), 200)
        self.assertNotIn(gold["id"], self.membership(crm))

    def test_identity_merge_reevaluates(self):
        big = self.create(BIG)
        crm = kt.uid("c-")
        email = kt.uid("e-") + "@example.com"
        self.purchase(crm, now_ms() - 5000, 6000)
        ent = {"_id": kt.uid("ev-"), "timestamp": kt.iso(now_ms() - 4000),
               "eventType": "commerce.purchases", "commerce": {"order": {"priceTotal": 6000}},
               "identityMap": kt.idmap(("Email", email))}
        self.fx.ingest_event(ent)
        self.assertIsNone(self.status(crm, big))
        # a record links the two identities: the merged profile has 12,000 of purchases
        self.fx.ingest_record({"_acme": {"crmId": crm},
                               "identityMap": kt.idmap(("CRMID", crm), ("Email", email))})
        self.assertEqual(self.status(crm, big), "realized")


class SegmentRestartTest(kt.KithTestCase):
    def test_definitions_and_timers_survive_restart(self):
        srv = self.new_server()
        api = srv.api()
        fx = kt.Fixture(api)
        d = api.post(DEFS, definition(CAMPAIGNS % "3 seconds"))
        self.assertStatus(d, 201)
        crm = kt.uid("c-")
        now = now_ms()
        for i, c in enumerate(("c-101", "c-102", "c-103")):
            fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(now + i),
                             "eventType": "advertising.impressions", "_acme": {"campaignId": c},
                             "identityMap": kt.idmap(("CRMID", crm))})
        prof = api.profile("CRMID", crm)
        self.assertEqual(kt.get_path(prof, "entity.segmentMembership.ups")[d.json["id"]]["status"],
                         "realized")
        srv.restart()
        api = srv.api()
        self.assertStatus(api.get(DEFS + "/" + d.json["id"]), 200)
        deadline = time.time() + 15
        st = None
        while time.time() < deadline:
            prof = api.profile("CRMID", crm)
            st = kt.get_path(prof, "entity.segmentMembership.ups")[d.json["id"]]["status"]
            if st == "exited":
                break
            time.sleep(0.25)
        self.assertEqual(st, "exited")


if __name__ == "__main__":
    kt.main()
