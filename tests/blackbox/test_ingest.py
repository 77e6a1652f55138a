"""Ingestion: inlets, /collection, /collection/batch, validation errors, limits, import batches and
`kith import` (API.md section 3, CONTRACT-NOTES)."""

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

C = kt.Client


class StrictFixture(kt.Fixture):
    """Like kt.Fixture, but the profile schema requires `_acme` and `_acme.crmId`, and `_acme.crmId`
    is a primary CRMID identity by descriptor."""

    def __init__(self, api):
        self.api = api
        props = copy.deepcopy(kt.ACME_PROFILE_PROPS)
        props["_acme"]["required"] = ["crmId"]
        self.profile_schema = api.create_schema(
            kt.uid("Strict customers "), kt.PROFILE_CLASS, [kt.FG_PERSON, kt.FG_PERSONAL, kt.FG_IDENTITYMAP],
            props, required=["_acme"])
        self.profile_schema_id = self.profile_schema["$id"]
        api.create_descriptor(self.profile_schema_id, "/_acme/crmId", "CRMID", primary=True)
        self.event_schema = api.create_schema(
            kt.uid("Strict events "), kt.EVENT_CLASS, [kt.FG_WEB, kt.FG_COMMERCE, kt.FG_IDENTITYMAP],
            kt.ACME_EVENT_PROPS)
        self.event_schema_id = self.event_schema["$id"]
        self.crm = api.create_dataset(self.profile_schema_id, kt.uid("crm-"))
        self.loyalty = api.create_dataset(self.profile_schema_id, kt.uid("loyalty-"))
        self.web = api.create_dataset(self.event_schema_id, kt.uid("web-"))
        self.inlet = api.create_inlet(kt.uid("inlet-"))


def base_record(email, crm):
    return {"identityMap": kt.idmap(("Email", email)),
            "_acme": {"crmId": crm, "tier": "gold", "points": 10, "code": "ab12",
                      "joined": "2021-03-04T05:06:07Z", "birthday": "1990-05-06",
                      "tags": ["a", "b"], "prefs": {"color": "red"}, "attrs": {"k": "v"}},
            "person": {"name": {"firstName": "Val", "lastName": "Id"}},
            "personalEmail": {"address": email}}


def snapshot(api, email):
    r = api.lookup("Email", email)
    if r.status != 200:
        raise AssertionError("snapshot lookup failed: %r" % r)
    p = kt.profile_of(r)
    return {"entity": p["entity"], "identities": sorted(kt.identities_of(p)),
            "sources": sorted(p.get("sources") or [])}


