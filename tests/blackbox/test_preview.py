"""Preview and estimate of an unsaved expression: POST /data/core/ups/preview evaluates it over the
sandbox's profiles (exact on small sandboxes), GET /preview/{id} lists sample profiles, GET
/estimate/{id} gives the audience size; a bad expression is a 400 with line and column."""
import kithtest as kt

T0 = 1_700_000_000_000


class PreviewTest(kt.KithTestCase):
    fixture_needed = True

    def test_estimate_is_exact_on_a_small_sandbox(self):
        fx = self.fx
        tag = kt.uid("pv")
        for i in range(12):
            fx.ingest_record({"identityMap": kt.idmap(("Email", "%s-%d@preview.example" % (tag, i))),
                              "person": {"name": {"firstName": "Ann" if i % 3 == 0 else "Bob",
                                                  "lastName": tag}}})
        expr = 'person.name.firstName = "Ann" and person.name.lastName = "%s"' % tag
        r = self.admin.post("/data/core/ups/preview", {"predicateExpression": expr,
                                                        "predicateType": "pql/text",
                                                        "predicateModel": "_xdm.context.profile"})
        self.assertStatus(r, 201)
        pid = r.json["previewId"]
        est = self.admin.get("/data/core/ups/estimate/" + pid)
        self.assertStatus(est, 200)
        self.assertEqual(est.json["estimatedSize"], 4)
        self.assertEqual(est.json["profilesMatchedSoFar"], 4)
        self.assertTrue(est.json["kith:exact"])
        self.assertEqual(est.json["state"], "RESULT_READY")
        pv = self.admin.get("/data/core/ups/preview/" + pid)
        self.assertStatus(pv, 200)
        self.assertEqual(len(pv.json["results"]), 4)
        ids = [list(x.values())[0]["endCustomerIds"]["Email"][0]["id"] for x in pv.json["results"]]
        self.assertTrue(all(i.startswith(tag) for i in ids), ids)

    def test_events_in_preview(self):
        fx = self.fx
        ecid = kt.ecid()
        for i in range(3):
            ev = kt.web_event([("ECID", ecid)], T0 + i * 1000)
            ev["eventType"] = "commerce.purchases"
            ev["commerce"] = {"order": {"priceTotal": 5000}}
            fx.ingest_event(ev)
        r = self.admin.post("/data/core/ups/preview", {
            "predicateExpression":
                'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 10000'})
        self.assertStatus(r, 201)
        est = self.admin.get("/data/core/ups/estimate/" + r.json["previewId"]).json
        self.assertGreaterEqual(est["estimatedSize"], 1)

    def test_bad_input(self):
        r = self.admin.post("/data/core/ups/preview", {"predicateExpression": "person.name.firstName ="})
        self.assertProblem(r, 400)
        self.assertIn("line", r.json["errors"][0])
        r = self.admin.post("/data/core/ups/preview", {"predicateType": "pql/text"})
        self.assertErrorPath(r, "/predicateExpression")
        self.assertStatus(self.admin.get("/data/core/ups/estimate/nope"), 404)
        # A preview of one sandbox is not visible from another.
        r = self.admin.post("/data/core/ups/preview", {"predicateExpression": "true"})
        other = kt.uid("pvs").lower().replace("_", "-")[:30]
        self.assertStatus(self.admin.post("/data/foundation/sandbox-management/sandboxes",
                                          {"name": other}), 201)
        self.assertStatus(self.server.api(sandbox=other).get("/data/core/ups/estimate/" + r.json["previewId"]), 404)


if __name__ == "__main__":
    kt.main()
