"""Schema registry, descriptors, union schemas and catalog datasets (API.md section 2)."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

C = kt.Client
HEX32 = r"[0-9a-f]{32}"


class SchemaTest(kt.KithTestCase):

    def schema_titles(self):
        return self.admin.get(C.SCHEMAS).text

    def test_create_get_list(self):
        title = kt.uid("Loyalty members ")
        props = {"_acme": {"type": "object", "properties": {
            "loyaltyTier9": {"type": "string", "enum": ["a", "b"]},
            "points": {"type": "integer", "minimum": 0}}}}
        r = self.admin.create_schema(title, kt.PROFILE_CLASS,
                                     [kt.FG_PERSON, kt.FG_PERSONAL, kt.FG_IDENTITYMAP], props,
                                     enable_profile=False, check=False)
        self.assertStatus(r, 201)
        j = r.json
        m = re.fullmatch(r"https://ns\.adobe\.com/kith/schemas/(" + HEX32 + ")", j.get("$id", ""))
        self.assertTrue(m, "$id must be https://ns.adobe.com/kith/schemas/<32 hex>: %r" % r)
        self.assertEqual(j.get("meta:altId"), "_kith.schemas." + m.group(1))
        self.assertEqual(j.get("version"), "1.0")
        self.assertEqual(j.get("title"), title)
        self.assertEqual(j.get("meta:class"), kt.PROFILE_CLASS)
        # GET by URL-encoded $id and by meta:altId.
        for ident in (kt.enc(j["$id"]), j["meta:altId"]):
            g = self.admin.get(C.SCHEMAS + "/" + ident)
            self.assertStatus(g, 200)
            self.assertEqual(g.json.get("$id"), j["$id"])
            self.assertEqual(g.json.get("title"), title)
            self.assertEqual(g.json.get("meta:class"), kt.PROFILE_CLASS)
        # The full definition keeps the tenant field.
        g = self.admin.get(C.SCHEMAS + "/" + j["meta:altId"],
                           headers={"Accept": "application/vnd.adobe.xed-full+json; version=1"})
        self.assertStatus(g, 200)
        self.assertIn("loyaltyTier9", g.text)
        # List.
        lst = self.admin.get(C.SCHEMAS)
        self.assertStatus(lst, 200)
        ids = {d.get("$id") for d in kt.find_dicts(lst.json, lambda d: "$id" in d)}
        self.assertIn(j["$id"], ids)

    def test_event_schema(self):
        r = self.admin.create_schema(kt.uid("Web "), kt.EVENT_CLASS,
                                     [kt.FG_WEB, kt.FG_COMMERCE, kt.FG_ENV, kt.FG_IDENTITYMAP],
                                     kt.ACME_EVENT_PROPS, enable_profile=False, check=False)
        self.assertStatus(r, 201)
        self.assertEqual(r.json.get("meta:class"), kt.EVENT_CLASS)

    def test_all_builtin_field_groups(self):
        profile_fgs = [kt.FG_PERSON, kt.FG_PERSONAL, kt.FG_IDENTITYMAP, kt.FG_LOYALTY,
                       "https://ns.adobe.com/xdm/mixins/profile-consents",
                       "https://ns.adobe.com/xdm/context/segmentmembership",
                       "https://ns.adobe.com/xdm/common/external-source-system-audit-details"]
        r = self.admin.create_schema(kt.uid("All profile FGs "), kt.PROFILE_CLASS, profile_fgs,
                                     enable_profile=False, check=False)
        self.assertStatus(r, 201)
        event_fgs = [kt.FG_COMMERCE, kt.FG_WEB, kt.FG_ENV, kt.FG_IDENTITYMAP,
                     "https://ns.adobe.com/xdm/context/experienceevent-advertising"]
        r = self.admin.create_schema(kt.uid("All event FGs "), kt.EVENT_CLASS, event_fgs,
                                     enable_profile=False, check=False)
        self.assertStatus(r, 201)

    def test_inline_properties_top_level_and_definitions(self):
        body = {"title": kt.uid("Defs "), "type": "object", "meta:class": kt.PROFILE_CLASS,
                "definitions": {"acmefields": {"properties": {"_acme": {"type": "object", "properties": {
                    "fromDefs": {"type": "string"}}}}}},
                "allOf": [{"$ref": kt.FG_IDENTITYMAP}, {"$ref": "#/definitions/acmefields"}]}
        r = self.admin.post(C.SCHEMAS, body)
        self.assertStatus(r, 201)
        body = {"title": kt.uid("Top "), "type": "object", "meta:class": kt.PROFILE_CLASS,
                "properties": {"_acme": {"type": "object", "properties": {"top": {"type": "string"}}}}}
        r = self.admin.post(C.SCHEMAS, body)
        self.assertStatus(r, 201)

    def test_get_unknown_schema_404(self):
        r = self.admin.get(C.SCHEMAS + "/" + kt.enc("https://ns.adobe.com/kith/schemas/" + "0" * 32))
        self.assertProblem(r, 404)
        r = self.admin.get(C.SCHEMAS + "/_kith.schemas." + "0" * 32)
        self.assertProblem(r, 404)

    def test_enable_for_profile_patch(self):
        sch = self.admin.create_schema(kt.uid("Enable "), kt.PROFILE_CLASS,
                                       [kt.FG_PERSON, kt.FG_IDENTITYMAP], enable_profile=False)
        r = self.admin.patch(C.SCHEMAS + "/" + kt.enc(sch["$id"]),
                             [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}])
        self.assertStatus(r, 200)
        g = self.admin.get(C.SCHEMAS + "/" + sch["meta:altId"])
        self.assertIn("union", g.json.get("meta:immutableTags", []))

    def test_bad_patch_400(self):
        sch = self.admin.create_schema(kt.uid("BadPatch "), kt.PROFILE_CLASS, [kt.FG_PERSON],
                                       enable_profile=False)
        url = C.SCHEMAS + "/" + kt.enc(sch["$id"])
        self.assertProblem(self.admin.patch(url, {"not": "a patch array"}), 400)
        self.assertProblem(self.admin.patch(url, [{"op": "explode", "path": "/title"}]), 400)
        self.assertProblem(self.admin.request("PATCH", url, data=b"[{"), 400)
        r = self.admin.patch(C.SCHEMAS + "/" + kt.enc("https://ns.adobe.com/kith/schemas/" + "1" * 32),
                             [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}])
        self.assertProblem(r, 404)

    def test_descriptor(self):
        sch = self.admin.create_schema(kt.uid("Desc "), kt.PROFILE_CLASS, [kt.FG_IDENTITYMAP],
                                       {"_acme": {"type": "object", "properties": {
                                           "crmId": {"type": "string"}}}}, enable_profile=False)
        r = self.admin.create_descriptor(sch["$id"], "/_acme/crmId", "CRMID", primary=True, check=False)
        self.assertStatus(r, 201, 200)
        self.assertIsInstance(r.json, dict)
        # A descriptor on an unknown schema is a 4xx.
        r = self.admin.create_descriptor("https://ns.adobe.com/kith/schemas/" + "2" * 32,
                                         "/_acme/crmId", "CRMID", check=False)
        self.assertTrue(400 <= r.status < 500, "descriptor on unknown schema: %r" % r)

    def get_union(self, cls_alt, cls_url):
        r = self.admin.get(C.UNIONS + "/" + cls_alt)
        if r.status == 200:
            return r
        r2 = self.admin.get(C.UNIONS + "/" + kt.enc(cls_url))
        if r2.status == 200:
            return r2
        self.fail("union schema of %s not found by %s (%r) nor by URL (%r)" % (cls_url, cls_alt, r, r2))

    def test_union_schemas(self):
        pfield = "unionP" + kt.uid()
        hidden = "hiddenP" + kt.uid()
        efield = "unionE" + kt.uid()
        self.admin.create_schema(kt.uid("U1 "), kt.PROFILE_CLASS, [kt.FG_PERSON, kt.FG_IDENTITYMAP],
                                 {"_acme": {"type": "object", "properties": {pfield: {"type": "string"}}}})
        self.admin.create_schema(kt.uid("U2 "), kt.PROFILE_CLASS, [kt.FG_IDENTITYMAP],
                                 {"_acme": {"type": "object", "properties": {hidden: {"type": "string"}}}},
                                 enable_profile=False)
        self.admin.create_schema(kt.uid("U3 "), kt.EVENT_CLASS, [kt.FG_WEB, kt.FG_IDENTITYMAP],
                                 {"_acme": {"type": "object", "properties": {efield: {"type": "string"}}}})
        pu = self.get_union("_xdm.context.profile", kt.PROFILE_CLASS)
        self.assertIn(pfield, pu.text, "profile union must include enabled schemas' fields")
        self.assertIn("firstName", pu.text, "profile union must include field group fields")
        self.assertNotIn(hidden, pu.text, "schemas not enabled for Profile stay out of the union")
        self.assertNotIn(efield, pu.text)
        eu = self.get_union("_xdm.context.experienceevent", kt.EVENT_CLASS)
        self.assertIn(efield, eu.text)
        self.assertNotIn(pfield, eu.text)

    def test_union_unknown_class_404(self):
        r = self.admin.get(C.UNIONS + "/_xdm.context.nosuchclass")
        self.assertTrue(400 <= r.status < 500, "%r" % r)

    # --- bad schema definitions ----------------------------------------------------------------

    def assert_bad_schema(self, body, needle, path=None):
        r = self.admin.post(C.SCHEMAS, body)
        j = self.assertProblem(r, 400)
        self.assertIn(needle, r.text, "the 400 must name %r: %r" % (needle, r))
        if path:
            paths = [e.get("path", "") for e in j.get("errors", [])]
            self.assertTrue(any(p.startswith(path) for p in paths),
                            "errors[].path must point at %s: %r" % (path, r))
        if body.get("title"):
            self.assertNotIn(body["title"], self.schema_titles(), "a rejected schema must not be stored")
        return j

    def test_bad_type_names_path(self):
        self.assert_bad_schema({"title": kt.uid("Bad1 "), "meta:class": kt.PROFILE_CLASS,
                                "properties": {"_acme": {"type": "object", "properties": {
                                    "badField7": {"type": "strnig"}}}}}, "badField7",
                               path="/properties/_acme/properties/badField7")

    def test_missing_class(self):
        self.assert_bad_schema({"title": kt.uid("Bad2 "), "properties": {"_acme": {
            "type": "object", "properties": {"a": {"type": "string"}}}}}, "meta:class")

    def test_unknown_class(self):
        self.assert_bad_schema({"title": kt.uid("Bad3 "), "meta:class": "https://example.com/noclass",
                                "allOf": [{"$ref": kt.FG_IDENTITYMAP}]}, "meta:class")

    def test_unknown_field_group(self):
        self.assert_bad_schema({"title": kt.uid("Bad4 "), "meta:class": kt.PROFILE_CLASS,
                                "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/no-such-group"}]},
                               "no-such-group", path="/allOf/0")

    def test_bad_enum_and_required(self):
        self.assert_bad_schema({"title": kt.uid("Bad5 "), "meta:class": kt.PROFILE_CLASS,
                                "properties": {"_acme": {"type": "object", "properties": {
                                    "enumField3": {"type": "string", "enum": "gold"}}}}}, "enumField3",
                               path="/properties/_acme/properties/enumField3")
        self.assert_bad_schema({"title": kt.uid("Bad6 "), "meta:class": kt.PROFILE_CLASS,
                                "properties": {"_acme": {"type": "object", "properties": {
                                    "a": {"type": "string"}}, "required": "a"}}}, "required")

    def test_bad_bounds(self):
        self.assert_bad_schema({"title": kt.uid("Bad7 "), "meta:class": kt.PROFILE_CLASS,
                                "properties": {"_acme": {"type": "object", "properties": {
                                    "boundField": {"type": "integer", "minimum": "zero"}}}}},
                               "boundField", path="/properties/_acme/properties/boundField")

    def test_malformed_json_schema(self):
        r = self.admin.request("POST", C.SCHEMAS, data=b'{"title": "x",\n "meta:class": }')
        j = self.assertProblem(r, 400)
        self.assertRegex(j.get("detail", ""), r"(?i)line\D{0,3}2", "malformed JSON must name the line")
        self.assertRegex(j.get("detail", ""), r"(?i)col", "malformed JSON must name the column")

    def test_missing_title(self):
        r = self.admin.post(C.SCHEMAS, {"meta:class": kt.PROFILE_CLASS,
                                        "allOf": [{"$ref": kt.FG_IDENTITYMAP}]})
        self.assertProblem(r, 400)

    # --- datasets --------------------------------------------------------------------------------

    def get_dataset(self, ds):
        r = self.admin.get(C.DATASETS + "/" + ds)
        self.assertStatus(r, 200)
        j = r.json
        if isinstance(j, dict) and ds in j and isinstance(j[ds], dict):
            return j[ds]
        return j

    def test_dataset_lifecycle(self):
        sch = self.admin.create_schema(kt.uid("DS "), kt.PROFILE_CLASS, [kt.FG_PERSON, kt.FG_IDENTITYMAP])
        name = kt.uid("dataset-")
        r = self.admin.create_dataset(sch["$id"], name, check=False)
        self.assertStatus(r, 201)
        ds = kt.dataset_id_from(r)
        self.assertTrue(ds)
        d = self.get_dataset(ds)
        self.assertEqual(d.get("name"), name)
        self.assertEqual(kt.get_path(d, "schemaRef.id"), sch["$id"])
        self.assertEqual(kt.get_path(d, "tags.unifiedProfile"), ["enabled:true"])
        self.assertEqual(kt.get_path(d, "tags.unifiedIdentity"), ["enabled:true"])
        lst = self.admin.get(C.DATASETS)
        self.assertStatus(lst, 200)
        self.assertIn(ds, lst.text)
        self.assertIn(name, lst.text)
        # PATCH (JSON Patch, as AEP's catalog) renames and changes tags.
        r = self.admin.patch(C.DATASETS + "/" + ds,
                             [{"op": "replace", "path": "/name", "value": name + "-renamed"},
                              {"op": "add", "path": "/tags/unifiedProfile", "value": ["enabled:false"]}],
                             content_type="application/json-patch+json")
        self.assertStatus(r, 200)
        d = self.get_dataset(ds)
        self.assertEqual(d.get("name"), name + "-renamed")
        self.assertEqual(kt.get_path(d, "tags.unifiedProfile"), ["enabled:false"])
        # DELETE.
        r = self.admin.delete(C.DATASETS + "/" + ds)
        self.assertStatus(r, 200, 202, 204)
        self.assertProblem(self.admin.get(C.DATASETS + "/" + ds), 404)
        self.assertNotIn(ds, self.admin.get(C.DATASETS).text)
        self.assertProblem(self.admin.delete(C.DATASETS + "/" + ds), 404)

    def test_dataset_unknown_schema(self):
        name = kt.uid("orphan-")
        r = self.admin.post(C.DATASETS, {"name": name, "schemaRef": {
            "id": "https://ns.adobe.com/kith/schemas/" + "3" * 32,
            "contentType": "application/vnd.adobe.xed-full+json;version=1"}})
        self.assertTrue(400 <= r.status < 500, "unknown schema must be a 4xx: %r" % r)
        self.assertIn("application/problem+json", r.content_type)
        self.assertNotIn(name, self.admin.get(C.DATASETS).text)

    def test_dataset_missing_schema_ref(self):
        name = kt.uid("noref-")
        r = self.admin.post(C.DATASETS, {"name": name})
        self.assertProblem(r, 400, 422)
        self.assertNotIn(name, self.admin.get(C.DATASETS).text)

    def test_dataset_get_unknown_404(self):
        self.assertProblem(self.admin.get(C.DATASETS + "/" + kt.uid("nods")), 404)

    def test_dataset_delete_removes_profile_data(self):
        fx = kt.Fixture(self.admin)
        email = kt.uid() + "@dsdel.example"
        ecid = kt.ecid()
        fx.ingest_record({"identityMap": kt.idmap(("Email", email), ("ECID", ecid)),
                          "person": {"name": {"firstName": "Keep"}}}, fx.crm)
        fx.ingest_record({"identityMap": kt.idmap(("Email", email)),
                          "_acme": {"note": "from-loyalty"}}, fx.loyalty)
        fx.ingest_event(kt.web_event([("ECID", ecid)], 1700000000000))
        p = self.admin.profile("Email", email)
        self.assertEqual(kt.get_path(p["entity"], "_acme.note"), "from-loyalty")
        self.assertStatus(self.admin.delete(C.DATASETS + "/" + fx.loyalty), 200, 202, 204)
        self.assertStatus(self.admin.delete(C.DATASETS + "/" + fx.web), 200, 202, 204)
        deadline = time.time() + 15
        while True:
            p = self.admin.profile("Email", email)
            ev = self.admin.events("Email", email)
            gone = kt.get_path(p["entity"], "_acme.note") is None and \
                (ev.status == 404 or not (ev.json or {}).get("children"))
            if gone or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertIsNone(kt.get_path(p["entity"], "_acme.note"), "deleted dataset's fragment remains")
        self.assertEqual(kt.get_path(p["entity"], "person.name.firstName"), "Keep")
        self.assertNotIn(fx.loyalty, p.get("sources", []))
        self.assertTrue(ev.status == 404 or not ev.json.get("children"),
                        "deleted dataset's events remain: %r" % ev)


if __name__ == "__main__":
    kt.main()
