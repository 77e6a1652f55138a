"""Streaming segments evaluate under their definition's mergePolicyId (issue 5, PQL.md: xEvent and the
profile "merged by the segment's merge policy"): dataSetPrecedence picks attributes by dataset rank
and keeps only the listed datasets' events; identityGraph "none" evaluates each identity's own data;
a segment without mergePolicyId follows the sandbox's default; an unknown policy is a 400."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

DEFS = "/data/core/ups/segment/definitions"
MP = "/data/core/ups/config/mergePolicies"


def now_ms():
    return int(time.time() * 1000)


class SegmentPolicyTest(kt.KithTestCase):
    fixture_needed = True

    def policy(self, graph="pdg", attr="timestampOrdered", order=None):
        am = {"type": attr}
        if order is not None:
            am["order"] = order
        r = self.admin.post(MP, {"name": kt.uid("mp-"), "schema": {"name": "_xdm.context.profile"},
                                 "identityGraph": {"type": graph}, "attributeMerge": am,
                                 "default": False, "isActiveOnEdge": False})
        self.assertStatus(r, 201)
        return r.json["id"]

    def create(self, expr, policy=None):
        body = {"name": kt.uid("seg-"), "schema": {"name": "_xdm.context.profile"},
                "expression": {"type": "PQL", "format": "pql/text", "value": expr}}
        if policy:
            body["mergePolicyId"] = policy
        r = self.admin.post(DEFS, body)
        self.assertStatus(r, 201)
        if policy:
            self.assertEqual(r.json["mergePolicyId"], policy)
        return r.json["id"]

    def status(self, crm, seg):
        prof = self.admin.profile("CRMID", crm)
        return (kt.get_path(prof, "entity.segmentMembership.ups", {}) or {}).get(
            seg, {}).get("status")

    def record(self, crm, dataset, **acme):
        acme["crmId"] = crm
        self.fx.ingest_record({"_acme": acme, "identityMap": kt.idmap(("CRMID", crm))}, dataset)

    def test_dataset_precedence_attributes(self):
        fx = self.fx
        loyalty_first = self.policy(attr="dataSetPrecedence", order=[fx.loyalty, fx.crm])
        by_rank = self.create('_acme.tier = "gold"', loyalty_first)
        by_time = self.create('_acme.tier = "gold"')
        crm = kt.uid("c-")
        self.record(crm, fx.loyalty, tier="silver")
        self.record(crm, fx.crm, tier="gold")  # newer: wins by time, loses by rank
        self.assertEqual(self.status(crm, by_time), "realized")
        self.assertIsNone(self.status(crm, by_rank))
        self.record(crm, fx.loyalty, tier="gold")
        self.assertEqual(self.status(crm, by_rank), "realized")
        self.record(crm, fx.crm, tier="bronze")  # newest, but crm ranks below loyalty
        self.assertEqual(self.status(crm, by_time), "exited")
        self.assertIn(self.status(crm, by_rank), ("realized", "existing"))

    def test_dataset_precedence_events(self):
        fx = self.fx
        records_only = self.policy(attr="dataSetPrecedence", order=[fx.crm, fx.loyalty])
        with_web = self.policy(attr="dataSetPrecedence", order=[fx.web, fx.crm])
        expr = 'xEvent[eventType = "commerce.purchases"].count() >= 1'
        no_events, events = self.create(expr, records_only), self.create(expr, with_web)
        crm = kt.uid("c-")
        fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(now_ms() - 1000),
                         "eventType": "commerce.purchases", "identityMap": kt.idmap(("CRMID", crm))})
        self.assertEqual(self.status(crm, events), "realized")
        self.assertIsNone(self.status(crm, no_events))

    def test_identity_graph_none(self):
        fx = self.fx
        none = self.policy(graph="none")
        expr = '_acme.tier = "gold" and person.name.firstName = "Ann"'
        alone, stitched = self.create(expr, none), self.create(expr)
        crm, email = kt.uid("c-"), kt.uid("e-") + "@example.com"
        # the CRM record (under CRMID) has the tier; the loyalty record (under Email) the name
        fx.ingest_record({"_acme": {"crmId": crm, "tier": "gold"},
                          "identityMap": kt.idmap(("CRMID", crm), ("Email", email), primary=0)})
        fx.ingest_record({"person": {"name": {"firstName": "Ann"}},
                          "identityMap": kt.idmap(("Email", email), ("CRMID", crm), primary=0)},
                         fx.loyalty)
        self.assertEqual(self.status(crm, stitched), "realized")
        self.assertIsNone(self.status(crm, alone))  # neither identity alone qualifies
        # one identity's own data qualifies: so does the profile
        fx.ingest_record({"_acme": {"crmId": crm, "tier": "gold"},
                          "person": {"name": {"firstName": "Ann"}},
                          "identityMap": kt.idmap(("CRMID", crm), ("Email", email), primary=0)})
        self.assertEqual(self.status(crm, alone), "realized")

    def test_default_policy_followed_and_bad_ids(self):
        fx = self.fx
        api = self.admin
        dflt = self.create('_acme.tier = "gold"')
        crm = kt.uid("c-")
        self.record(crm, fx.loyalty, tier="gold")
        self.record(crm, fx.crm, tier="silver")
        self.assertEqual(self.status(crm, dflt), "exited")  # timestampOrdered: silver is newer
        r = api.post(DEFS, {"name": kt.uid("seg-"), "mergePolicyId": "no-such-policy",
                            "expression": {"type": "PQL", "format": "pql/text",
                                           "value": '_acme.tier = "gold"'}})
        self.assertErrorPath(r, "/mergePolicyId")
        r = api.post(DEFS, {"name": kt.uid("seg-"), "mergePolicyId": 5,
                            "expression": {"type": "PQL", "format": "pql/text",
                                           "value": '_acme.tier = "gold"'}})
        self.assertErrorPath(r, "/mergePolicyId")


class SegmentDefaultPolicyTest(kt.KithTestCase):
    """A sandbox whose default policy is dataSetPrecedence: segments without mergePolicyId use it."""
    fixture_needed = True

    def test_segments_follow_the_sandbox_default(self):
        fx, api = self.fx, self.admin
        r = api.post(MP, {"name": kt.uid("mp-"), "schema": {"name": "_xdm.context.profile"},
                          "identityGraph": {"type": "pdg"},
                          "attributeMerge": {"type": "dataSetPrecedence",
                                             "order": [fx.loyalty, fx.crm]},
                          "default": True, "isActiveOnEdge": False})
        self.assertStatus(r, 201)
        r = api.post(DEFS, {"name": kt.uid("seg-"), "expression": {
            "type": "PQL", "format": "pql/text", "value": '_acme.tier = "gold"'}})
        self.assertStatus(r, 201)
        seg = r.json["id"]
        crm = kt.uid("c-")
        fx.ingest_record({"_acme": {"crmId": crm, "tier": "gold"},
                          "identityMap": kt.idmap(("CRMID", crm))}, fx.loyalty)
        fx.ingest_record({"_acme": {"crmId": crm, "tier": "silver"},
                          "identityMap": kt.idmap(("CRMID", crm))}, fx.crm)
        prof = api.profile("CRMID", crm)
        self.assertEqual(kt.get_path(prof, "entity._acme.tier"), "gold")  # the lookup agrees
        # gold by rank: still a member (timestampOrdered would have made it exit)
        self.assertIn(kt.get_path(prof, "entity.segmentMembership.ups")[seg]["status"],
                      ("realized", "existing"))


if __name__ == "__main__":
    kt.main()