class IngestTest(kt.KithTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fx = StrictFixture(cls.admin)

    def new_profile(self):
        email = kt.uid() + "@ingest.example"
        crm = kt.uid("crm")
        self.fx.ingest_record(base_record(email, crm))
        return email, crm, snapshot(self.admin, email)

    # --- inlets and the happy path ---------------------------------------------------------------

    def test_inlet_creation(self):
        r = self.admin.post(C.CONNECTIONS, {"name": kt.uid("inlet "), "authenticationRequired": False})
        self.assertStatus(r, 201)
        j = r.json
        for f in ("id", "inletId", "inletUrl", "authenticationRequired"):
            self.assertIn(f, j, "inlet create response lacks %s: %r" % (f, r))
        self.assertEqual(j["inletUrl"], "/collection/" + j["inletId"])
        self.assertIs(j["authenticationRequired"], False)
        # AEP's form: auth.params.authenticationRequired.
        r = self.admin.post(C.CONNECTIONS, {
            "name": kt.uid("aep inlet "), "auth": {"specName": "Streaming Connection", "params": {
                "sourceId": "x", "dataType": "xdm", "name": "x", "authenticationRequired": True}},
            "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"}})
        self.assertStatus(r, 201)
        self.assertIs(r.json.get("authenticationRequired"), True)
        inlet = r.json["inletId"]
        env = self.fx.record(base_record(kt.uid() + "@auth.example", kt.uid("crm")))
        self.assertProblem(self.admin.send(inlet, env), 401)
        self.assertStatus(self.admin.send(inlet, env, key=self.server.admin_key), 200)

    def test_valid_record_200(self):
        email = kt.uid() + "@ok.example"
        crm = kt.uid("crm")
        t0 = int(time.time() * 1000)
        r = self.admin.send(self.fx.inlet, self.fx.record(base_record(email, crm)))
        self.assertStatus(r, 200)
        j = r.json
        self.assertEqual(j.get("inletId"), self.fx.inlet)
        self.assertIsInstance(j.get("xactionId"), str)
        self.assertTrue(j["xactionId"])
        self.assertIsInstance(j.get("receivedTimeMs"), int)
        self.assertLess(abs(j["receivedTimeMs"] - t0), 300000, "receivedTimeMs must be epoch ms")
        # Visible at once, by the identityMap identity and by the descriptor identity.
        p = self.admin.profile("Email", email)
        self.assertEqual(kt.get_path(p["entity"], "_acme.tier"), "gold")
        self.assertIn(("crmid", crm), kt.identities_of(p))
        p2 = self.admin.profile("CRMID", crm)
        self.assertEqual(kt.get_path(p2["entity"], "person.name.firstName"), "Val")

    def test_valid_event_200(self):
        ecid = kt.ecid()
        r = self.admin.send(self.fx.inlet, self.fx.event(kt.web_event([("ECID", ecid)], 1700000000000)))
        self.assertStatus(r, 200)
        ev = self.admin.events("ECID", ecid)
        self.assertStatus(ev, 200)
        self.assertEqual(len(ev.json["children"]), 1)

    def test_sync_validation(self):
        email = kt.uid() + "@sync.example"
        r = self.admin.send(self.fx.inlet, self.fx.record(base_record(email, kt.uid("crm"))), sync=True)
        self.assertStatus(r, 200)
        self.assertStatus(self.admin.lookup("Email", email), 200)
        bad = base_record(kt.uid() + "@sync.example", kt.uid("crm"))
        bad["_acme"]["points"] = "many"
        r = self.admin.send(self.fx.inlet, self.fx.record(bad), sync=True)
        self.assertErrorPath(r, "/_acme/points")
        self.assertStatus(self.admin.lookup("Email", bad["personalEmail"]["address"]), 404)

    # --- invalid entities: every kind names its path and stores nothing ----------------------------

    def check_rejected(self, mutate, path, name=None, prefix=False, codes=(400,)):
        email, crm, before = self.new_profile()
        ent = base_record(email, crm)
        fresh = kt.ecid()
        ent["identityMap"]["ECID"] = [{"id": fresh}]
        ent["person"]["name"]["firstName"] = "Changed"
        mutate(ent)
        r = self.admin.send(self.fx.inlet, self.fx.record(ent))
        if codes == (400,):
            self.assertErrorPath(r, path, name=name, prefix=prefix)
        else:
            self.assertProblem(r, *codes)
            if r.status == 400 and path:
                self.assertErrorPath(r, path, name=name, prefix=prefix)
        self.assertEqual(snapshot(self.admin, email), before, "a rejected record changed the profile")
        self.assertStatus(self.admin.lookup("ECID", fresh), 404)
        return r

    def test_wrong_type(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("points", "ten"), "/_acme/points")

    def test_wrong_type_nested_standard_field(self):
        self.check_rejected(lambda e: e["person"]["name"].__setitem__("lastName", 42),
                            "/person/name/lastName")

    def test_integer_given_fraction(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("points", 1.5), "/_acme/points")

    def test_boolean_given_string(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("vip", "yes"), "/_acme/vip")

    def test_missing_required(self):
        self.check_rejected(lambda e: e["_acme"].pop("crmId"), "/_acme/crmId", name="crmId")

    def test_missing_required_top_level(self):
        self.check_rejected(lambda e: e.pop("_acme"), "/_acme", name="_acme")

    def test_enum(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("tier", "platinum"), "/_acme/tier")

    def test_minimum(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("points", -1), "/_acme/points")

    def test_maximum(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("points", 1000001), "/_acme/points")

    def test_max_length(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("code", "waytoolongcode"), "/_acme/code")

    def test_min_length(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("code", "a"), "/_acme/code")

    def test_bad_date_time(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("joined", "yesterday"), "/_acme/joined")
        self.check_rejected(lambda e: e["_acme"].__setitem__("joined", "2021-13-45T99:00:00Z"),
                            "/_acme/joined")

    def test_bad_date(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("birthday", "1990/05/06"), "/_acme/birthday")

    def test_unknown_field(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("bogus", "x"), "/_acme/bogus")

    def test_unknown_top_level_field(self):
        self.check_rejected(lambda e: e.__setitem__("bogusTop", 1), "/bogusTop")

    def test_unknown_nested_field(self):
        self.check_rejected(lambda e: e["_acme"]["prefs"].__setitem__("shade", "x"), "/_acme/prefs/shade")

    def test_null_value(self):
        self.check_rejected(lambda e: e["person"]["name"].__setitem__("lastName", None),
                            "/person/name/lastName")

    def test_array_item_type(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("tags", ["ok", 7]), "/_acme/tags/1")

    def test_map_value_type(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("attrs", {"k": 5}), "/_acme/attrs/k")

    def test_object_given_array(self):
        self.check_rejected(lambda e: e.__setitem__("person", ["x"]), "/person")

    def test_identity_value_too_long(self):
        self.check_rejected(lambda e: e["identityMap"].__setitem__("Phone", [{"id": "1" * 1025}]),
                            "/identityMap/Phone", prefix=True, codes=(400, 413))

    def test_identity_value_1024_ok(self):
        email = kt.uid() + "@long.example"
        ent = base_record(email, kt.uid("crm"))
        v = kt.uid("p") + "9" * (1024 - 13)
        self.assertEqual(len(v), 1024)
        ent["identityMap"]["Phone"] = [{"id": v}]
        self.assertStatus(self.admin.send(self.fx.inlet, self.fx.record(ent)), 200)
        self.assertStatus(self.admin.lookup("Phone", v), 200)

    def test_empty_identity_value(self):
        self.check_rejected(lambda e: e["identityMap"].__setitem__("Phone", [{"id": ""}]),
                            "/identityMap/Phone", prefix=True)

    def test_more_than_20_identities(self):
        def many(e):
            e["identityMap"]["ECID"] = [{"id": kt.ecid()} for _ in range(20)]
        r = self.check_rejected(many, "/identityMap", prefix=True, codes=(400, 413))
        self.assertIn("20", r.text, "the error must name the limit")

    def test_20_identities_ok(self):
        email = kt.uid() + "@twenty.example"
        ent = base_record(email, kt.uid("crm"))  # Email + CRMID by descriptor = 2
        ent["identityMap"]["ECID"] = [{"id": kt.ecid()} for _ in range(18)]
        self.assertStatus(self.admin.send(self.fx.inlet, self.fx.record(ent)), 200)
        p = self.admin.profile("Email", email)
        self.assertEqual(len(kt.identities_of(p)), 20)

    def test_malformed_identity_map(self):
        self.check_rejected(lambda e: e["identityMap"].__setitem__("Phone", {"id": "555"}),
                            "/identityMap/Phone", prefix=True)
        self.check_rejected(lambda e: e["identityMap"].__setitem__("Phone", [{"primary": True}]),
                            "/identityMap/Phone", prefix=True)
        self.check_rejected(lambda e: e["identityMap"].__setitem__("Phone", [{"id": 555}]),
                            "/identityMap/Phone", prefix=True)
        self.check_rejected(lambda e: e.__setitem__("identityMap", ["Email"]), "/identityMap", prefix=True)

    def test_multiple_errors_listed(self):
        def two(e):
            e["_acme"]["points"] = "x"
            e["_acme"]["tier"] = "platinum"
        r = self.check_rejected(two, "/_acme/points")
        self.assertErrorPath(r, "/_acme/tier")

    def test_event_without_id_or_timestamp(self):
        ecid = kt.ecid()
        self.fx.ingest_event(kt.web_event([("ECID", ecid)], 1700000000000))
        cases = [("_id", lambda e: e.pop("_id"), "/_id"),
                 ("_id", lambda e: e.__setitem__("_id", ""), "/_id"),
                 ("timestamp", lambda e: e.pop("timestamp"), "/timestamp"),
                 ("timestamp", lambda e: e.__setitem__("timestamp", "2023-11-14"), "/timestamp"),
                 ("timestamp", lambda e: e.__setitem__("timestamp", "not a time"), "/timestamp"),
                 ("eventType", lambda e: e.__setitem__("eventType", 5), "/eventType")]
        for name, mutate, path in cases:
            ent = kt.web_event([("ECID", ecid)], 1700000005000)
            mutate(ent)
            r = self.admin.send(self.fx.inlet, self.fx.event(ent))
            self.assertErrorPath(r, path, name=name)
        ev = self.admin.events("ECID", ecid)
        self.assertEqual(len(ev.json["children"]), 1, "rejected events were stored: %r" % ev)

    def test_record_too_large(self):
        self.check_rejected(lambda e: e["_acme"].__setitem__("note", "x" * 150000), None,
                            codes=(400, 413))

    def test_event_too_large(self):
        ecid = kt.ecid()
        ent = kt.web_event([("ECID", ecid)], 1700000000000, campaignId="c" * 12000)
        r = self.admin.send(self.fx.inlet, self.fx.event(ent))
        self.assertProblem(r, 400, 413)
        self.assertStatus(self.admin.lookup("ECID", ecid), 404)

    # --- envelope errors -----------------------------------------------------------------------

    def test_malformed_json_names_line_and_column(self):
        body = b'{"header": {\n  "datasetId": "x",\n  "schemaRef": ,\n}}'
        r = self.admin.request("POST", "/collection/" + self.fx.inlet, data=body, key=None)
        j = self.assertProblem(r, 400)
        detail = j.get("detail", "")
        self.assertRegex(detail, r"(?i)line\D{0,3}3\b", "detail must name line 3: %r" % r)
        self.assertRegex(detail, r"(?i)col(umn)?\D{0,3}\d+", "detail must name the column: %r" % r)

    def test_not_an_object(self):
        for body in (b"[]", b'"envelope"', b"42", b"", b"{}", b'{"header": {}, "body": 5}'):
            r = self.admin.request("POST", "/collection/" + self.fx.inlet, data=body, key=None)
            self.assertProblem(r, 400)

    def test_unknown_inlet_404(self):
        env = self.fx.record(base_record(kt.uid() + "@x.example", kt.uid("crm")))
        r = self.admin.send("no-such-inlet-" + kt.uid(), env)
        self.assertProblem(r, 404)
        r = self.admin.send_batch("no-such-inlet-" + kt.uid(), [env])
        self.assertProblem(r, 404)

    def test_unknown_dataset_400(self):
        email = kt.uid() + "@nods.example"
        env = kt.envelope(self.fx.profile_schema_id, "5e30d7" + kt.uid(), base_record(email, kt.uid("crm")))
        r = self.admin.send(self.fx.inlet, env)
        self.assertProblem(r, 400)
        self.assertStatus(self.admin.lookup("Email", email), 404)

    def test_missing_dataset_400(self):
        email = kt.uid() + "@nods.example"
        env = self.fx.record(base_record(email, kt.uid("crm")))
        del env["header"]["datasetId"]
        self.assertProblem(self.admin.send(self.fx.inlet, env), 400)
        self.assertStatus(self.admin.lookup("Email", email), 404)

    def test_schema_ref_mismatch_400(self):
        email = kt.uid() + "@mismatch.example"
        env = kt.envelope(self.fx.event_schema_id, self.fx.crm, base_record(email, kt.uid("crm")))
        self.assertProblem(self.admin.send(self.fx.inlet, env), 400)
        env = kt.envelope("https://ns.adobe.com/kith/schemas/" + "4" * 32, self.fx.crm,
                          base_record(email, kt.uid("crm")))
        self.assertProblem(self.admin.send(self.fx.inlet, env), 400)
        self.assertStatus(self.admin.lookup("Email", email), 404)

    def test_body_over_1mib_413(self):
        email = kt.uid() + "@big.example"
        ent = base_record(email, kt.uid("crm"))
        ent["_acme"]["note"] = "x" * (1024 * 1024 + 100)
        r = self.admin.send(self.fx.inlet, self.fx.record(ent))
        self.assertProblem(r, 413)
        self.assertStatus(self.admin.lookup("Email", email), 404)
        r = self.admin.send_batch(self.fx.inlet, [self.fx.record(ent)])
        self.assertProblem(r, 413)
        self.assertStatus(self.admin.lookup("Email", email), 404)

    def test_deep_nesting_is_4xx_not_crash(self):
        for depth in (100, 100000):
            body = b'{"header": {"datasetId": "x"}, "body": {"xdmEntity": {"_acme": ' + b"[" * depth + \
                b"]" * depth + b"}}}"
            r = self.admin.request("POST", "/collection/" + self.fx.inlet, data=body, key=None)
            self.assertTrue(400 <= r.status < 500, "depth %d: %r" % (depth, r))
        self.assertStatus(self.server.raw("GET", "/livez"), 200)

    def test_json_depth_limit(self):
        sch = self.admin.create_schema(kt.uid("Free "), kt.PROFILE_CLASS, [kt.FG_IDENTITYMAP], {
            "_acme": {"type": "object", "properties": {
                "free": {"type": "object", "additionalProperties": True}}}})
        ds = self.admin.create_dataset(sch["$id"])

        def nested(depth):
            return '{"n": ' * depth + '{}' + '}' * depth

        for depth, ok in ((20, True), (70, False), (5000, False)):
            email = kt.uid() + "@depth.example"
            body = ('{"header": {"schemaRef": {"id": "%s"}, "datasetId": "%s"}, "body": {"xdmMeta": '
                    '{"schemaRef": {"id": "%s"}}, "xdmEntity": {"identityMap": {"Email": [{"id": "%s"}]}, '
                    '"_acme": {"free": %s}}}}' % (sch["$id"], ds, sch["$id"], email, nested(depth)))
            r = self.admin.request("POST", "/collection/" + self.fx.inlet, data=body.encode(), key=None)
            if ok:
                self.assertStatus(r, 200)
                self.assertStatus(self.admin.lookup("Email", email), 200)
            else:
                self.assertProblem(r, 400, 413)
                self.assertRegex(r.text, r"(?i)depth|64", "the error must name the depth limit: %r" % r)
                self.assertStatus(self.admin.lookup("Email", email), 404)

    def test_gzip_body_or_clear_error(self):
        import gzip
        email = kt.uid() + "@gzip.example"
        data = gzip.compress(json.dumps(self.fx.record(base_record(email, kt.uid("crm")))).encode())
        r = self.admin.request("POST", "/collection/" + self.fx.inlet, data=data, key=None,
                               headers={"Content-Encoding": "gzip"})
        self.assertTrue(r.status == 200 or 400 <= r.status < 500, "gzip body: %r" % r)
        self.assertEqual(self.admin.lookup("Email", email).status, 200 if r.status == 200 else 404)

    def test_mutated_input_never_5xx(self):
        """A cheap fuzz pass: truncations and byte flips of a valid envelope are 2xx or 4xx, never
        a 5xx or a crash."""
        import random
        rnd = random.Random(1234)
        good = json.dumps(self.fx.record(base_record(kt.uid() + "@fuzz.example", kt.uid("crm")))).encode()
        bodies = [good[:n] for n in range(0, len(good), max(1, len(good) // 40))]
        for _ in range(150):
            b = bytearray(good)
            for _ in range(rnd.randint(1, 4)):
                b[rnd.randrange(len(b))] = rnd.choice(b'{}[]",:0-9eE.\\ntrufalse\x00\xff')
            bodies.append(bytes(b))
        for body in bodies:
            for path in ("/collection/" + self.fx.inlet, "/collection/batch/" + self.fx.inlet):
                r = self.admin.request("POST", path, data=body, key=None)
                self.assertLess(r.status, 500, "5xx for %r: %r" % (body[:200], r))
        self.assertStatus(self.server.raw("GET", "/livez"), 200)

    def test_odd_json_values_are_4xx(self):
        email, crm, before = self.new_profile()
        odd = [b'{"header": {"datasetId": "x"}, "body": {"xdmEntity": {"_acme": {"points": 1e400}}}}',
               b'{"header": {"datasetId": "x"}, "body": {"xdmEntity": {"_acme": {"points": 99999999999999999999999}}}}',
               b'{"header": {"datasetId": "x"}, "body": {"xdmEntity": {"_acme": {"note": "\\ud800"}}}}',
               b'{"header": {"datasetId": "x"}, "body": {"xdmEntity": {"_acme": {"note": "\xff\xfe"}}}}',
               b'{"a": 1, "a": 2}', b'\xef\xbb\xbf{}', b'{"header": {}} trailing', b'\x00']
        for body in odd:
            r = self.admin.request("POST", "/collection/" + self.fx.inlet, data=body, key=None)
            self.assertTrue(400 <= r.status < 500, "%r: %r" % (body[:60], r))
        # The same values inside a valid envelope: the record is rejected, the profile unchanged.
        for points in ("1e400", "99999999999999999999999", "1.0e2"):
            ent = base_record(email, crm)
            raw = json.dumps(self.fx.record(ent)).replace('"points": 10', '"points": ' + points)
            r = self.admin.request("POST", "/collection/" + self.fx.inlet, data=raw.encode(), key=None)
            self.assertTrue(r.status == 200 or r.status == 400, "points=%s: %r" % (points, r))
            if r.status == 400:
                self.assertProblem(r, 400)
                self.assertTrue("/_acme/points" in r.text or "line" in r.json.get("detail", ""), "%r" % r)
        self.assertStatus(self.server.raw("GET", "/livez"), 200)

    def test_deleted_dataset_rejects_ingest(self):
        ds = self.admin.create_dataset(self.fx.profile_schema_id, kt.uid("gone-"))
        self.assertStatus(self.admin.delete(C.DATASETS + "/" + ds), 200, 202, 204)
        email = kt.uid() + "@gone.example"
        r = self.admin.send(self.fx.inlet, self.fx.record(base_record(email, kt.uid("crm")), ds))
        self.assertProblem(r, 400, 404)
        self.assertStatus(self.admin.lookup("Email", email), 404)

    # --- /collection/batch -----------------------------------------------------------------------

    def test_batch_mixed(self):
        e1, e2 = kt.uid() + "@b1.example", kt.uid() + "@b2.example"
        bad_email, bad2_email = kt.uid() + "@bad.example", kt.uid() + "@bad2.example"
        bad = base_record(bad_email, kt.uid("crm"))
        bad["_acme"]["tier"] = "platinum"
        ecid = kt.ecid()
        msgs = [self.fx.record(base_record(e1, kt.uid("crm"))),
                self.fx.record(bad),
                self.fx.record(base_record(e2, kt.uid("crm"))),
                kt.envelope(self.fx.profile_schema_id, "nodataset" + kt.uid(),
                            base_record(bad2_email, kt.uid("crm"))),
                self.fx.event(kt.web_event([("ECID", ecid)], 1700000000000))]
        r = self.admin.send_batch(self.fx.inlet, msgs)
        self.assertStatus(r, 207)
        j = r.json
        self.assertEqual(j.get("inletId"), self.fx.inlet)
        self.assertIn("batchId", j)
        self.assertIsInstance(j.get("receivedTimeMs"), int)
        resp = j.get("responses")
        self.assertIsInstance(resp, list)
        self.assertEqual(len(resp), len(msgs), "one response per message: %r" % r)
        for i in (0, 2, 4):
            self.assertIsInstance(resp[i].get("xactionId"), str, "message %d: %r" % (i, resp[i]))
            self.assertIn(resp[i].get("statusCode", 200), (200, 201), "message %d: %r" % (i, resp[i]))
        self.assertEqual(resp[1].get("statusCode"), 400)
        self.assertIn("message", resp[1])
        paths = [e.get("path") for e in resp[1].get("errors", [])]
        self.assertIn("/_acme/tier", paths, "batch errors must name the path: %r" % resp[1])
        self.assertTrue(400 <= int(resp[3].get("statusCode", 0)) < 500, "unknown dataset: %r" % resp[3])
        self.assertIn("message", resp[3])
        self.assertStatus(self.admin.lookup("Email", e1), 200)
        self.assertStatus(self.admin.lookup("Email", e2), 200)
        self.assertStatus(self.admin.lookup("ECID", ecid), 200)
        self.assertStatus(self.admin.lookup("Email", bad_email), 404)
        self.assertStatus(self.admin.lookup("Email", bad2_email), 404)

    def test_batch_bad_shapes(self):
        for body in (b'{"messages": 5}', b'{"nomessages": []}', b'[1, 2]', b'{"messages": [1,'):
            r = self.admin.request("POST", "/collection/batch/" + self.fx.inlet, data=body, key=None)
            self.assertProblem(r, 400)

    def test_batch_non_object_message(self):
        email = kt.uid() + "@bn.example"
        r = self.admin.send_batch(self.fx.inlet, [42, self.fx.record(base_record(email, kt.uid("crm")))])
        self.assertStatus(r, 207)
        resp = r.json["responses"]
        self.assertEqual(len(resp), 2)
        self.assertEqual(resp[0].get("statusCode"), 400)
        self.assertIn("xactionId", resp[1])
        self.assertStatus(self.admin.lookup("Email", email), 200)

    # --- import batches --------------------------------------------------------------------------

    def import_batch(self, dataset, lines, api=None):
        api = api or self.admin
        r = api.post("/data/foundation/import/batches", {"datasetId": dataset,
                                                         "inputFormat": {"format": "json"}})
        self.assertStatus(r, 201)
        bid = r.json.get("id")
        self.assertTrue(bid, "batch create must return an id: %r" % r)
        data = "\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n"
        r = api.request("PUT", "/data/foundation/import/batches/%s/datasets/%s/files/part-0.json"
                        % (bid, dataset), data=data.encode(), content_type="application/octet-stream")
        self.assertStatus(r, 200, 201)
        r = api.post("/data/foundation/import/batches/%s?action=COMPLETE" % bid)
        self.assertStatus(r, 200, 202, 204)
        deadline = time.time() + 60
        while True:
            r = api.get("/data/foundation/catalog/batches/" + bid)
            self.assertStatus(r, 200)
            self.assertIn(bid, r.json, "catalog batch is keyed by its id: %r" % r)
            b = r.json[bid]
            if b.get("status") in ("success", "failed"):
                break
            self.assertIn(b.get("status"), ("loading", "processing", "queued", "staging"), "%r" % r)
            if time.time() > deadline:
                self.fail("batch not finished in 60 s: %r" % r)
            time.sleep(0.1)
        self.assertIn({"type": "dataSet", "id": dataset},
                      [{"type": o.get("type"), "id": o.get("id")} for o in b.get("relatedObjects", [])])
        return bid, b

    def test_import_batch_all_good(self):
        emails = [kt.uid() + "@imp.example" for _ in range(5)]
        bid, b = self.import_batch(self.fx.crm, [base_record(e, kt.uid("crm")) for e in emails])
        self.assertEqual(b["status"], "success")
        self.assertEqual(b["metrics"]["recordsRead"], 5)
        self.assertEqual(b["metrics"]["recordsWritten"], 5)
        self.assertEqual(b["metrics"]["recordsFailed"], 0)
        for e in emails:
            self.assertStatus(self.admin.lookup("Email", e), 200)

    def test_import_batch_per_record_errors(self):
        good1, good2 = kt.uid() + "@imp1.example", kt.uid() + "@imp2.example"
        badmail = kt.uid() + "@impbad.example"
        bad = base_record(badmail, kt.uid("crm"))
        bad["_acme"]["points"] = "lots"
        lines = [base_record(good1, kt.uid("crm")), bad, '{"broken": ', base_record(good2, kt.uid("crm"))]
        bid, b = self.import_batch(self.fx.crm, lines)
        self.assertIn(b["status"], ("success", "failed"))
        m = b["metrics"]
        self.assertEqual(m["recordsRead"], 4)
        self.assertEqual(m["recordsWritten"], 2)
        self.assertEqual(m["recordsFailed"], 2)
        errs = {e.get("line"): e for e in b.get("errors", [])}
        self.assertIn(2, errs, "per-record error must name line 2: %r" % b)
        self.assertIn(3, errs, "per-record error must name line 3: %r" % b)
        self.assertEqual(str(errs[2].get("code")), "400")
        self.assertIn("/_acme/points", [e.get("path") for e in errs[2].get("errors", [])])
        self.assertTrue(errs[3].get("description"))
        self.assertStatus(self.admin.lookup("Email", good1), 200)
        self.assertStatus(self.admin.lookup("Email", good2), 200)
        self.assertStatus(self.admin.lookup("Email", badmail), 404)

    def test_import_events(self):
        ecid = kt.ecid()
        evs = [kt.web_event([("ECID", ecid)], 1700000000000 + i * 1000) for i in range(3)]
        bid, b = self.import_batch(self.fx.web, evs)
        self.assertEqual(b["status"], "success")
        r = self.admin.events("ECID", ecid)
        self.assertStatus(r, 200)
        self.assertEqual([c["entityId"] for c in r.json["children"]], [e["_id"] for e in evs])

    def test_import_batch_after_complete(self):
        bid, b = self.import_batch(self.fx.crm, [base_record(kt.uid() + "@ac.example", kt.uid("crm"))])
        r = self.admin.request("PUT", "/data/foundation/import/batches/%s/datasets/%s/files/late.json"
                               % (bid, self.fx.crm), data=b"{}\n", content_type="application/octet-stream")
        self.assertTrue(400 <= r.status < 500, "upload into a finished batch: %r" % r)

    def test_import_file_dataset_mismatch(self):
        r = self.admin.post("/data/foundation/import/batches", {"datasetId": self.fx.crm,
                                                                "inputFormat": {"format": "json"}})
        self.assertStatus(r, 201)
        bid = r.json["id"]
        r = self.admin.request("PUT", "/data/foundation/import/batches/%s/datasets/%s/files/x.json"
                               % (bid, self.fx.web), data=b"{}\n", content_type="application/octet-stream")
        self.assertTrue(400 <= r.status < 500, "file for another dataset than the batch's: %r" % r)

    def test_import_unknown_dataset(self):
        r = self.admin.post("/data/foundation/import/batches", {"datasetId": "nods" + kt.uid(),
                                                                "inputFormat": {"format": "json"}})
        self.assertTrue(400 <= r.status < 500, "%r" % r)
        r = self.admin.request("PUT", "/data/foundation/import/batches/%s/datasets/%s/files/x.json"
                               % ("nobatch" + kt.uid(), self.fx.crm), data=b"{}\n",
                               content_type="application/octet-stream")
        self.assertProblem(r, 400, 404)
        self.assertProblem(self.admin.get("/data/foundation/catalog/batches/nobatch" + kt.uid()), 400, 404)

    # --- kith import (CLI) -----------------------------------------------------------------------

    def cli_supports_import(self):
        if not os.path.exists(kt.KITH_CLI):
            return False
        try:
            p = subprocess.run([kt.KITH_CLI, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=20)
        except OSError:
            return False
        return b"import" in p.stdout

    def run_cli(self, path, dataset):
        return subprocess.run([kt.KITH_CLI, "--url", self.server.url, "--key", self.server.admin_key,
                               "--sandbox", "prod", "import", "--dataset", dataset, path],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)

    def test_cli_import(self):
        if not self.cli_supports_import():
            self.skipTest("kith CLI has no import command (yet)")
        emails = [kt.uid() + "@cli.example" for _ in range(4)]
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            for e in emails:
                f.write(json.dumps(base_record(e, kt.uid("crm"))) + "\n")
            path = f.name
        self.addCleanup(os.unlink, path)
        p = self.run_cli(path, self.fx.crm)
        self.assertEqual(p.returncode, 0, p.stdout.decode("utf-8", "replace"))
        for e in emails:
            self.assertStatus(self.admin.lookup("Email", e), 200)

    def test_cli_import_bad_record_names_line(self):
        if not self.cli_supports_import():
            self.skipTest("kith CLI has no import command (yet)")
        good = kt.uid() + "@cligood.example"
        bad = base_record(kt.uid() + "@clibad.example", kt.uid("crm"))
        bad["_acme"]["tier"] = "platinum"
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write(json.dumps(base_record(good, kt.uid("crm"))) + "\n")
            f.write(json.dumps(bad) + "\n")
            path = f.name
        self.addCleanup(os.unlink, path)
        p = self.run_cli(path, self.fx.crm)
        out = p.stdout.decode("utf-8", "replace")
        self.assertNotEqual(p.returncode, 0, "bad record must fail the import: " + out)
        self.assertRegex(out, r"(?i)line\D{0,3}2\b", "the message must name line 2: " + out)
        self.assertStatus(self.admin.lookup("Email", bad["personalEmail"]["address"]), 404)


if __name__ == "__main__":
    kt.main()
