"""pql/json, AEP's tree form of PQL (issue 5, PQL.md item 5; docs/CONTRACT-NOTES.md "pql/json"):
POST /data/core/ups/segment/conversion both ways (AEP's documented example exactly), errors naming the
JSON path at fault, bounds, and segment definitions written as pql/json: evaluated like their text,
stored, read back in either form (?expressionFormat), surviving a restart."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

CONV = "/data/core/ups/segment/conversion"
DEFS = "/data/core/ups/segment/definitions"

# AEP's pql-conversions guide: the request and the expression of its answer.
AEP_TEXT = 'workAddress.country = "US"'
AEP_JSON = ('{"nodeType":"fnApply","fnName":"=","params":[{"nodeType":"fieldLookup","fieldName":'
            '"country","object":{"nodeType":"fieldLookup","fieldName":"workAddress","object":'
            '{"nodeType":"parameterReference","position":1}}},{"nodeType":"literal","literalType":'
            '"String","value":"US"}]}')

SEED = [
    'xEvent[eventType = "commerce.purchases"].max(timestamp) occurs = 7 days before today',
    'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 10000',
    'xEvent[eventType = "advertising.impressions" and _acme.campaignId in ["c-101", "c-102"]'
    ' and timestamp occurs <= 30 minutes before now]._acme.campaignId.distinct().count() >= 3',
    '(P) => P.person.name.firstName.startsWith("A", false) or not (select X from xEvent'
    ' where X.eventType = "x" and X.timestamp occurs last week)',
    'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(today),'
    ' C1: WHAT(eventType = "b") WHEN(<= 30 minutes after C0)])',
    'let t = (_acme.tier) in t = "gold" or -_acme.points * 2 < -5',
]


def conv(fmt, value, **extra):
    body = {"name": kt.uid("conv-"), "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": fmt, "value": value}, "ttlInDays": 60}
    body.update(extra)
    return body


class ConversionTest(kt.KithTestCase):
    """No schemas in the sandbox: any field name is accepted (as pql check without --server)."""

    def test_aep_example_exactly(self):
        r = self.admin.post(CONV, conv("pql/text", AEP_TEXT))
        self.assertStatus(r, 200)
        ex = r.json["expression"]
        self.assertEqual(ex["format"], "pql/json")
        self.assertEqual(ex["type"], "PQL")
        self.assertIsInstance(ex["value"], str)  # AEP writes the tree as a JSON string
        self.assertEqual(json.loads(ex["value"]), json.loads(AEP_JSON))
        self.assertEqual(r.json["ttlInDays"], 60)  # the rest of the object comes back
        back = self.admin.post(CONV, conv("pql/json", AEP_JSON))
        self.assertStatus(back, 200)
        self.assertEqual(back.json["expression"],
                         {"type": "PQL", "format": "pql/text", "value": AEP_TEXT})
        # the tree may also be given as an object; targetFormat may keep the format
        r = self.admin.post(CONV, conv("pql/json", json.loads(AEP_JSON)))
        self.assertEqual(r.json["expression"]["value"], AEP_TEXT)
        r = self.admin.post(CONV, conv("pql/text", '$1.workAddress.country="US"',
                                       targetFormat="pql/text"))
        self.assertEqual(r.json["expression"]["value"], AEP_TEXT)  # canonical text
        self.assertNotIn("targetFormat", r.json)

    def test_round_trips(self):
        for text in SEED:
            r = self.admin.post(CONV, conv("pql/text", text))
            self.assertStatus(r, 200)
            tree = r.json["expression"]["value"]
            back = self.admin.post(CONV, conv("pql/json", tree))
            self.assertStatus(back, 200)
            again = self.admin.post(CONV, conv("pql/text", back.json["expression"]["value"]))
            self.assertEqual(json.loads(again.json["expression"]["value"]), json.loads(tree), text)

    def test_errors_name_the_path(self):
        # shape errors: the JSON pointer inside the tree, under /expression/value
        bad = json.loads(AEP_JSON)
        bad["params"][1]["literalType"] = "Frobnicate"
        self.assertErrorPath(self.admin.post(CONV, conv("pql/json", bad)),
                             "/expression/value/params/1/literalType")
        bad = json.loads(AEP_JSON)
        bad["params"][0]["object"]["fieldName"] = "1st"
        self.assertErrorPath(self.admin.post(CONV, conv("pql/json", bad)),
                             "/expression/value/params/0/object/fieldName")
        bad = json.loads(AEP_JSON)
        bad["fnName"] = "frobnicate"
        self.assertErrorPath(self.admin.post(CONV, conv("pql/json", bad)), "/expression/value/fnName")
        bad = json.loads(AEP_JSON)
        bad["params"][0] = {"nodeType": "varRef", "varName": "nobody"}
        self.assertErrorPath(self.admin.post(CONV, conv("pql/json", bad)),
                             "/expression/value/params/0/varName")
        # compile errors found by the checker: the node at fault
        tree = {"nodeType": "fnApply", "fnName": "and", "params": [
            {"nodeType": "literal", "literalType": "Boolean", "value": True},
            {"nodeType": "fnApply", "fnName": "inSegment", "params": [
                {"nodeType": "literal", "literalType": "String", "value": "no-such-segment"}]}]}
        r = self.admin.post(CONV, conv("pql/json", tree))
        self.assertErrorPath(r, "/expression/value/params/1/params/0")
        self.assertIn("unknown segment", r.text)
        # text errors: line and column
        r = self.admin.post(CONV, conv("pql/text", 'a = "x" and\n (b > )'))
        self.assertErrorPath(r, "/expression/value")
        self.assertIn("line 2", r.text)
        # not JSON, not a tree, wrong formats
        self.assertErrorPath(self.admin.post(CONV, conv("pql/json", "{nope")), "/expression/value")
        self.assertErrorPath(self.admin.post(CONV, conv("pql/json", 5)), "/expression/value")
        self.assertErrorPath(self.admin.post(CONV, conv("pql/xml", "a")), "/expression/format")
        self.assertErrorPath(self.admin.post(CONV, conv("pql/text", "a", targetFormat="x")),
                             "/targetFormat")
        self.assertErrorPath(self.admin.post(CONV, {"name": "x"}), "/expression")

    def test_bounds(self):
        deep = {"nodeType": "literal", "literalType": "Boolean", "value": True}
        for _ in range(200):
            deep = {"nodeType": "fnApply", "fnName": "not", "params": [deep]}
        r = self.admin.post(CONV, conv("pql/json", deep))
        self.assertProblem(r, 400)
        self.assertIn("deeper", r.text)
        wide = {"nodeType": "fnApply", "fnName": "or", "params": [
            {"nodeType": "literal", "literalType": "Integer", "value": i} for i in range(5000)]}
        self.assertErrorPath(self.admin.post(CONV, conv("pql/json", wide)), "/expression/value/params")
        many = {"nodeType": "fnApply", "fnName": "list",
                "params": [{"nodeType": "parameterReference"}] * 20500}
        r = self.admin.post(CONV, conv("pql/json", many))
        self.assertProblem(r, 400)
        self.assertRegex(r.text, "more than 20000 nodes|text form exceeds 65536 bytes")


class DefinitionJsonTest(kt.KithTestCase):
    fixture_needed = True

    def test_definition_in_pql_json(self):
        text = '_acme.tier = "gold"'
        r = self.admin.post(CONV, conv("pql/text", text))
        self.assertStatus(r, 200)
        tree = r.json["expression"]["value"]
        d = self.admin.post(DEFS, {"name": kt.uid("json-"), "schema": {"name": "_xdm.context.profile"},
                                   "expression": {"type": "PQL", "format": "pql/json",
                                                  "value": tree}})
        self.assertStatus(d, 201)
        d = d.json
        self.assertEqual(d["expression"]["format"], "pql/json")
        self.assertEqual(json.loads(d["expression"]["value"]), json.loads(tree))
        self.assertTrue(d["evaluationInfo"]["synchronous"]["enabled"])
        # evaluated as its text would be
        crm = kt.uid("c-")
        self.fx.ingest_record({"_acme": {"crmId": crm, "tier": "gold"},
                               "identityMap": kt.idmap(("CRMID", crm))})
        prof = self.admin.profile("CRMID", crm)
        self.assertEqual(kt.get_path(prof, "entity.segmentMembership.ups")[d["id"]]["status"],
                         "realized")
        # read back in either form
        g = self.admin.get(DEFS + "/" + d["id"] + "?expressionFormat=pql/text")
        self.assertEqual(g.json["expression"], {"type": "PQL", "format": "pql/text", "value": text})
        g = self.admin.get(DEFS + "/" + d["id"])
        self.assertEqual(g.json["expression"]["format"], "pql/json")
        lst = self.admin.get(DEFS + "?limit=1000&expressionFormat=pql/text").json["segments"]
        self.assertIn(text, [s["expression"]["value"] for s in lst if s["id"] == d["id"]])
        b = self.admin.post(DEFS + "/bulk-get?expressionFormat=pql/text", {"ids": [{"id": d["id"]}]})
        self.assertEqual(b.json["results"][d["id"]]["expression"]["value"], text)
        self.assertErrorPath(self.admin.get(DEFS + "/" + d["id"] + "?expressionFormat=x"),
                             "expressionFormat")
        # a text definition reads back as a tree
        t = self.admin.post(DEFS, {"name": kt.uid("text-"), "expression": {
            "type": "PQL", "format": "pql/text", "value": text}}).json
        g = self.admin.get(DEFS + "/" + t["id"] + "?expressionFormat=pql/json")
        self.assertEqual(json.loads(g.json["expression"]["value"]), json.loads(tree))
        # PATCH keeps a pql/json definition working; an unknown field is named by its JSON path
        p = self.admin.patch(DEFS + "/" + d["id"], {"description": "gold"})
        self.assertStatus(p, 200)
        self.assertEqual(p.json["expression"]["format"], "pql/json")
        bad = json.loads(tree)
        bad["params"][0]["fieldName"] = "noSuchField"
        r = self.admin.patch(DEFS + "/" + d["id"], {"expression": {
            "type": "PQL", "format": "pql/json", "value": bad}})
        self.assertErrorPath(r, "/expression/value/params/0")
        self.assertIn("noSuchField", r.text)
        self.assertEqual(self.admin.get(DEFS + "/" + d["id"]).json["description"], "gold")


class DefinitionJsonRestartTest(kt.KithTestCase):
    def test_survives_restart(self):
        srv = self.new_server()
        api = srv.api()
        d = api.post(DEFS, {"name": kt.uid("json-"), "expression": {
            "type": "PQL", "format": "pql/json", "value": AEP_JSON}})
        self.assertStatus(d, 201)
        srv.restart()
        api = srv.api()
        g = api.get(DEFS + "/" + d.json["id"])
        self.assertStatus(g, 200)
        self.assertEqual(json.loads(g.json["expression"]["value"]), json.loads(AEP_JSON))
        self.assertEqual(g.json["evaluationInfo"], d.json["evaluationInfo"])
        g = api.get(DEFS + "/" + d.json["id"] + "?expressionFormat=pql/text")
        self.assertEqual(g.json["expression"]["value"], AEP_TEXT)


if __name__ == "__main__":
    kt.main()
