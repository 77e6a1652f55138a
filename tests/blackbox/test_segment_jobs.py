"""Segment jobs, backfill and export jobs (issue 5 items 4 and 6; aep-spec 4.6, 4.7; API.md section 6):
batch and streaming evaluation agreeing on the same data, a new definition evaluated over the existing
profiles (backfill), cancel, bad input named by path, export files (members, status filter, fields).
Every test works in its own sandbox so that "*" means only its own segments."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

DEFS = "/data/core/ups/segment/definitions"
JOBS = "/data/core/ups/segment/jobs"
EXPORTS = "/data/core/ups/export/jobs"
BIG = 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 10000'
GOLD = '_acme.tier = "gold"'
BATCH_ONLY = {"batch": {"enabled": True}, "continuous": {"enabled": False},
              "synchronous": {"enabled": False}}


def now_ms():
    return int(time.time() * 1000)


class SegmentJobTest(kt.KithTestCase):

    def sandbox(self):
        name = "sj" + kt.uid().lower().replace("_", "")[:20]
        r = self.admin.post(self.admin.SANDBOXES, {"name": name, "title": name, "type": "development"},
                            sandbox=None)
        self.assertStatus(r, 200, 201)
        api = self.admin.in_sandbox(name)
        return api, kt.Fixture(api)

    def define(self, api, expr, batch=False):
        body = {"name": kt.uid("seg-"), "schema": {"name": "_xdm.context.profile"},
                "expression": {"type": "PQL", "format": "pql/text", "value": expr}}
        if batch:
            body["evaluationInfo"] = BATCH_ONLY
        r = api.post(DEFS, body)
        self.assertStatus(r, 201)
        return r.json

    def people(self, fx, n, base=0, loyalty=False):
        """n customers: every third one gold; customer i bought 2 x (i * 1000). With loyalty, the
        even ones first have an (older) loyalty record saying bronze."""
        crms = []
        t = now_ms() - 3600000
        for i in range(base, base + n):
            crm = kt.uid("c%d-" % i)
            crms.append(crm)
            if loyalty and i % 2 == 0:
                fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm)),
                                  "_acme": {"crmId": crm, "tier": "bronze"}}, dataset=fx.loyalty)
            fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm)),
                              "person": {"name": {"firstName": "P%d" % i, "lastName": "L"}},
                              "_acme": {"crmId": crm, "tier": "gold" if i % 3 == 0 else "silver"}})
            for k in range(2):
                fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(t + k),
                                 "eventType": "commerce.purchases",
                                 "identityMap": kt.idmap(("CRMID", crm)),
                                 "commerce": {"order": {"priceTotal": i * 1000}}})
        return crms

    def wait_job(self, api, job_id, path=JOBS, timeout=60):
        deadline = time.time() + timeout
        while True:
            r = api.get(path + "/" + str(job_id))
            self.assertStatus(r, 200)
            if r.json["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return r.json
            if time.time() > deadline:
                self.fail("job %s still %s after %d s" % (job_id, r.json["status"], timeout))
            time.sleep(0.05)

    def run_job(self, api, segments):
        r = api.post(JOBS, {"segments": [{"segmentId": s} for s in segments]})
        self.assertStatus(r, 200)
        self.assertIn(r.json["status"], ("NEW", "PROCESSING", "SUCCEEDED"))
        job = self.wait_job(api, r.json["id"])
        self.assertEqual(job["status"], "SUCCEEDED", job)
        return job

    def statuses(self, api, crms, seg):
        out = {}
        for c in crms:
            prof = api.profile("CRMID", c)
            out[c] = kt.get_path(prof, "entity.segmentMembership.ups", {}).get(seg, {}).get("status")
        return out

    @staticmethod
    def members(statuses):
        return {c for c, s in statuses.items() if s in ("realized", "existing")}

    # --- batch jobs -------------------------------------------------------------------------------

    def test_batch_and_streaming_agree(self):
        api, fx = self.sandbox()
        s_big, s_gold = self.define(api, BIG), self.define(api, GOLD)
        crms = self.people(fx, 24)
        b_big, b_gold = self.define(api, BIG, batch=True), self.define(api, GOLD, batch=True)
        self.assertEqual(b_big["evaluationInfo"]["kith:mode"], "batch")
        self.assertFalse(b_big["evaluationInfo"]["continuous"]["enabled"])
        self.assertEqual(s_big["evaluationInfo"]["kith:mode"], "streaming")
        job = self.run_job(api, ["*"])
        self.assertEqual(job["segments"], [{"segmentId": "*"}])
        m = job["metrics"]
        self.assertEqual(m["totalProfiles"], 24)
        self.assertEqual(m["segmentedProfileCounter"][s_big["id"]], 18)  # 2 x i x 1000 > 10000: i >= 6
        self.assertEqual(m["segmentedProfileCounter"][s_gold["id"]], 8)
        for s, b in ((s_big, b_big), (s_gold, b_gold)):
            self.assertEqual(m["segmentedProfileCounter"][s["id"]], m["segmentedProfileCounter"][b["id"]])
            streaming = self.members(self.statuses(api, crms, s["id"]))
            batch = self.members(self.statuses(api, crms, b["id"]))
            self.assertEqual(len(streaming), m["segmentedProfileCounter"][s["id"]])
            self.assertEqual(streaming, batch, "streaming and batch members differ for %s" % s["name"])
        for k in ("realized", "existing", "exited"):
            self.assertIn(k, m["segmentedProfileByStatusCounter"][b_gold["id"]])
        self.assertGreaterEqual(m["totalTime"]["totalTimeInMs"], 0)
        self.assertEqual(job["kith:progress"]["profilesProcessed"], 24)
        # A second run: the batch members are now existing, and a silver customer who turned gold
        # (streaming sees it at once, the batch segment at the next job) is realized.
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crms[1])), "_acme": {"crmId": crms[1], "tier": "gold"}})
        self.assertEqual(self.statuses(api, [crms[1]], s_gold["id"])[crms[1]], "realized")
        self.assertIsNone(self.statuses(api, [crms[1]], b_gold["id"])[crms[1]])
        job2 = self.run_job(api, [b_gold["id"]])
        self.assertEqual(job2["segments"][0]["segmentId"], b_gold["id"])
        self.assertEqual(job2["segments"][0]["segment"]["expression"]["value"], GOLD)
        st = self.statuses(api, crms, b_gold["id"])
        self.assertEqual(st[crms[1]], "realized")
        self.assertEqual(st[crms[0]], "existing")
        self.assertEqual(job2["metrics"]["segmentedProfileByStatusCounter"][b_gold["id"]],
                         {"realized": 1, "existing": 8, "exited": 0})
        # A member the job confirms is not rewritten (it reads as existing): one write, the entry.
        self.assertEqual(job2["kith:writes"]["memberships"], 1)
        self.assertIsInstance(job2["kith:workerCpuMs"], int)  # the workers' CPU time, once finished
        self.assertGreaterEqual(job2["kith:workerCpuMs"], 0)
        self.assertEqual(api.get(DEFS + "/" + b_gold["id"]).json["kith:lastBatchEvaluation"], job2["kith:now"])
        # The list shows both jobs (and the backfills), newest first.
        lst = api.get(JOBS + "?limit=100").json
        ids = [j["id"] for j in lst["children"]]
        self.assertEqual(ids[0], job2["id"])
        self.assertIn(job["id"], ids)
        self.assertEqual(api.get(JOBS + "?status=FAILED").json["children"], [])

    def test_agree_under_merge_policies(self):
        """Segments with a dataSetPrecedence policy (loyalty's tier wins over crm's) and
        an identityGraph "none" policy: the job's members are streaming's members."""
        api, fx = self.sandbox()
        mp = "/data/core/ups/config/mergePolicies"
        body = {"name": kt.uid("mp-"), "schema": {"name": "_xdm.context.profile"},
                "identityGraph": {"type": "pdg"}, "default": False, "isActiveOnEdge": False,
                "attributeMerge": {"type": "dataSetPrecedence", "order": [fx.loyalty, fx.crm, fx.web]}}
        r = api.post(mp, body)
        self.assertStatus(r, 200, 201)
        prec = r.json["id"]
        body = dict(body, name=kt.uid("mp-"), identityGraph={"type": "none"},
                    attributeMerge={"type": "timestampOrdered"})
        r = api.post(mp, body)
        self.assertStatus(r, 200, 201)
        none = r.json["id"]
        exprs = [(GOLD, prec), (BIG, prec), ('_acme.tier = "silver" and %s' % BIG, none)]
        streaming = []
        for e, p in exprs:
            r = api.post(DEFS, {"name": kt.uid("seg-"), "schema": {"name": "_xdm.context.profile"},
                                "expression": {"type": "PQL", "format": "pql/text", "value": e},
                                "mergePolicyId": p})
            self.assertStatus(r, 201)
            streaming.append(r.json)
        crms = self.people(fx, 12, loyalty=True)  # timestampOrdered: crm's tier; precedence: loyalty's
        batch = []
        for (e, p) in exprs:
            body = {"name": kt.uid("seg-"), "schema": {"name": "_xdm.context.profile"},
                    "expression": {"type": "PQL", "format": "pql/text", "value": e},
                    "mergePolicyId": p, "evaluationInfo": BATCH_ONLY}
            r = api.post(DEFS, body)
            self.assertStatus(r, 201)
            batch.append(r.json)
        job = self.run_job(api, ["*"])
        for s, b in zip(streaming, batch):
            st = self.members(self.statuses(api, crms, s["id"]))
            bt = self.members(self.statuses(api, crms, b["id"]))
            self.assertEqual(st, bt, "streaming and batch differ for %s" % s["expression"]["value"])
            self.assertEqual(job["metrics"]["segmentedProfileCounter"][b["id"]], len(bt))
        # loyalty's older bronze wins for the even customers under the policy: gold only for 3 and 9
        # (the default policy, timestampOrdered, says gold for 0, 3, 6 and 9)
        self.assertEqual(self.members(self.statuses(api, crms, batch[0]["id"])), {crms[3], crms[9]})

    def test_inactive_profile_leaves_a_batch_segment(self):
        api, fx = self.sandbox()
        crms = self.people(fx, 6)
        b_gold = self.define(api, GOLD, batch=True)
        self.wait_backfill(api, b_gold)
        self.assertEqual(self.members(self.statuses(api, crms, b_gold["id"])), {crms[0], crms[3]})
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crms[3])), "_acme": {"crmId": crms[3], "tier": "bronze"}})
        job = self.run_job(api, [b_gold["id"]])
        self.assertEqual(job["metrics"]["segmentedProfileByStatusCounter"][b_gold["id"]],
                         {"realized": 0, "existing": 1, "exited": 1})
        self.assertEqual(self.statuses(api, [crms[3]], b_gold["id"])[crms[3]], "exited")
        self.assertEqual(self.statuses(api, [crms[0]], b_gold["id"])[crms[0]], "existing")
        # The statuses survive a restart (the last evaluation instant is kept with the definition).
        self.server.restart()
        st = self.statuses(api, crms, b_gold["id"])
        self.assertEqual((st[crms[0]], st[crms[3]]), ("existing", "exited"))

    def wait_backfill(self, api, definition):
        job_id = definition.get("kith:backfillJobId")
        self.assertIsNotNone(job_id, "a new definition names its backfill job")
        job = self.wait_job(api, job_id)
        self.assertEqual(job["status"], "SUCCEEDED")
        self.assertEqual(job["source"], "backfill")
        return job

    def test_backfill_of_a_new_streaming_segment(self):
        api, fx = self.sandbox()
        crms = self.people(fx, 9)
        seg = self.define(api, BIG)  # after the data: no new event arrives
        job = self.wait_backfill(api, seg)
        self.assertEqual(job["metrics"]["segmentedProfileCounter"][seg["id"]], 3)  # i = 6, 7, 8
        st = self.statuses(api, crms, seg["id"])
        self.assertEqual(self.members(st), set(crms[6:]))
        self.assertEqual({st[c] for c in crms[6:]}, {"realized"})
        # Changing the expression evaluates it again; changing only the description does not.
        r = api.patch(DEFS + "/" + seg["id"], {"expression": {"type": "PQL", "format": "pql/text",
                                                                "value": GOLD}})
        self.assertStatus(r, 200)
        self.assertNotEqual(r.json["kith:backfillJobId"], seg["kith:backfillJobId"])
        self.wait_backfill(api, r.json)
        st = self.statuses(api, crms, seg["id"])
        self.assertEqual(self.members(st), {crms[0], crms[3], crms[6]})
        self.assertEqual(st[crms[7]], "exited")
        backfill = r.json["kith:backfillJobId"]
        jobs = api.get(JOBS + "?limit=100").json["children"]
        r = api.patch(DEFS + "/" + seg["id"], {"description": "gold customers"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["kith:backfillJobId"], backfill)
        self.assertEqual(api.get(JOBS + "?limit=100").json["children"][0]["id"], jobs[0]["id"])

    def test_pql_json_definition_in_a_job(self):
        """A definition written as a pql/json tree is evaluated by jobs and backfills as its text."""
        api, fx = self.sandbox()
        crms = self.people(fx, 9)
        r = api.post("/data/core/ups/segment/conversion",
                     {"expression": {"type": "PQL", "format": "pql/text", "value": BIG}})
        self.assertStatus(r, 200)
        body = {"name": kt.uid("seg-"), "expression": r.json["expression"], "evaluationInfo": BATCH_ONLY}
        seg = api.post(DEFS, body)
        self.assertStatus(seg, 201)
        self.assertEqual(seg.json["expression"]["format"], "pql/json")
        self.assertEqual(self.wait_backfill(api, seg.json)["metrics"]["segmentedProfileCounter"][seg.json["id"]], 3)
        job = self.run_job(api, [seg.json["id"]])
        self.assertEqual(job["metrics"]["segmentedProfileCounter"][seg.json["id"]], 3)
        self.assertEqual(self.members(self.statuses(api, crms, seg.json["id"])), set(crms[6:]))
        # the same expression written as text is no change: no new backfill
        r = api.patch(DEFS + "/" + seg.json["id"], {"expression": {"type": "PQL", "format": "pql/text",
                                                                     "value": BIG}})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["kith:backfillJobId"], seg.json["kith:backfillJobId"])

    def test_batch_changes_on_the_change_stream(self):
        from test_stream import SseClient
        api, fx = self.sandbox()
        crms = self.people(fx, 6)
        sse = SseClient(self.server, self.server.admin_key, sandbox=api.sandbox)
        self.addCleanup(sse.close)
        self.assertEqual(sse.status, 200)
        gold = self.define(api, GOLD, batch=True)
        self.wait_backfill(api, gold)
        frames = [sse.next(), sse.next()]
        self.assertEqual({(f["data"]["segmentId"], f["data"]["status"], f["data"]["identity"]["id"])
                          for f in frames},
                         {(gold["id"], "realized", crms[0]), (gold["id"], "realized", crms[3])})
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crms[0])), "_acme": {"crmId": crms[0], "tier": "silver"}})
        self.run_job(api, [gold["id"]])
        f = sse.next()
        self.assertEqual((f["data"]["status"], f["data"]["identity"]["id"]), ("exited", crms[0]))
        self.assertEqual(sse.drain(0.5), [])  # crms[3] stays in: no change, no event

    def test_segments_of_segments_in_one_job(self):
        api, fx = self.sandbox()
        crms = self.people(fx, 12)
        gold = self.define(api, GOLD, batch=True)
        rich_gold = self.define(api, 'inSegment("%s") and %s' % (gold["id"], BIG))
        self.assertEqual(rich_gold["evaluationInfo"]["kith:mode"], "batch")
        job = self.run_job(api, [rich_gold["id"], gold["id"]])
        # Evaluated in creation order, so the inner segment's answer of this job is used.
        self.assertEqual(job["metrics"]["segmentedProfileCounter"][gold["id"]], 4)
        self.assertEqual(job["metrics"]["segmentedProfileCounter"][rich_gold["id"]], 2)  # i = 6, 9
        self.assertEqual(self.members(self.statuses(api, crms, rich_gold["id"])), {crms[6], crms[9]})

    def test_cancel(self):
        api, fx = self.sandbox()
        self.people(fx, 30)
        seg = self.define(api, BIG, batch=True)
        ids = []
        for _ in range(5):
            r = api.post(JOBS, [{"segmentId": seg["id"]}])  # AEP's array form
            if r.status == 429:
                break
            self.assertStatus(r, 200)
            ids.append(r.json["id"])
        cancelled = 0
        for job_id in reversed(ids):
            r = api.delete(JOBS + "/" + job_id)
            if r.status == 200:
                self.assertTrue(r.json["status"])
                self.assertIn("cancel", r.json["message"])
                job = self.wait_job(api, job_id)
                self.assertIn(job["status"], ("CANCELLED", "SUCCEEDED"))
                cancelled += job["status"] == "CANCELLED"
            else:
                self.assertProblem(r, 409)
                self.assertEqual(api.get(JOBS + "/" + job_id).json["status"], "SUCCEEDED")
        self.assertGreaterEqual(cancelled, 1, "jobs queued behind others were still cancellable")
        self.assertProblem(api.delete(JOBS + "/" + ids[-1]), 409)
        self.assertProblem(api.delete(JOBS + "/nope"), 404)
        self.assertProblem(api.get(JOBS + "/nope"), 404)
        # Jobs are per sandbox.
        self.assertProblem(self.admin.get(JOBS + "/" + ids[0]), 404)

    def test_bad_segment_job_bodies(self):
        api, fx = self.sandbox()
        seg = self.define(api, GOLD)
        missing = "00000000-0000-4000-8000-000000000000"
        r = api.post(JOBS, {"segments": [{"segmentId": seg["id"]}, {"segmentId": missing}]})
        self.assertErrorPath(r, "/segments/1/segmentId")
        self.assertIn(missing, r.json["detail"])
        self.assertIn(missing, r.json["errors"][0]["message"])
        self.assertErrorPath(api.post(JOBS, {"segments": []}), "/segments")
        self.assertErrorPath(api.post(JOBS, {}), "/segments")
        self.assertErrorPath(api.post(JOBS, [{"id": seg["id"]}]), "/0/segmentId")
        self.assertErrorPath(api.post(JOBS, {"segments": [{"segmentId": 7}]}), "/segments/0/segmentId")
        self.assertProblem(api.post(JOBS, data=b"[{", headers={"Content-Type": "application/json"}), 400)
        self.assertProblem(api.get(JOBS + "?limit=0"), 400)
        self.assertProblem(api.get(JOBS + "?status=DONE"), 400)
        # A segment of another sandbox is unknown here.
        self.assertErrorPath(self.admin.post(JOBS, [{"segmentId": seg["id"]}]), "/0/segmentId")

    # --- export jobs ------------------------------------------------------------------------------

    def export(self, api, body):
        r = api.post(EXPORTS, body)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["jobType"], "BATCH")
        self.assertIsInstance(r.json["id"], int)
        job = self.wait_job(api, r.json["id"], path=EXPORTS)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        f = api.get(EXPORTS + "/%d/file" % job["id"])
        self.assertStatus(f, 200)
        self.assertIn("ndjson", f.content_type)
        lines = [json.loads(x) for x in f.body.decode().splitlines()]
        self.assertEqual(len(lines), job["metrics"]["totalExportedProfileCounter"])
        return job, lines

    @staticmethod
    def crm_of(line):
        return [i["id"] for i in line["identityMap"]["CRMID"]][0]

    def test_export_members_fields_and_status(self):
        api, fx = self.sandbox()
        crms = self.people(fx, 9)
        gold = self.define(api, GOLD)
        self.wait_backfill(api, gold)
        job, lines = self.export(api, {"filter": {"segments": [{"segmentId": gold["id"]}]}})
        self.assertEqual({self.crm_of(x) for x in lines}, {crms[0], crms[3], crms[6]})
        self.assertEqual(lines[0]["_acme"]["tier"], "gold")
        self.assertEqual(lines[0]["segmentMembership"]["ups"][gold["id"]]["status"], "realized")
        self.assertEqual(job["kith:progress"]["totalProfiles"], 9)
        self.assertEqual(job["kith:progress"]["profilesProcessed"], 9)
        self.assertIn("/file", job["_links"]["file"]["href"])
        # fields: only those paths (plus identityMap, which names the profile)
        _, lines = self.export(api, {"fields": "person.name.firstName",
                                     "filter": {"segments": [{"segmentId": gold["id"]}]}})
        for x in lines:
            self.assertEqual(set(x), {"person", "identityMap"})
            self.assertEqual(set(x["person"]["name"]), {"firstName"})
        # status filter: one customer leaves the segment
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crms[3])), "_acme": {"crmId": crms[3], "tier": "silver"}})
        _, lines = self.export(api, {"filter": {"segments": [{"segmentId": gold["id"], "segmentNs": "ups",
                                                              "status": ["exited"]}]}})
        self.assertEqual([self.crm_of(x) for x in lines], [crms[3]])
        _, lines = self.export(api, {"filter": {"segments": [{"segmentId": gold["id"],
                                                              "status": ["realized", "existing"]}]}})
        self.assertEqual({self.crm_of(x) for x in lines}, {crms[0], crms[6]})
        # no filter: every profile
        _, lines = self.export(api, {"fields": "_acme.tier"})
        self.assertEqual({self.crm_of(x) for x in lines}, set(crms))
        lst = api.get(EXPORTS + "?limit=2").json
        self.assertEqual(len(lst["records"]), 2)
        self.assertGreaterEqual(lst["page"]["totalCount"], 5)

    def test_bad_export_bodies(self):
        api, fx = self.sandbox()
        gold = self.define(api, GOLD)
        missing = "00000000-0000-4000-8000-000000000000"
        self.assertErrorPath(api.post(EXPORTS, {"filter": {"segments": [{"segmentId": missing}]}}),
                             "/filter/segments/0/segmentId")
        self.assertErrorPath(api.post(EXPORTS, {"filter": {"segments": [{"segmentId": gold["id"],
                                                                         "status": ["gone"]}]}}),
                             "/filter/segments/0/status/0")
        self.assertErrorPath(api.post(EXPORTS, {"filter": {"segments": [{"segmentId": gold["id"],
                                                                         "segmentNs": "AAM"}]}}),
                             "/filter/segments/0/segmentNs")
        self.assertErrorPath(api.post(EXPORTS, {"fields": 3}), "/fields")
        self.assertErrorPath(api.post(EXPORTS, {"mergePolicy": {"id": "no-such-policy"}}), "/mergePolicy/id")
        self.assertErrorPath(api.post(EXPORTS, []), "")
        self.assertProblem(api.get(EXPORTS + "/12345"), 404)
        self.assertProblem(api.get(EXPORTS + "/12345/file"), 404)


if __name__ == "__main__":
    kt.main()
