"""Merge policies (aep-spec section 3, API.md section 5): CRUD, paging and filters, bulk-get, PATCH,
one default per class, bad input, every version readable (?version=), the built-in
timestampOrdered-none-mp policy, a deleted dataset leaving every order, and what each policy does to
profile reads (timestampOrdered with lastUpdatedDate, dataSetPrecedence incl. events, identityGraph
none, moving the default)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

MP = "/data/core/ups/config/mergePolicies"
BUILTIN = "timestampOrdered-none-mp"
T0 = 1700000000000
FG_AUDIT = "https://ns.adobe.com/xdm/common/external-source-system-audit-details"


def policy(name=None, graph="pdg", attr="timestampOrdered", order=None, default=False, cls="_xdm.context.profile"):
    am = {"type": attr}
    if order is not None:
        am["order"] = order
    return {"name": name or kt.uid("mp-"), "schema": {"name": cls}, "identityGraph": {"type": graph},
            "attributeMerge": am, "default": default, "isActiveOnEdge": False}


class MergePolicyCrudTest(kt.KithTestCase):
    fixture_needed = True

    def create(self, body, api=None):
        r = (api or self.admin).post(MP, body)
        self.assertStatus(r, 201)
        return r.json

    def test_create_get_delete(self):
        p = self.create(policy("alpha", attr="dataSetPrecedence", order=[self.fx.loyalty, self.fx.crm]))
        for f in ("id", "name", "imsOrgId", "sandbox", "schema", "version", "identityGraph",
                  "attributeMerge", "isActiveOnEdge", "default", "updateEpoch"):
            self.assertIn(f, p)
        self.assertEqual(p["version"], 1)
        self.assertEqual(p["attributeMerge"], {"type": "dataSetPrecedence", "order": [self.fx.loyalty, self.fx.crm]})
        self.assertEqual(p["sandbox"]["sandboxName"], "prod")
        r = self.admin.get(MP + "/" + p["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json, p)
        self.assertStatus(self.admin.delete(MP + "/" + p["id"]), 200)
        self.assertProblem(self.admin.get(MP + "/" + p["id"]), 404)
        self.assertProblem(self.admin.delete(MP + "/" + p["id"]), 404)

    def test_unknown_ids(self):
        self.assertProblem(self.admin.get(MP + "/nope"), 404)
        self.assertProblem(self.admin.put(MP + "/nope", policy()), 404)
        self.assertProblem(self.admin.patch(MP + "/nope", {"op": "add", "path": "/name", "value": "x"}), 404)

    def test_bad_bodies_store_nothing(self):
        before = self.admin.get(MP + "?limit=100").json["_page"]["totalCount"]
        cases = [
            (policy(attr="dataSetPrecedence", order=["0" * 24]), "/attributeMerge/order/0"),
            (policy(attr="dataSetPrecedence", order=[]), "/attributeMerge/order"),
            (policy(attr="dataSetPrecedence"), "/attributeMerge/order"),
            (policy(attr="dataSetPrecedence", order=[self.fx.crm, self.fx.crm]), "/attributeMerge/order/1"),
            (policy(attr="newest"), "/attributeMerge/type"),
            (policy(graph="all"), "/identityGraph/type"),
            (dict(policy(), name=""), "/name"),
            (dict(policy(), default="maybe"), "/default"),
            ({k: v for k, v in policy().items() if k != "schema"}, "/schema/name"),
        ]
        for body, path in cases:
            r = self.admin.post(MP, body)
            j = self.assertProblem(r, 400)
            self.assertIn(path, [e["path"] for e in j.get("errors", [])], r)
        self.assertProblem(self.admin.post(MP, data="{not json"), 400)
        self.assertProblem(self.admin.post(MP, [1, 2]), 400)
        after = self.admin.get(MP + "?limit=100").json["_page"]["totalCount"]
        self.assertEqual(before, after)

    def test_put_and_patch_versions(self):
        p = self.create(policy("beta"))
        r = self.admin.put(MP + "/" + p["id"], policy("beta2", graph="none"))
        self.assertStatus(r, 200)
        self.assertEqual(r.json["version"], 2)
        self.assertEqual(r.json["name"], "beta2")
        self.assertEqual(r.json["identityGraph"], {"type": "none"})
        r = self.admin.patch(MP + "/" + p["id"], {"op": "add", "path": "/identityGraph.type", "value": "pdg"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["version"], 3)
        self.assertEqual(r.json["identityGraph"], {"type": "pdg"})
        r = self.admin.patch(MP + "/" + p["id"], {"op": "replace", "path": "/name", "value": "beta3"})
        self.assertStatus(r, 200)
        self.assertEqual((r.json["name"], r.json["version"]), ("beta3", 4))
        # Switching to dataSetPrecedence needs an order: refused, nothing changes.
        r = self.admin.patch(MP + "/" + p["id"], {"op": "add", "path": "/attributeMerge.type", "value": "dataSetPrecedence"})
        self.assertProblem(r, 400)
        r = self.admin.patch(MP + "/" + p["id"], {"op": "add", "path": "/attributeMerge",
                                                  "value": {"type": "dataSetPrecedence", "order": [self.fx.crm]}})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["version"], 5)
        bad = [
            [{"op": "add", "path": "/name", "value": "a"}, {"op": "add", "path": "/name", "value": "b"}],
            {"op": "remove", "path": "/name"},
            {"op": "add", "path": "/nope", "value": 1},
            {"op": "add", "path": "/version", "value": 9},
            {"op": "add", "path": "/name"},
            {"op": "add", "path": "/attributeMerge.order", "value": ["0" * 24]},
            {"op": "add", "path": "/default", "value": "perhaps"},
            "add",
        ]
        for op in bad:
            self.assertProblem(self.admin.patch(MP + "/" + p["id"], op), 400)
        self.assertProblem(self.admin.put(MP + "/" + p["id"], policy(graph="x")), 400)
        g = self.admin.get(MP + "/" + p["id"]).json
        self.assertEqual((g["version"], g["name"]), (5, "beta3"))

    def test_one_default_per_class(self):
        sb = kt.uid("mpsb")
        self.assertStatus(self.admin.post(kt.Client.SANDBOXES, {"name": sb, "title": sb, "type": "development"}), 200, 201)
        api = self.admin.in_sandbox(sb)
        a = self.create(policy("a", default=True), api)
        b = self.create(policy("b", default=True), api)
        ev = self.create(policy("ev", default=True, cls="_xdm.context.experienceevent"), api)
        a2 = api.get(MP + "/" + a["id"]).json
        self.assertFalse(a2["default"])
        self.assertEqual(a2["version"], 2, "losing the default is a change")
        self.assertTrue(api.get(MP + "/" + ev["id"]).json["default"], "another class keeps its default")
        r = api.get(MP + "?default=true&schema.name=_xdm.context.profile")
        self.assertEqual([c["id"] for c in r.json["children"]], [b["id"]])
        r = api.patch(MP + "/" + a["id"], {"op": "add", "path": "/default", "value": "true"})
        self.assertStatus(r, 200)
        self.assertFalse(api.get(MP + "/" + b["id"]).json["default"])
        # Policies are per sandbox.
        self.assertProblem(self.admin.get(MP + "/" + a["id"]), 404)

    def test_list_paging_and_filters(self):
        sb = kt.uid("mpsb")
        self.assertStatus(self.admin.post(kt.Client.SANDBOXES, {"name": sb, "title": sb, "type": "development"}), 200, 201)
        api = self.admin.in_sandbox(sb)
        ids = [self.create(policy("p%d" % i, graph="none" if i % 2 else "pdg"), api)["id"] for i in range(5)]
        r = api.get(MP + "?limit=2")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["_page"]["totalCount"], 6, "five and the built-in one")
        self.assertEqual([c["name"] for c in r.json["children"]], ["p0", "p1"])
        seen = [c["id"] for c in r.json["children"]]
        href = r.json["_links"]["next"]["href"]
        while href:
            self.assertTrue(href.startswith("@/mergePolicies?"), href)
            r = api.get(MP + href[len("@/mergePolicies"):])
            self.assertStatus(r, 200)
            seen += [c["id"] for c in r.json["children"]]
            href = r.json["_links"]["next"]["href"]
        self.assertEqual(seen, ids + [BUILTIN])
        r = api.get(MP + "?limit=2&page=2")
        self.assertEqual([c["name"] for c in r.json["children"]], ["p4", BUILTIN])
        r = api.get(MP + "?identityGraph.type=none")
        self.assertEqual([c["name"] for c in r.json["children"]], ["p1", "p3", BUILTIN])
        r = api.get(MP + "?orderBy=-name&limit=2")
        self.assertEqual([c["name"] for c in r.json["children"]], [BUILTIN, "p4"])
        r = api.get(MP + "?schema.name=_xdm.context.experienceevent")
        self.assertEqual(r.json["children"], [])
        for q in ("limit=0", "limit=x", "default=maybe", "orderBy=age", "identityGraph.type=x", "page=-1"):
            self.assertProblem(api.get(MP + "?" + q), 400)

    def test_every_version_is_readable(self):
        a = self.create(policy("v1", default=True))
        url = MP + "/" + a["id"]
        self.assertEqual(self.admin.put(url, policy("v2", default=True)).json["version"], 2)
        r = self.admin.patch(url, {"op": "replace", "path": "/name", "value": "v3"})
        self.assertEqual(r.json["version"], 3)
        b = self.create(policy("other", default=True))  # takes the default: a goes to version 4
        self.assertEqual(self.admin.get(url).json["version"], 4)
        for v, name, dflt in ((1, "v1", True), (2, "v2", True), (3, "v3", True), (4, "v3", False)):
            r = self.admin.get(url + "?version=%d" % v)
            self.assertStatus(r, 200)
            self.assertEqual((r.json["version"], r.json["name"], r.json["default"]), (v, name, dflt))
        self.assertProblem(self.admin.get(url + "?version=5"), 404)
        for q in ("0", "x", "-1"):
            self.assertProblem(self.admin.get(url + "?version=" + q), 400)
        # the list at version 1: each policy as it was then
        r = self.admin.get(MP + "?version=1&limit=100")
        byid = {c["id"]: c for c in r.json["children"]}
        self.assertEqual((byid[a["id"]]["name"], byid[a["id"]]["version"]), ("v1", 1))
        self.assertEqual(byid[b["id"]]["name"], "other")
        self.assertEqual(self.admin.get(MP + "?version=4&limit=100").json["children"][0]["id"], a["id"])
        # deleted: no version of it is readable any more
        self.assertStatus(self.admin.delete(MP + "/" + b["id"]), 200)
        self.assertStatus(self.admin.delete(url), 200)
        for v in (1, 4):
            self.assertProblem(self.admin.get(url + "?version=%d" % v), 404)

    def test_builtin_policy(self):
        url = MP + "/" + BUILTIN
        r = self.admin.get(url)
        self.assertStatus(r, 200)
        p = r.json
        self.assertEqual((p["id"], p["identityGraph"], p["attributeMerge"], p["default"], p["version"]),
                         (BUILTIN, {"type": "none"}, {"type": "timestampOrdered"}, False, 1))
        self.assertEqual(p["schema"], {"name": "_xdm.context.profile"})
        self.assertIn(BUILTIN, [c["id"] for c in self.admin.get(MP + "?limit=100").json["children"]])
        r = self.admin.post(MP + "/bulk-get", {"ids": [{"id": BUILTIN}]})
        self.assertEqual(r.json["results"][BUILTIN]["id"], BUILTIN)
        self.assertEqual(self.admin.get(url + "?version=1").json["id"], BUILTIN)
        self.assertProblem(self.admin.put(url, policy()), 403)
        self.assertProblem(self.admin.patch(url, {"op": "replace", "path": "/name", "value": "x"}), 403)
        self.assertProblem(self.admin.delete(url), 403)
        self.assertStatus(self.admin.get(url), 200)

    def test_deleted_dataset_leaves_every_order(self):
        fx = self.fx
        extra = self.admin.create_dataset(fx.profile_schema_id, kt.uid("extra-"))
        a = self.create(policy(attr="dataSetPrecedence", order=[extra, fx.crm]))
        b = self.create(policy(attr="dataSetPrecedence", order=[fx.loyalty, extra]))
        c = self.create(policy(attr="dataSetPrecedence", order=[fx.crm]))
        d = self.create(policy(attr="dataSetPrecedence", order=[extra]))
        r = self.admin.delete(self.admin.DATASETS + "/" + extra)
        self.assertStatus(r, 200)
        got = {x["id"]: self.admin.get(MP + "/" + x["id"]).json for x in (a, b, c, d)}
        self.assertEqual((got[a["id"]]["attributeMerge"]["order"], got[a["id"]]["version"]), ([fx.crm], 2))
        self.assertEqual((got[b["id"]]["attributeMerge"]["order"], got[b["id"]]["version"]), ([fx.loyalty], 2))
        self.assertEqual((got[c["id"]]["attributeMerge"]["order"], got[c["id"]]["version"]), ([fx.crm], 1))
        self.assertEqual(got[d["id"]]["attributeMerge"]["order"], [], "nothing left: it merges nothing")
        self.assertEqual(self.admin.get(MP + "/" + a["id"] + "?version=1").json["attributeMerge"]["order"],
                         [extra, fx.crm])
        # the pruned policies still read profiles; a PUT naming the deleted dataset is refused
        crm = kt.uid("crm")
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0),
                          "person": {"name": {"firstName": "Ann"}}}, fx.crm)
        p = self.admin.profile("CRMID", crm, mergePolicyId=a["id"])
        self.assertEqual(kt.get_path(p["entity"], "person.name.firstName"), "Ann")
        r = self.admin.put(MP + "/" + a["id"], policy(attr="dataSetPrecedence", order=[extra]))
        self.assertProblem(r, 400)
        # it survives a restart
        self.server.restart()
        self.assertEqual(self.admin.get(MP + "/" + b["id"]).json["attributeMerge"]["order"], [fx.loyalty])
        self.assertEqual(self.admin.get(MP + "/" + a["id"] + "?version=1").json["version"], 1)

    def test_bulk_get(self):
        a = self.create(policy())
        b = self.create(policy())
        r = self.admin.post(MP + "/bulk-get", {"ids": [{"id": a["id"]}, {"id": b["id"]}, {"id": "nope"}]})
        self.assertStatus(r, 207)
        self.assertEqual(set(r.json["results"]), {a["id"], b["id"]})
        self.assertEqual(r.json["results"][a["id"]], a)
        self.assertIn("nope", r.json.get("errors", {}))
        self.assertProblem(self.admin.post(MP + "/bulk-get", {"ids": []}), 400)
        self.assertProblem(self.admin.post(MP + "/bulk-get", {"ids": [{"x": 1}]}), 400)

    def test_survives_restart(self):
        p = self.create(policy("persisted", attr="dataSetPrecedence", order=[self.fx.crm], graph="none"))
        self.server.restart()
        r = self.admin.get(MP + "/" + p["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json, p)

    def test_viewer_cannot_write(self):
        r = self.admin.post(kt.Client.KEYS, {"name": "viewer", "role": "viewer", "sandboxes": ["*"]})
        self.assertStatus(r, 200, 201)
        viewer = self.admin.with_key(r.json.get("secret") or r.json.get("key"))
        self.assertStatus(viewer.get(MP), 200)
        self.assertProblem(viewer.post(MP, policy()), 403)


class MergePolicyReadTest(kt.KithTestCase):
    fixture_needed = True

    def mp(self, **kw):
        r = self.admin.post(MP, policy(**kw))
        self.assertStatus(r, 201)
        return r.json["id"]

    def two_fragments(self):
        """A CRM record (older) and a loyalty record (newer) of one person, linked by CRMID."""
        fx = self.fx
        crm, phone = kt.uid("crm"), "+1555" + kt.uid()[:7]
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0),
                          "person": {"name": {"firstName": "Old"}},
                          "_acme": {"tier": "gold", "tags": ["a", "b", "c"]}}, fx.crm)
        fx.ingest_record({"identityMap": kt.idmap(("Phone", phone), ("CRMID", crm), primary=0),
                          "person": {"name": {"firstName": "New", "lastName": "L"}},
                          "_acme": {"tier": "silver", "tags": ["z"]}}, fx.loyalty)
        return crm, phone

    def test_timestamp_ordered_default(self):
        crm, _ = self.two_fragments()
        p = self.admin.profile("CRMID", crm)
        self.assertEqual(kt.get_path(p["entity"], "person.name.firstName"), "New")
        self.assertEqual(kt.get_path(p["entity"], "_acme.tags"), ["z"], "arrays are atomic")
        mp = self.mp()
        q = self.admin.profile("CRMID", crm, mergePolicyId=mp)
        self.assertEqual(q["entity"], p["entity"])
        self.assertEqual(q["mergePolicy"], {"id": mp})

    def test_dataset_precedence(self):
        crm, phone = self.two_fragments()
        mp = self.mp(attr="dataSetPrecedence", order=[self.fx.crm, self.fx.loyalty])
        p = self.admin.profile("Phone", phone, mergePolicyId=mp)
        ent = p["entity"]
        self.assertEqual(kt.get_path(ent, "person.name.firstName"), "Old", "crm outranks the newer loyalty")
        self.assertEqual(kt.get_path(ent, "person.name.lastName"), "L", "leaves only loyalty has still merge")
        self.assertEqual(kt.get_path(ent, "_acme.tags"), ["a", "b", "c"])
        only = self.mp(attr="dataSetPrecedence", order=[self.fx.crm])
        p = self.admin.profile("Phone", phone, mergePolicyId=only)
        self.assertIsNone(kt.get_path(p["entity"], "person.name.lastName"), "unlisted datasets are not merged")
        self.assertEqual(p["sources"], [self.fx.crm])

    def test_dataset_precedence_events(self):
        fx = self.fx
        crm = kt.uid("crm")
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0)}, fx.crm)
        fx.ingest_event(kt.web_event([("CRMID", crm)], T0, page="p1"))
        without = self.mp(attr="dataSetPrecedence", order=[fx.crm])
        with_web = self.mp(attr="dataSetPrecedence", order=[fx.crm, fx.web])
        r = self.admin.events("CRMID", crm, mergePolicyId=without)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["children"], [])
        r = self.admin.events("CRMID", crm, mergePolicyId=with_web)
        self.assertEqual(len(r.json["children"]), 1)

    def test_identity_graph_none(self):
        fx = self.fx
        crm, phone = self.two_fragments()
        ecid = kt.ecid()
        fx.ingest_event(kt.web_event([("ECID", ecid), ("CRMID", crm)], T0, page="linked"))
        fx.ingest_event(kt.web_event([("CRMID", crm), ("ECID", ecid)], T0 + 1, page="own"))
        none = self.mp(graph="none")
        p = self.admin.profile("CRMID", crm, mergePolicyId=none)
        self.assertEqual(kt.get_path(p["entity"], "person.name.firstName"), "Old")
        self.assertIsNone(kt.get_path(p["entity"], "person.name.lastName"))
        self.assertEqual(kt.identities_of(p), {("crmid", crm)})
        builtin = self.admin.profile("CRMID", crm, mergePolicyId=BUILTIN)
        self.assertEqual(builtin["entity"], p["entity"], "the built-in policy: timestampOrdered, graph none")
        self.assertEqual(kt.identities_of(builtin), {("crmid", crm)})
        pdg = self.admin.profile("CRMID", crm)
        self.assertIn(("phone", phone), kt.identities_of(pdg))
        r = self.admin.events("CRMID", crm, mergePolicyId=none)
        self.assertEqual([c["entity"]["web"]["webPageDetails"]["name"] for c in r.json["children"]], ["own"])
        r = self.admin.events("CRMID", crm)
        self.assertEqual(len(r.json["children"]), 2)

    def test_last_updated_date_across_datasets(self):
        api = self.admin
        schema = api.create_schema(kt.uid("Audited "), kt.PROFILE_CLASS, [kt.FG_PERSON, kt.FG_IDENTITYMAP, FG_AUDIT])
        ds1 = api.create_dataset(schema["$id"])
        ds2 = api.create_dataset(schema["$id"])
        crm = kt.uid("crm")

        def send(ds, name, updated):
            ent = {"identityMap": kt.idmap(("CRMID", crm), primary=0), "person": {"name": {"firstName": name}},
                   "extSourceSystemAudit": {"lastUpdatedDate": updated}}
            r = api.send(self.fx.inlet, kt.envelope(schema["$id"], ds, ent))
            self.assertStatus(r, 200)

        send(ds1, "Newer", "2024-01-02T00:00:00Z")
        send(ds2, "Older", "2024-01-01T00:00:00Z")  # arrives last, but is older
        self.assertEqual(kt.get_path(api.profile("CRMID", crm)["entity"], "person.name.firstName"), "Newer")
        mp = self.mp()
        self.assertEqual(kt.get_path(api.profile("CRMID", crm, mergePolicyId=mp)["entity"],
                                     "person.name.firstName"), "Newer")

    def test_unknown_policy_on_reads(self):
        crm, _ = self.two_fragments()
        self.assertProblem(self.admin.lookup("CRMID", crm, mergePolicyId="nope"), 404)
        self.assertProblem(self.admin.events("CRMID", crm, mergePolicyId="nope"), 404)
        r = self.admin.post(kt.Client.ENTITIES, {"schema": {"name": "_xdm.context.profile"}, "mergePolicyId": "nope",
                                            "identities": [{"entityId": crm, "entityIdNS": {"code": "CRMID"}}]})
        self.assertProblem(r, 404)
        r = self.admin.delete(kt.Client.ENTITIES + "?" + kt.qs(schema__name="_xdm.context.profile", entityId=crm,
                                                          entityIdNS="CRMID", mergePolicyId="nope"))
        self.assertProblem(r, 404)
        self.assertEqual(kt.get_path(self.admin.profile("CRMID", crm)["entity"], "person.name.firstName"), "New")
        ev = self.mp(cls="_xdm.context.experienceevent")
        self.assertProblem(self.admin.lookup("CRMID", crm, mergePolicyId=ev), 400)

    def test_moving_the_default(self):
        sb = kt.uid("mpsb")
        self.assertStatus(self.admin.post(kt.Client.SANDBOXES, {"name": sb, "title": sb, "type": "development"}), 200, 201)
        api = self.admin.in_sandbox(sb)
        fx = kt.Fixture(api)
        crm = kt.uid("crm")
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0), "_acme": {"tier": "gold"}}, fx.crm)
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0), "_acme": {"tier": "silver"}}, fx.loyalty)
        self.assertEqual(kt.get_path(api.profile("CRMID", crm)["entity"], "_acme.tier"), "silver")
        r = api.post(MP, policy("crm-first", attr="dataSetPrecedence", order=[fx.crm, fx.loyalty], default=True))
        self.assertStatus(r, 201)
        crm_first = r.json["id"]
        p = api.profile("CRMID", crm)
        self.assertEqual(kt.get_path(p["entity"], "_acme.tier"), "gold", "lookups follow the new default")
        self.assertEqual(p["mergePolicy"]["id"], crm_first)
        r = api.post(MP, policy("newest", default=True))
        self.assertStatus(r, 201)
        self.assertEqual(kt.get_path(api.profile("CRMID", crm)["entity"], "_acme.tier"), "silver")
        self.assertEqual(kt.get_path(api.profile("CRMID", crm, mergePolicyId=crm_first)["entity"], "_acme.tier"), "gold")
        # The default gone: kith's system default (timestampOrdered, pdg).
        self.assertStatus(api.delete(MP + "/" + r.json["id"]), 200)
        self.assertEqual(kt.get_path(api.profile("CRMID", crm)["entity"], "_acme.tier"), "silver")


class DefaultMaterialisedTest(kt.KithTestCase):
    """The default policy's union view stays materialised (issue 4 item 4): when the default moves to
    another policy, every view of the sandbox is re-materialised under it in the background (lookups
    merge at read time until a view is redone), new writes materialise under it, a restart keeps
    it, and the streaming segments that use the default are re-evaluated."""

    def metric(self, srv, name):
        for line in srv.raw("GET", "/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        self.fail("no metric " + name)

    def wait_remat(self, srv, timeout=30.0):
        deadline = time.time() + timeout
        while self.metric(srv, "kith_views_remat_pending") != 0:
            self.assertLess(time.time(), deadline, "re-materialisation did not finish")
            time.sleep(0.05)

    def tiers(self, api, people):
        return {kt.get_path(api.profile("CRMID", crm)["entity"], "_acme.tier") for crm in people}

    def status(self, api, crm, seg):
        prof = api.profile("CRMID", crm)
        return (kt.get_path(prof, "entity.segmentMembership.ups", {}) or {}).get(seg, {}).get("status")

    def wait_status(self, api, crm, seg, want, timeout=30.0):
        deadline = time.time() + timeout
        while self.status(api, crm, seg) not in want:
            self.assertLess(time.time(), deadline, "segment status never became %r" % (want,))
            time.sleep(0.05)

    def test_default_view_follows_the_default(self):
        srv = self.new_server()
        api = srv.api()
        fx = kt.Fixture(api)
        people = [kt.uid("crm") for _ in range(30)]
        for crm in people:  # crm says gold, the newer loyalty record says silver
            fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0), "_acme": {"tier": "gold"}}, fx.crm)
            fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0), "_acme": {"tier": "silver"}},
                             fx.loyalty)
        r = api.post("/data/core/ups/segment/definitions",
                     {"name": kt.uid("gold-"), "schema": {"name": "_xdm.context.profile"},
                      "expression": {"type": "PQL", "format": "pql/text", "value": '_acme.tier = "gold"'}})
        self.assertStatus(r, 201)
        seg = r.json["id"]
        kt.wait_backfill(api, r.json)
        self.assertIsNone(self.status(api, people[0], seg))
        rt = self.metric(srv, "kith_profile_read_time_merges_total")
        self.assertEqual(self.tiers(api, people), {"silver"})
        self.assertEqual(self.metric(srv, "kith_profile_read_time_merges_total"), rt, "served from the views")

        done = self.metric(srv, "kith_views_rematerialised_total")
        r = api.post(MP, policy("crm-first", attr="dataSetPrecedence", order=[fx.crm, fx.loyalty], default=True))
        self.assertStatus(r, 201)
        self.assertEqual(self.tiers(api, people), {"gold"}, "right at once (read time until redone)")
        self.wait_remat(srv)
        self.assertGreaterEqual(self.metric(srv, "kith_views_rematerialised_total") - done, len(people))
        rt = self.metric(srv, "kith_profile_read_time_merges_total")
        self.assertEqual(self.tiers(api, people), {"gold"})
        self.assertEqual(self.metric(srv, "kith_profile_read_time_merges_total"), rt,
                         "after the re-materialisation the default is served from the views")
        # A new write materialises under the default: crm still outranks the newer loyalty record.
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", people[1]), primary=0), "_acme": {"tier": "bronze"}},
                         fx.loyalty)
        self.assertEqual(self.tiers(api, people[1:2]), {"gold"})
        self.assertEqual(self.metric(srv, "kith_profile_read_time_merges_total"), rt)
        # The segment on the default is re-evaluated under the new default.
        self.wait_status(api, people[0], seg, ("realized",))

        srv.restart()
        self.assertEqual(self.tiers(api, people), {"gold"})
        self.assertEqual(self.metric(srv, "kith_profile_read_time_merges_total"), 0, "views survive a restart")

        r = api.post(MP, policy("newest", default=True))  # the default moves back to timestampOrdered
        self.assertStatus(r, 201)
        self.wait_remat(srv)
        rt = self.metric(srv, "kith_profile_read_time_merges_total")
        self.assertEqual(self.tiers(api, people[2:]), {"silver"})
        self.assertEqual(self.tiers(api, people[1:2]), {"bronze"})
        self.assertEqual(self.metric(srv, "kith_profile_read_time_merges_total"), rt)
        self.wait_status(api, people[0], seg, ("exited",))
        # A change that does not alter what the default merges re-materialises nothing.
        done = self.metric(srv, "kith_views_rematerialised_total")
        self.assertStatus(api.patch(MP + "/" + r.json["id"], {"op": "replace", "path": "/name", "value": "n2"}), 200)
        self.wait_remat(srv)
        self.assertEqual(self.metric(srv, "kith_views_rematerialised_total"), done)


if __name__ == "__main__":
    kt.main()
