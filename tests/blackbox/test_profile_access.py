"""Profile Access beyond the basics (aep-spec section 1): event `property` filters, `fields` on
events, bulk POST for events with `_links.next.payload`, DELETE under a merge policy whose
identityGraph is none, and a dataset delete seen through every read path."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

MP = "/data/core/ups/config/mergePolicies"
T0 = 1700000000000


class ProfileAccessTest(kt.KithTestCase):
    fixture_needed = True

    def person_with_events(self, n=6):
        fx = self.fx
        crm = kt.uid("crm")
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0), "_acme": {"tier": "gold"}}, fx.crm)
        for i in range(n):
            fx.ingest_event(kt.web_event([("CRMID", crm)], T0 + i * 1000, event_id="ev%d-%s" % (i, crm),
                                         page="home" if i % 2 == 0 else "cart", seq=i))
        return crm

    def seqs(self, r):
        self.assertStatus(r, 200)
        return [c["entity"]["_acme"]["seq"] for c in r.json["children"]]

    def events_q(self, crm, extra):
        q = kt.qs(schema__name="_xdm.context.experienceevent", relatedSchema__name="_xdm.context.profile",
                  relatedEntityId=crm, relatedEntityIdNS="CRMID") + extra
        return self.admin.get(kt.Client.ENTITIES + "?" + q)

    def test_property_filters(self):
        crm = self.person_with_events()
        self.assertEqual(self.seqs(self.admin.events("CRMID", crm, property="_acme.seq>=3")), [3, 4, 5])
        self.assertEqual(self.seqs(self.admin.events("CRMID", crm, property="_acme.seq<2")), [0, 1])
        self.assertEqual(self.seqs(self.admin.events("CRMID", crm, property="_acme.seq!=0")), [1, 2, 3, 4, 5])
        self.assertEqual(self.seqs(self.admin.events("CRMID", crm, property="web.webPageDetails.name=cart")), [1, 3, 5])
        # Repeatable: all must hold.
        r = self.events_q(crm, "&property=" + kt.enc("_acme.seq>1") + "&property=" + kt.enc("_acme.seq<=4")
                          + "&property=" + kt.enc("web.webPageDetails.name=home"))
        self.assertEqual(self.seqs(r), [2, 4])
        # A missing field matches nothing.
        self.assertEqual(self.seqs(self.admin.events("CRMID", crm, property="_acme.campaignId=x")), [])
        r = self.events_q(crm, "".join("&property=" + kt.enc("_acme.seq>%d" % i) for i in range(4)))
        self.assertProblem(r, 400)
        for bad in ("nonsense", "=3", "a b=1", "_acme.seq=>3"):
            self.assertProblem(self.admin.events("CRMID", crm, property=bad), 400)

    def test_filters_with_paging(self):
        crm = self.person_with_events(8)
        r = self.admin.events("CRMID", crm, property="_acme.seq>=2", limit=2)
        got = self.seqs(r)
        href = r.json["_links"]["next"]["href"]
        while href:
            self.assertTrue(href.startswith("/entities?"), href)
            r = self.admin.get("/data/core/ups/access" + href)
            got += self.seqs(r)
            href = r.json["_links"]["next"]["href"]
        self.assertEqual(got, [2, 3, 4, 5, 6, 7])
        r = self.admin.events("CRMID", crm, property="_acme.seq>=2", limit=3, orderby="-timestamp")
        self.assertEqual(self.seqs(r), [7, 6, 5])

    def test_fields_on_events(self):
        crm = self.person_with_events(2)
        r = self.admin.events("CRMID", crm, fields="_acme")
        self.assertStatus(r, 200)
        for c in r.json["children"]:
            self.assertEqual(set(c["entity"]), {"_acme"})

    def test_bulk_events_with_payload_continuation(self):
        a = self.person_with_events(5)
        b = self.person_with_events(1)
        body = {"schema": {"name": "_xdm.context.experienceevent"},
                "relatedSchema": {"name": "_xdm.context.profile"},
                "identities": [{"relatedEntityId": a, "relatedEntityIdNS": {"code": "CRMID"}},
                               {"relatedEntityId": b, "relatedEntityIdNS": {"code": "CRMID"}},
                               {"relatedEntityId": "nobody", "relatedEntityIdNS": {"code": "CRMID"}}],
                "timeFilter": {"startTime": T0 + 1000, "endTime": T0 + 10000},
                "limit": 2, "orderby": "+timestamp"}
        r = self.admin.post(kt.Client.ENTITIES, body)
        self.assertStatus(r, 200)
        self.assertEqual(len(r.json), 3, r)
        by_count = sorted(len(v["children"]) for v in r.json.values())
        self.assertEqual(by_count, [0, 0, 2], "b's one event is before startTime; nobody is empty")
        page = next(v for v in r.json.values() if v["children"])
        got = [c["entity"]["_acme"]["seq"] for c in page["children"]]
        payload = page["_links"]["next"]["payload"]
        while payload:
            self.assertEqual(len(payload["identities"]), 1)
            self.assertIn("start", payload["identities"][0])
            r = self.admin.post(kt.Client.ENTITIES, payload)
            self.assertStatus(r, 200)
            (page,) = r.json.values()
            got += [c["entity"]["_acme"]["seq"] for c in page["children"]]
            payload = page["_links"]["next"]["payload"]
        self.assertEqual(got, [1, 2, 3, 4])
        body2 = dict(body, orderby="-timestamp", timeFilter={})
        body2["identities"] = body["identities"][:1]
        r = self.admin.post(kt.Client.ENTITIES, body2)
        (page,) = r.json.values()
        self.assertEqual([c["entity"]["_acme"]["seq"] for c in page["children"]], [4, 3])
        for bad, path in ((dict(body, limit=0), "/limit"), (dict(body, orderby="x"), "/orderby"),
                          (dict(body, timeFilter={"startTime": "x"}), "/timeFilter/startTime"),
                          (dict(body, identities=[{"relatedEntityId": a, "relatedEntityIdNS": "CRMID",
                                                   "start": "garbage"}]), "/identities/0/start"),
                          (dict(body, relatedSchema={"name": "x"}), "/relatedSchema/name")):
            j = self.assertProblem(self.admin.post(kt.Client.ENTITIES, bad), 400)
            self.assertIn(path, [e["path"] for e in j.get("errors", [])])

    def test_bulk_profiles_with_policy(self):
        fx = self.fx
        crm = kt.uid("crm")
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0), "_acme": {"tier": "gold"}}, fx.crm)
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0), "_acme": {"tier": "silver"}}, fx.loyalty)
        r = self.admin.post(MP, {"name": kt.uid("mp"), "schema": {"name": "_xdm.context.profile"},
                                 "identityGraph": {"type": "pdg"},
                                 "attributeMerge": {"type": "dataSetPrecedence", "order": [fx.crm, fx.loyalty]}})
        self.assertStatus(r, 201)
        body = {"schema": {"name": "_xdm.context.profile"}, "mergePolicyId": r.json["id"], "fields": ["_acme"],
                "identities": [{"entityId": crm, "entityIdNS": {"code": "CRMID"}},
                               {"entityId": "nobody", "entityIdNS": {"code": "CRMID"}}]}
        r = self.admin.post(kt.Client.ENTITIES, body)
        self.assertStatus(r, 200)
        tiers = sorted(str(kt.get_path(v["entity"], "_acme.tier")) for v in r.json.values())
        self.assertEqual(tiers, ["None", "gold"])
        empty = [v for v in r.json.values() if not v["entity"]][0]
        self.assertEqual(empty["sources"], [""])
        self.assertEqual(empty["lastModifiedAt"], "1970-01-01T00:00:00Z")

    def test_delete_with_identity_graph_none(self):
        fx = self.fx
        crm, phone = kt.uid("crm"), "+1555" + kt.uid()[:7]
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0), "_acme": {"tier": "gold"}}, fx.crm)
        fx.ingest_record({"identityMap": kt.idmap(("Phone", phone), ("CRMID", crm), primary=0),
                          "person": {"name": {"firstName": "P"}}}, fx.loyalty)
        fx.ingest_event(kt.web_event([("CRMID", crm)], T0))
        fx.ingest_event(kt.web_event([("Phone", phone)], T0 + 1))
        r = self.admin.post(MP, {"name": kt.uid("mp"), "schema": {"name": "_xdm.context.profile"},
                                 "identityGraph": {"type": "none"}, "attributeMerge": {"type": "timestampOrdered"}})
        none = r.json["id"]
        r = self.admin.delete(kt.Client.ENTITIES + "?" + kt.qs(schema__name="_xdm.context.profile", entityId=crm,
                                                               entityIdNS="CRMID", mergePolicyId=none))
        self.assertStatus(r, 202)
        p = self.admin.profile("Phone", phone)
        self.assertIsNone(kt.get_path(p["entity"], "_acme.tier"), "the CRMID fragment is gone")
        self.assertEqual(kt.get_path(p["entity"], "person.name.firstName"), "P", "the Phone fragment stays")
        self.assertEqual(p["sources"], [fx.loyalty])
        self.assertEqual(len(self.admin.events("Phone", phone).json["children"]), 1)
        # Without a policy (pdg): the whole cluster.
        r = self.admin.delete(kt.Client.ENTITIES + "?" + kt.qs(schema__name="_xdm.context.profile", entityId=phone,
                                                               entityIdNS="Phone"))
        self.assertStatus(r, 202)
        p = self.admin.profile("CRMID", crm)
        self.assertEqual(p["sources"], [])
        self.assertEqual(self.admin.events("CRMID", crm).json["children"], [])

    def test_dataset_delete_through_every_read(self):
        fx = self.fx
        api = self.admin
        ds = api.create_dataset(fx.profile_schema_id)
        evds = api.create_dataset(fx.event_schema_id)
        crm = kt.uid("crm")
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0), "_acme": {"tier": "gold"}}, fx.crm)
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0), "_acme": {"tier": "silver", "note": "x"}}, ds)
        fx.ingest_event(kt.web_event([("CRMID", crm)], T0), evds)
        r = api.post(MP, {"name": kt.uid("mp"), "schema": {"name": "_xdm.context.profile"},
                          "identityGraph": {"type": "pdg"},
                          "attributeMerge": {"type": "dataSetPrecedence", "order": [ds, fx.crm, evds]}})
        mp = r.json["id"]
        self.assertEqual(kt.get_path(api.profile("CRMID", crm, mergePolicyId=mp)["entity"], "_acme.tier"), "silver")
        self.assertStatus(api.delete(kt.Client.DATASETS + "/" + ds), 200, 204)
        self.assertStatus(api.delete(kt.Client.DATASETS + "/" + evds), 200, 204)
        for params in ({}, {"mergePolicyId": mp}):
            p = api.profile("CRMID", crm, **params)
            self.assertEqual(kt.get_path(p["entity"], "_acme.tier"), "gold", params)
            self.assertIsNone(kt.get_path(p["entity"], "_acme.note"))
            self.assertNotIn(ds, p["sources"])
            self.assertEqual(api.events("CRMID", crm, **params).json["children"], [])
        r = api.post(kt.Client.ENTITIES, {"schema": {"name": "_xdm.context.profile"},
                                          "identities": [{"entityId": crm, "entityIdNS": {"code": "CRMID"}}]})
        (p,) = r.json.values()
        self.assertEqual(kt.get_path(p["entity"], "_acme.tier"), "gold")


if __name__ == "__main__":
    kt.main()
