"""Identity Service (API.md section 4, aep-spec section 2): XIDs, cluster members and history (single
and batch), linking rules (validation, AEP's shared-device and shared-email cases), explain and
unlink, namespaces."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

T0 = 1700000000000
RULES = "/data/core/identity/config/linking-rules"


def q(**params):
    return "?" + kt.qs(**params).lstrip("?")


class IdentityTest(kt.KithTestCase):
    fixture_needed = True

    def sandbox_fixture(self):
        """A fresh sandbox with the standard fixture, for tests that change the linking rules."""
        name = "id" + kt.uid().lower().replace("-", "")[:20]
        r = self.admin.post("/data/foundation/sandbox-management/sandboxes",
                            {"name": name, "title": name, "type": "development"})
        self.assertStatus(r, 200, 201)
        api = self.server.api(sandbox=name)
        return api, kt.Fixture(api)

    def members(self, api, ns, v):
        r = api.get("/data/core/identity/cluster/members" + q(ns=ns, id=v))
        self.assertStatus(r, 200)
        return {(m["nsid"], m["id"]) for m in r.json["members"]}

    # --- namespaces ------------------------------------------------------------------------------

    def test_namespaces_standard_and_custom(self):
        r = self.admin.get("/data/core/idnamespace/identities")
        self.assertStatus(r, 200)
        codes = {n["code"]: n for n in r.json}
        for c in ("ECID", "Email", "Phone", "CRMID", "IDFA", "GAID", "AAID", "CORE", "AdCloud"):
            self.assertIn(c, codes)
        self.assertEqual(codes["ECID"]["id"], 4)
        self.assertEqual(codes["Email"]["id"], 6)
        self.assertEqual(codes["ECID"]["idType"], "COOKIE")
        code = "Store" + kt.uid()[:6]
        r = self.admin.post("/data/core/idnamespace/identities",
                            {"name": "Store", "code": code, "idType": "NON_PEOPLE"})
        self.assertStatus(r, 200)
        self.assertTrue(r.json["custom"])
        self.assertStatus(self.admin.get("/data/core/idnamespace/identities/%d" % r.json["id"]), 200)
        # A non-people identifier never links.
        fx = self.fx
        crm1, crm2 = kt.uid("np1"), kt.uid("np2")
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm1), (code, "store-1"), primary=0)})
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm2), (code, "store-1"), primary=0)})
        self.assertEqual(len(self.members(self.admin, "CRMID", crm1)), 1)

    def test_namespace_rename(self):
        """AEP: a custom namespace's name and description can change; its code and type cannot; a
        standard namespace cannot change. A rejected request changes nothing."""
        NS = "/data/core/idnamespace/identities"
        code = "Loyalty" + kt.uid()[:6]
        r = self.admin.post(NS, {"name": "Loyalty", "code": code, "idType": "CROSS_DEVICE",
                                 "description": "old"})
        self.assertStatus(r, 200)
        nid, created = r.json["id"], r.json
        path = NS + "/%d" % nid
        self.assertErrorPath(self.admin.put(path, {"code": code + "x"}), "/code")
        self.assertErrorPath(self.admin.put(path, {"idType": "EMAIL"}), "/idType")
        self.assertErrorPath(self.admin.put(path, {"name": ""}), "/name")
        self.assertErrorPath(self.admin.put(path, {"name": "n" * 257}), "/name")
        self.assertErrorPath(self.admin.put(path, {"description": 7}), "/description")
        self.assertProblem(self.admin.put(path, ["name"]), 400)
        self.assertProblem(self.admin.put(NS + "/4", {"name": "Cookie"}), 400)
        self.assertProblem(self.admin.put(NS + "/999999999", {"name": "x"}), 404)
        self.assertEqual(self.admin.get(path).json, created, "a rejected request changes nothing")
        self.assertEqual(self.admin.get(NS + "/4").json["name"], "Experience Cloud ID")
        r = self.admin.put(path, {"name": "Loyalty Member", "description": "new", "code": code,
                                  "idType": "cross_device"})
        self.assertStatus(r, 200)
        self.assertEqual((r.json["name"], r.json["description"], r.json["code"], r.json["id"]),
                         ("Loyalty Member", "new", code, nid))
        self.assertGreaterEqual(r.json["updateTime"], created["updateTime"])
        got = self.admin.get(NS + "/" + code).json
        self.assertEqual((got["name"], got["description"], got["idType"]),
                         ("Loyalty Member", "new", "CROSS_DEVICE"))
        listed = [n for n in self.admin.get(NS).json if n["code"] == code]
        self.assertEqual([n["name"] for n in listed], ["Loyalty Member"])
        # The namespace still links identities under its (unchanged) code.
        crm = kt.uid("ly")
        self.fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), (code, "L-1"), primary=0)})
        self.assertEqual(self.members(self.admin, "CRMID", crm), {(8, crm), (nid, "L-1")})
        # Another sandbox does not see it.
        api, _ = self.sandbox_fixture()
        self.assertProblem(api.put(path, {"name": "x"}), 404)

    # --- XID, members, history -------------------------------------------------------------------

    def test_xid_members_batch_history(self):
        fx = self.fx
        crm, email, ecid = kt.uid("m"), kt.uid() + "@m.example", kt.ecid()
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), ("Email", email), primary=0)})
        fx.ingest_event(kt.web_event([("ECID", ecid), ("Email", email)], T0))
        r = self.admin.get("/data/core/identity/identity" + q(namespace="Email", id=email))
        self.assertStatus(r, 200)
        xid = r.json["xid"]
        self.assertEqual(self.members(self.admin, "Email", email),
                         {(8, crm), (6, email), (4, ecid)})
        r = self.admin.get("/data/core/identity/cluster/members" + q(xid=xid))
        self.assertStatus(r, 200)
        self.assertEqual(len(r.json["members"]), 3)
        r = self.admin.get("/data/core/identity/cluster/members" + q(nsId=4, id=ecid))
        self.assertStatus(r, 200)
        self.assertEqual(len(r.json["members"]), 3)
        self.assertProblem(self.admin.get("/data/core/identity/cluster/members" + q(ns="CRMID", id="nobody-" + kt.uid())), 404)
        self.assertProblem(self.admin.get("/data/core/identity/cluster/members" + q(ns="Nope", id="x")), 400)
        # Batch: one entry per requested identity, unknown ones with no members, bad XIDs listed.
        r = self.admin.post("/data/core/identity/clusters/members",
                            {"xids": [xid, "garbage"], "graph-type": "Private Graph"})
        self.assertStatus(r, 200)
        self.assertEqual(len(r.json["clusters"]), 1)
        self.assertEqual(r.json["unprocessedXids"], ["garbage"])
        r = self.admin.post("/data/core/identity/clusters/members",
                            {"compositeXids": [{"nsid": 8, "id": crm}, {"nsid": 4, "id": ecid},
                                               {"nsid": 6, "id": "unknown@x.example"}]})
        self.assertStatus(r, 200)
        self.assertEqual([len(c["members"]) for c in r.json["clusters"]], [3, 3, 0])
        r = self.admin.post("/data/core/identity/clusters/members",
                            {"xids": [xid] * 1001})
        self.assertProblem(r, 400)
        # History: newest first.
        r = self.admin.get("/data/core/identity/cluster/history" + q(ns="ECID", id=ecid))
        self.assertStatus(r, 200)
        h = r.json["clusterHistory"]
        self.assertGreaterEqual(len(h), 1)
        ts = [e["cRecordedTS"] for e in h]
        self.assertEqual(ts, sorted(ts, reverse=True))

    def test_mappings(self):
        """aep-spec 2.6: the identities linked to one, optionally of one target namespace, with the
        time each was last linked; 204 when nothing is related."""
        fx = self.fx
        crm, email, ecid = kt.uid("map"), kt.uid() + "@map.example", kt.ecid()
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), ("Email", email), primary=0)})
        fx.ingest_event(kt.web_event([("CRMID", crm), ("ECID", ecid)], T0))
        M = "/data/core/identity/mapping"
        r = self.admin.get(M + q(ns="CRMID", id=crm, targetNs=4))
        self.assertStatus(r, 200)
        self.assertEqual([(m["compositeXid"]["nsid"], m["compositeXid"]["id"]) for m in r.json["mapping"]],
                         [(4, ecid)])
        m = r.json["mapping"][0]
        xid = self.admin.get("/data/core/identity/identity" + q(nsId=4, id=ecid)).json["xid"]
        self.assertEqual(m["xid"], xid)
        self.assertGreater(m["lastAssociationTime"], 1700000000000)
        self.assertEqual(r.json["compositeXid"], {"nsid": 8, "id": crm})
        r = self.admin.get(M + q(ns="CRMID", id=crm))  # no target: every other member
        self.assertEqual({(x["compositeXid"]["nsid"], x["compositeXid"]["id"]) for x in r.json["mapping"]},
                         {(4, ecid), (6, email)})
        self.assertStatus(self.admin.get(M + q(ns="CRMID", id=crm, targetNs="6")), 200)
        self.assertStatus(self.admin.get(M + q(ns="CRMID", id=crm, targetNs=411)), 204)
        self.assertProblem(self.admin.get(M + q(ns="CRMID", id=crm, targetNs="x")), 400)
        self.assertProblem(self.admin.get(M + q(ns="CRMID", id=crm, targetNs=987654321)), 400)
        self.assertProblem(self.admin.get(M + q(ns="CRMID", id="nobody-" + kt.uid(), targetNs=4)), 404)
        # Batch: one entry per identity, bad ones listed; 204 when nothing at all is related.
        B = "/data/core/identity/mappings"
        r = self.admin.post(B, {"compositeXids": [{"nsid": 8, "id": crm}, {"nsid": 6, "id": email},
                                                  {"nsid": 6, "id": "unknown@x.example"}],
                                "targetNs": "4", "graph-type": "Private Graph"})
        self.assertStatus(r, 200)
        self.assertEqual([len(e["mapping"]) for e in r.json["mappings"]], [1, 1, 0])
        self.assertEqual(r.json["mappings"][1]["mapping"][0]["compositeXid"], {"nsid": 4, "id": ecid})
        r = self.admin.post(B, {"xids": [xid, "garbage"], "targetNs": 8})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["unprocessedXids"], ["garbage"])
        self.assertEqual(r.json["mappings"][0]["mapping"][0]["compositeXid"], {"nsid": 8, "id": crm})
        self.assertStatus(self.admin.post(B, {"xids": [xid], "targetNs": 411}), 204)
        self.assertErrorPath(self.admin.post(B, {"xids": [xid], "targetNs": "nope"}), "/targetNs")
        self.assertErrorPath(self.admin.post(B, {"xids": ["x"] * 1001, "targetNs": 4}), "/xids")

    def test_tiny_writer_cache(self):
        """--identity-cache-mb: with a cache smaller than one group's keys it is dropped after every
        group and the graph is read back from the store: the results are the same."""
        import subprocess
        p = subprocess.run([kt.KITHD, "--identity-cache-mb", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        self.assertNotEqual(p.returncode, 0, "a cache of 0 MiB is refused")
        s = self.new_server(extra_args=["--identity-cache-mb", "1"])
        api = s.api()
        fx = kt.Fixture(api)
        crm = kt.uid("tc")
        ecids = [kt.ecid() for _ in range(4)]
        recs = [fx.record({"identityMap": kt.idmap(("CRMID", "%s-%d" % (crm, i)),
                                                   ("Email", "%s-%d@t.example" % (crm, i)), primary=0)})
                for i in range(3000)]
        for i in range(0, len(recs), 1000):
            r = api.send_batch(fx.inlet, recs[i:i + 1000])
            self.assertStatus(r, 207)
            self.assertFalse([m for m in r.json["responses"] if m.get("statusCode")], r.json)
        for i, e in enumerate(ecids):
            fx.ingest_event(kt.web_event([("CRMID", "%s-%d" % (crm, i)), ("ECID", e)], T0 + i))
        fx.ingest_event(kt.web_event([("ECID", ecids[0]), ("Email", "%s-1@t.example" % crm)], T0 + 9))
        self.assertEqual(self.members(api, "ECID", ecids[0]),
                         {(8, "%s-0" % crm), (6, "%s-0@t.example" % crm), (4, ecids[0]),
                          (8, "%s-1" % crm), (6, "%s-1@t.example" % crm), (4, ecids[1])})
        self.assertEqual(len(self.members(api, "CRMID", "%s-2999" % crm)), 2)

    # --- linking rules -----------------------------------------------------------------------------

    def test_linking_rules_validation(self):
        api, _ = self.sandbox_fixture()
        r = api.get(RULES)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["maxIdentities"], 50)
        self.assertIn("test@test.com", r.json["blockedValues"]["Email"])
        before = r.json
        self.assertErrorPath(api.put(RULES, {"priority": ["CRMID", "Nope"]}), "/priority/1")
        self.assertErrorPath(api.put(RULES, {"uniqueNamespaces": ["Nope"]}), "/uniqueNamespaces/0")
        self.assertErrorPath(api.put(RULES, {"maxIdentities": 1}), "/maxIdentities")
        self.assertProblem(api.put(RULES, {"priority": ["ECID", "CRMID"]}), 400)
        self.assertEqual(api.get(RULES).json, before, "a rejected request changes nothing")
        r = api.put(RULES, {"uniqueNamespaces": ["CRMID"], "priority": ["CRMID", "Email", "ECID"],
                            "maxIdentities": 10, "blockedValues": {"Email": ["junk@x.com"]}})
        self.assertStatus(r, 200)
        self.assertEqual(api.get(RULES).json["maxIdentities"], 10)
        self.assertEqual(api.get(RULES).json["uniqueNamespaces"], ["CRMID"])

    def test_shared_device_and_explain_and_unlink(self):
        api, fx = self.sandbox_fixture()
        self.assertStatus(api.put(RULES, {"uniqueNamespaces": ["CRMID"],
                                          "priority": ["CRMID", "Email", "ECID"]}), 200)
        ecid = kt.ecid()
        fx.ingest_event(kt.web_event([("CRMID", "jane"), ("ECID", ecid)], T0))
        fx.ingest_event(kt.web_event([("CRMID", "john"), ("ECID", ecid)], T0 + 1000))
        self.assertEqual(self.members(api, "ECID", ecid), {(8, "john"), (4, ecid)})
        self.assertEqual(self.members(api, "CRMID", "jane"), {(8, "jane")})
        r = api.get("/data/core/identity/cluster/explain" + q(ns="CRMID", id="jane"))
        self.assertStatus(r, 200)
        rules = [x["rule"] for x in r.json["removedLinks"]]
        self.assertIn("uniqueNamespace", rules)
        # Jane logs in again: the ECID goes back to her.
        fx.ingest_event(kt.web_event([("CRMID", "jane"), ("ECID", ecid)], T0 + 2000))
        self.assertEqual(self.members(api, "ECID", ecid), {(8, "jane"), (4, ecid)})
        r = api.get("/data/core/identity/cluster/explain" + q(ns="ECID", id=ecid))
        self.assertStatus(r, 200)
        e = r.json["edges"]
        self.assertEqual(len(e), 1)
        self.assertEqual(e[0]["dataset"], fx.web)
        self.assertIsNotNone(e[0]["recordId"])
        self.assertIn("firstSeen", e[0])
        # Unlink the edge: two profiles again; bad requests are 400/404 and change nothing.
        self.assertProblem(api.post("/data/core/identity/unlink", {"edge": [{"namespace": "CRMID", "id": "jane"}]}), 400)
        self.assertProblem(api.post("/data/core/identity/unlink",
                                    {"edge": [{"namespace": "CRMID", "id": "jane"},
                                              {"namespace": "CRMID", "id": "john"}]}), 404)
        r = api.post("/data/core/identity/unlink",
                     {"edge": [{"namespace": "CRMID", "id": "jane"}, {"namespace": "ECID", "id": ecid}]})
        self.assertStatus(r, 200)
        self.assertEqual(self.members(api, "ECID", ecid), {(4, ecid)})
        self.assertStatus(api.lookup("CRMID", "jane"), 200)
        r = api.get("/data/core/identity/cluster/explain" + q(ns="CRMID", id="jane"))
        self.assertIn("unlink", [x["rule"] for x in r.json["removedLinks"]])
        # Unlink of a whole identity.
        email = kt.uid() + "@u.example"
        rec_id = kt.uid("rec-")
        fx.ingest_record({"_id": rec_id,
                          "identityMap": kt.idmap(("CRMID", "jane"), ("Email", email), primary=0)})
        self.assertEqual(len(self.members(api, "CRMID", "jane")), 2)
        r = api.get("/data/core/identity/cluster/explain" + q(ns="Email", id=email))
        self.assertEqual([(x["dataset"], x["recordId"]) for x in r.json["edges"]], [(fx.crm, rec_id)],
                         "a profile record's _id is the provenance of its links")
        r = api.post("/data/core/identity/unlink", {"identity": {"namespace": "Email", "id": email}})
        self.assertStatus(r, 200)
        self.assertEqual(self.members(api, "CRMID", "jane"), {(8, "jane")})

    def test_junk_and_blocked_values_never_link(self):
        fx = self.fx
        a, b = kt.uid("j1"), kt.uid("j2")
        for crm in (a, b):
            fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), ("Email", "test@test.com"), primary=0)})
        self.assertEqual(len(self.members(self.admin, "CRMID", a)), 1)
        self.assertEqual(len(self.members(self.admin, "CRMID", b)), 1)

    def test_graph_limit_evicts(self):
        api, fx = self.sandbox_fixture()
        self.assertStatus(api.put(RULES, {"maxIdentities": 3}), 200)
        crm = kt.uid("g")
        ecids = [kt.ecid() for _ in range(3)]
        for i, e in enumerate(ecids):
            fx.ingest_event(kt.web_event([("CRMID", crm), ("ECID", e)], T0 + i))
        m = self.members(api, "CRMID", crm)
        self.assertEqual(len(m), 3)
        self.assertNotIn((4, ecids[0]), m, "the oldest cookie is evicted first")
        self.assertEqual(self.members(api, "ECID", ecids[0]), {(4, ecids[0])})


if __name__ == "__main__":
    kt.main()
