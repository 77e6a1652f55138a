"""Computed attributes (issue 6; aep-spec 6; API.md section 6): /data/core/ca/attributes CRUD with
draft and published states, SUM/COUNT/MIN/MAX/AVG/MOST_RECENT kept current on every event and read
at `_computed.<name>` with withCA=true, calendar lookback windows exact at read time (the window
edge, and ageing out with no new data under a faked clock), identity merges combining values,
segments reading `_computed.<name>` (re-evaluated on a change and when a value ages), backfill as a
job with progress, bad input refused with a 400 naming the problem."""

import datetime
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

CA = "/data/core/ca/attributes"
DEFS = "/data/core/ups/segment/definitions"
HOUR = 3600000
DAY = 86400000
PURCHASES = 'xEvent[eventType = "commerce.purchases"]'
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def now_ms():
    return int(time.time() * 1000)


def attr(expr, unit="DAYS", count=7, status="PUBLISHED", name=None, **kw):
    body = {"name": name or kt.uid("ca_").replace("-", "_"),
            "expression": {"type": "PQL", "format": "pql/text", "value": expr},
            "duration": {"count": count, "unit": unit}}
    if status:
        body["status"] = status
    body.update(kw)
    return body


def wait_backfill(api, a, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        g = api.get(CA + "/" + a["id"]).json
        if g.get("backfill", {}).get("state") == "succeeded" and g["status"]["job"] == "ENABLED":
            return g
        time.sleep(0.05)
    raise AssertionError("backfill did not finish: %r" % g)


class ComputedAttributesTest(kt.KithTestCase):
    fixture_needed = True

    def create(self, body, api=None):
        r = (api or self.admin).post(CA, body)
        self.assertStatus(r, 201)
        if r.json["status"]["type"] == "PUBLISHED":
            return wait_backfill(api or self.admin, r.json)
        return r.json

    def computed(self, crm, api=None):
        prof = (api or self.admin).profile("CRMID", crm, withCA="true")
        return prof["entity"].get("_computed", {})

    def event(self, crm, ts, etype="commerce.purchases", fx=None, **fields):
        ent = {"_id": kt.uid("ev-"), "timestamp": kt.iso(ts), "eventType": etype,
               "identityMap": kt.idmap(("CRMID", crm))}
        ent.update(fields)
        (fx or self.fx).ingest_event(ent)

    def purchase(self, crm, ts, total, fx=None):
        self.event(crm, ts, commerce={"order": {"priceTotal": total}}, fx=fx)

    # --- definitions ------------------------------------------------------------------------------

    def test_crud_draft_and_published(self):
        body = attr(PURCHASES + ".sum(commerce.order.priceTotal)", status=None,
                    displayName="Spend 7 days", description="lifetime-ish")
        d = self.create(body)
        for f in ("id", "type", "name", "displayName", "expression", "duration", "status",
                  "mergeFunction", "returnSchema", "path", "positionPath", "createEpoch",
                  "updateEpoch", "sandbox", "definedOn", "keepCurrent"):
            self.assertIn(f, d)
        self.assertEqual(d["type"], "ComputedAttribute")
        self.assertEqual(d["status"], {"type": "DRAFT", "job": "NOT_STARTED"})
        self.assertEqual(d["mergeFunction"]["value"], "SUM")
        self.assertEqual(d["positionPath"], ["_computed", d["name"]])
        self.assertEqual(self.admin.get(CA + "/" + d["id"]).json, d)
        lst = self.admin.get(CA + "?limit=40&state=draft").json
        self.assertIn(d["id"], [x["id"] for x in lst["computedAttributes"]])
        self.assertGreaterEqual(lst["_page"]["totalCount"], 1)
        self.assertNotIn(d["id"], [x["id"] for x in
                                   self.admin.get(CA + "?state=published&limit=40").json["computedAttributes"]])
        # A draft is not computed: no value yet.
        crm = kt.uid("c-")
        self.purchase(crm, now_ms() - 1000, 5)
        self.assertNotIn(d["name"], self.computed(crm))
        # A draft changes freely.
        r = self.admin.patch(CA + "/" + d["id"], {"expression": {"type": "PQL", "format": "pql/text",
                                                                 "value": PURCHASES + ".count()"}})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["mergeFunction"]["value"], "COUNT")
        self.assertEqual(r.json["returnSchema"]["type"], "integer")
        # Publishing backfills it.
        r = self.admin.patch(CA + "/" + d["id"], {"status": "PUBLISHED"})
        self.assertStatus(r, 200)
        g = wait_backfill(self.admin, r.json)
        self.assertEqual(g["status"]["type"], "PUBLISHED")
        self.assertEqual(self.computed(crm)[d["name"]], 1)
        # Published: labels change, the definition does not.
        r = self.admin.patch(CA + "/" + d["id"], {"displayName": "Orders 7 days"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["displayName"], "Orders 7 days")
        for patch, path in (({"duration": {"count": 3, "unit": "DAYS"}}, "/duration"),
                            ({"status": "DRAFT"}, "/status"),
                            ({"name": "renamed"}, "/name"),
                            ({"expression": {"type": "PQL", "value": PURCHASES + ".sum(commerce.order.priceTotal)"}},
                             "/expression")):
            r = self.admin.patch(CA + "/" + d["id"], patch)
            self.assertErrorPath(r, path)
        self.assertEqual(self.admin.get(CA + "/" + d["id"]).json["mergeFunction"]["value"], "COUNT")
        # Delete: gone, and so are its values.
        self.assertStatus(self.admin.delete(CA + "/" + d["id"]), 200)
        self.assertProblem(self.admin.get(CA + "/" + d["id"]), 404)
        self.assertProblem(self.admin.delete(CA + "/" + d["id"]), 404)
        self.assertNotIn(d["name"], self.computed(crm))
        self.assertProblem(self.admin.patch(CA + "/nope", {"displayName": "x"}), 404)

    def test_list_paging_and_sort(self):
        names = sorted(kt.uid("ls_").replace("-", "_") for _ in range(3))
        for n in names:
            self.create(attr(PURCHASES + ".count()", name=n, status="DRAFT"))
        lst = self.admin.get(CA + "?sortBy=name&limit=40").json["computedAttributes"]
        got = [x["name"] for x in lst if x["name"] in names]
        self.assertEqual(got, names)
        page = self.admin.get(CA + "?limit=1&offset=0").json
        self.assertEqual(page["_page"]["count"], 1)
        self.assertEqual(page["_page"]["limit"], 1)
        self.assertIn("next", page["_links"])
        for q in ("limit=0", "limit=41", "sortBy=color", "state=archived", "offset=-1"):
            self.assertProblem(self.admin.get(CA + "?" + q), 400)

    # --- values -----------------------------------------------------------------------------------

    def test_values_of_each_function(self):
        fns = {
            "sum": (PURCHASES + ".sum(commerce.order.priceTotal)", None),
            "count": (PURCHASES + ".count()", None),
            "min": (PURCHASES + ".min(commerce.order.priceTotal)", None),
            "max": (PURCHASES + ".max(commerce.order.priceTotal)", None),
            "avg": (PURCHASES + ".avg(commerce.order.priceTotal)", None),
            "last": (PURCHASES + ".mostRecent(commerce.order.priceTotal)", None),
            "first": (PURCHASES + ".min(timestamp)", None),
            "lastpage": ('xEvent[eventType = "web.webpagedetails.pageViews"].mostRecent(web.webPageDetails.name)', None),
        }
        made = {}
        for key, (expr, _) in fns.items():
            a = self.create(attr(expr, name=kt.uid(key + "_").replace("-", "_")))
            made[key] = a["name"]
        self.assertEqual(self.admin.get(CA + "/" + a["id"]).json["returnSchema"]["type"], "object")
        crm = kt.uid("c-")
        now = now_ms()
        t1, t2, t3 = now - 3 * DAY, now - 2 * DAY, now - DAY
        self.purchase(crm, t2, 30)
        self.purchase(crm, t1, 10.5)
        self.purchase(crm, t3, 20)
        self.event(crm, t1, "web.webpagedetails.pageViews", web={"webPageDetails": {"name": "home"}})
        self.event(crm, t2, "web.webpagedetails.pageViews", web={"webPageDetails": {"name": "cart"}})
        # An event of another type and one without the field do not count for sum/min/max.
        self.event(crm, now - 1000, "advertising.impressions")
        c = self.computed(crm)
        self.assertAlmostEqual(c[made["sum"]], 60.5)
        self.assertEqual(c[made["count"]], 3)
        self.assertAlmostEqual(c[made["min"]], 10.5)
        self.assertAlmostEqual(c[made["max"]], 30)
        self.assertAlmostEqual(c[made["avg"]], 60.5 / 3)
        self.assertEqual(c[made["last"]], {"value": 20, "timestamp": kt.iso(t3)})
        self.assertEqual(c[made["first"]], kt.iso(t1))
        self.assertEqual(c[made["lastpage"]]["value"], "cart")
        # Without withCA, no _computed.
        self.assertNotIn("_computed", self.admin.profile("CRMID", crm)["entity"])
        # Bulk lookup carries them too.
        r = self.admin.post(kt.Client.ENTITIES, {"schema": {"name": "_xdm.context.profile"}, "withCA": True,
                                                 "identities": [{"entityId": crm, "entityIdNS": {"code": "CRMID"}}]})
        self.assertStatus(r, 200)
        (prof,) = r.json.values()
        self.assertEqual(prof["entity"]["_computed"][made["count"]], 3)
        self.assertProblem(self.admin.lookup("CRMID", crm, withCA="maybe"), 400)
        # A new event moves the values at once.
        self.purchase(crm, now - 500, 100)
        c = self.computed(crm)
        self.assertEqual(c[made["count"]], 4)
        self.assertAlmostEqual(c[made["max"]], 100)

    def test_window_edge(self):
        """DAYS 1 covers yesterday and today (UTC calendar days): an event a minute before the
        window's start is out, one a minute after it is in."""
        a = self.create(attr(PURCHASES + ".count()", unit="DAYS", count=1))
        now = now_ms()
        if (now % DAY) > DAY - 120000:  # too close to midnight: the window would move under us
            time.sleep((DAY - now % DAY) / 1000.0 + 1)
            now = now_ms()
        start = (now // DAY - 1) * DAY
        crm = kt.uid("c-")
        self.purchase(crm, start - 60000, 1)
        self.assertEqual(self.computed(crm)[a["name"]], 0)
        self.purchase(crm, start + 60000, 1)
        self.purchase(crm, now - 1000, 1)
        self.assertEqual(self.computed(crm)[a["name"]], 2)

    def test_identity_merge_combines_values(self):
        a = self.create(attr(PURCHASES + ".sum(commerce.order.priceTotal)"))
        n = self.create(attr(PURCHASES + ".count()"))
        crm = kt.uid("c-")
        email = kt.uid("e-") + "@example.com"
        now = now_ms()
        self.purchase(crm, now - 5000, 60)
        self.fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(now - 4000),
                              "eventType": "commerce.purchases",
                              "commerce": {"order": {"priceTotal": 40}},
                              "identityMap": kt.idmap(("Email", email))})
        self.assertEqual(self.computed(crm)[a["name"]], 60)
        # A record links the two identities: one profile, the values of both.
        self.fx.ingest_record({"_acme": {"crmId": crm},
                               "identityMap": kt.idmap(("CRMID", crm), ("Email", email))})
        c = self.computed(crm)
        self.assertEqual(c[a["name"]], 100)
        self.assertEqual(c[n["name"]], 2)
        prof = self.admin.profile("Email", email, withCA="true")
        self.assertEqual(prof["entity"]["_computed"][a["name"]], 100)
        # Unlinking splits them again.
        r = self.admin.post("/data/core/identity/unlink", {"identity": {"namespace": "Email", "id": email}})
        self.assertStatus(r, 200)
        self.assertEqual(self.computed(crm)[a["name"]], 60)
        self.assertEqual(self.admin.profile("Email", email, withCA="true")["entity"]["_computed"][a["name"]], 40)

    def test_profile_delete_clears_values(self):
        a = self.create(attr(PURCHASES + ".count()"))
        crm = kt.uid("c-")
        self.purchase(crm, now_ms() - 1000, 5)
        self.fx.ingest_record({"_acme": {"crmId": crm}, "identityMap": kt.idmap(("CRMID", crm))})
        self.assertEqual(self.computed(crm)[a["name"]], 1)
        q = kt.qs(schema__name="_xdm.context.profile", entityId=crm, entityIdNS="CRMID")
        self.assertStatus(self.admin.delete(kt.Client.ENTITIES + "?" + q), 200, 202, 204)
        self.assertEqual(self.computed(crm)[a["name"]], 0)

    def test_dataset_delete_recomputes(self):
        a = self.create(attr(PURCHASES + ".sum(commerce.order.priceTotal)"))
        other = self.admin.create_dataset(self.fx.event_schema_id, kt.uid("web2-"))
        crm = kt.uid("c-")
        now = now_ms()
        self.purchase(crm, now - 3000, 30)
        self.fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(now - 2000),
                              "eventType": "commerce.purchases", "commerce": {"order": {"priceTotal": 12}},
                              "identityMap": kt.idmap(("CRMID", crm))}, other)
        self.assertEqual(self.computed(crm)[a["name"]], 42)
        self.assertStatus(self.admin.delete(kt.Client.DATASETS + "/" + other), 200)
        self.assertEqual(self.computed(crm)[a["name"]], 30)

    # --- segments ---------------------------------------------------------------------------------

    def test_segment_reads_computed_attribute(self):
        a = self.create(attr(PURCHASES + ".sum(commerce.order.priceTotal)"))
        seg = self.admin.post(DEFS, {"name": kt.uid("seg-"), "schema": {"name": "_xdm.context.profile"},
                                     "expression": {"type": "PQL", "format": "pql/text",
                                                    "value": "_computed.%s > 100" % a["name"]}})
        self.assertStatus(seg, 201)
        self.assertTrue(seg.json["evaluationInfo"]["continuous"]["enabled"])
        crm = kt.uid("c-")
        now = now_ms()
        self.purchase(crm, now - 3000, 60)
        prof = self.admin.profile("CRMID", crm)
        self.assertNotIn(seg.json["id"], kt.get_path(prof, "entity.segmentMembership.ups", {}) or {})
        self.purchase(crm, now - 2000, 50)
        prof = self.admin.profile("CRMID", crm)
        self.assertEqual(prof["entity"]["segmentMembership"]["ups"][seg.json["id"]]["status"], "realized")
        # The checker knows _computed's fields and their types.
        bad = self.admin.post(DEFS, {"name": kt.uid("seg-"), "expression": {
            "type": "PQL", "format": "pql/text", "value": "_computed.nosuchattribute > 1"}})
        self.assertErrorPath(bad, "/expression/value")
        bad = self.admin.post(DEFS, {"name": kt.uid("seg-"), "expression": {
            "type": "PQL", "format": "pql/text", "value": '_computed.%s = "x"' % a["name"]}})
        self.assertErrorPath(bad, "/expression/value")
        # An attribute a segment reads cannot be deleted.
        r = self.admin.delete(CA + "/" + a["id"])
        j = self.assertProblem(r, 409)
        self.assertIn(seg.json["id"], j["detail"])
        self.assertStatus(self.admin.delete(DEFS + "/" + seg.json["id"]), 200)
        self.assertStatus(self.admin.delete(CA + "/" + a["id"]), 200)

    # --- backfill ---------------------------------------------------------------------------------

    def test_backfill_over_stored_events(self):
        crms = [kt.uid("c-") for _ in range(20)]
        now = now_ms()
        for i, crm in enumerate(crms):
            for k in range(i % 4 + 1):
                self.purchase(crm, now - (k + 1) * HOUR, 10)
        r = self.admin.post(CA, attr(PURCHASES + ".sum(commerce.order.priceTotal)", unit="WEEKS", count=1))
        self.assertStatus(r, 201)
        self.assertEqual(r.json["status"]["job"], "PROCESSING")
        g = wait_backfill(self.admin, r.json)
        bf = g["backfill"]
        self.assertEqual(bf["clustersDone"], bf["clustersTotal"])
        self.assertGreaterEqual(bf["clustersTotal"], len(crms))
        self.assertGreaterEqual(bf["eventsScanned"], sum(i % 4 + 1 for i in range(len(crms))))
        self.assertEqual(bf["progress"], 100.0)
        for i, crm in enumerate(crms):
            self.assertEqual(self.computed(crm)[g["name"]], 10 * (i % 4 + 1))
        # Several published at once: their backfills (sharing passes over the events) all finish right.
        more = [self.admin.post(CA, attr(PURCHASES + expr, unit="DAYS", count=2)).json
                for expr in (".count()", ".max(commerce.order.priceTotal)", ".avg(commerce.order.priceTotal)")]
        more = [wait_backfill(self.admin, a) for a in more]
        for i, crm in enumerate(crms):
            c = self.computed(crm)
            self.assertEqual(c[more[0]["name"]], i % 4 + 1)
            self.assertEqual(c[more[1]["name"]], 10)
            self.assertEqual(c[more[2]["name"]], 10)
        metrics = self.server.raw("GET", "/metrics").text
        for name in ("kith_ca_backfill_events_total", "kith_ca_recomputations_total",
                     "kith_ca_attribute_updates_total", "kith_ca_update_cpu_seconds"):
            self.assertIn(name + " ", metrics)
        line = [x for x in metrics.splitlines() if x.startswith("kith_ca_backfill_events_total ")][0]
        self.assertGreaterEqual(int(line.split()[1]), bf["eventsScanned"])

    # --- bad input --------------------------------------------------------------------------------

    def test_bad_input_changes_nothing(self):
        before = self.admin.get(CA + "?limit=40").json["_page"]["totalCount"]
        taken = self.create(attr(PURCHASES + ".count()", status="DRAFT"))["name"]
        cases = [
            (attr(PURCHASES + ".sum(commerce.order.priceTotal", ), "/expression/value", "expected ')'"),
            (attr('xEvent[eventType = ].sum(commerce.order.priceTotal)'), "/expression/value", "line 1"),
            (attr(PURCHASES + ".median(commerce.order.priceTotal)"), "/expression/value", "unsupported function"),
            (attr("person.name.firstName"), "/expression/value", "xEvent"),
            (attr('xEvent[eventType = "a" and timestamp occurs < 2 days before now].count()'),
             "/expression/value", "now"),
            (attr(PURCHASES + ".sum(commerce.nosuch)"), "/expression/value", "unknown event field"),
            (attr(PURCHASES + ".sum(eventType)"), "/expression/value", "numeric"),
            (attr(PURCHASES + ".count()", unit="HOURS", count=25), "/duration/count", "out of range"),
            (attr(PURCHASES + ".count()", unit="DAYS", count=8), "/duration/count", "out of range"),
            (attr(PURCHASES + ".count()", unit="WEEKS", count=0), "/duration/count", "out of range"),
            (attr(PURCHASES + ".count()", unit="MONTHS", count=7), "/duration/count", "out of range"),
            (attr(PURCHASES + ".count()", unit="YEARS", count=1), "/duration/unit", None),
            (attr(PURCHASES + ".count()", name=taken), "/name", "name clash"),
            (attr(PURCHASES + ".count()", name="9lives"), "/name", None),
            (attr(PURCHASES + ".count()", status="LIVE"), "/status", None),
        ]
        for body, path, words in cases:
            r = self.admin.post(CA, body)
            self.assertErrorPath(r, path)
            if words:
                self.assertIn(words, r.json["detail"], r)
        self.assertProblem(self.admin.post(CA, [1, 2]), 400)
        # What kith decides is not taken from a request: the job status, the times.
        r = self.admin.post(CA, attr(PURCHASES + ".count()", status={"type": "PUBLISHED", "job": "ENABLED"},
                                     createEpoch=1, updateEpoch=1, **{"kith:slot": 7}))
        self.assertStatus(r, 201)
        self.assertEqual(r.json["status"]["job"], "PROCESSING")
        self.assertGreater(r.json["createEpoch"], 1)
        self.assertNotIn("kith:slot", r.json)
        wait_backfill(self.admin, r.json)
        before += 1
        self.assertEqual(self.admin.get(CA + "?limit=40").json["_page"]["totalCount"], before + 1)

    def test_limit_per_sandbox(self):
        srv = self.new_server()
        api = srv.api()
        for i in range(50):
            self.assertStatus(api.post(CA, attr(PURCHASES + ".count()", status="DRAFT")), 201)
        r = api.post(CA, attr(PURCHASES + ".count()", status="DRAFT"))
        self.assertProblem(r, 400)
        self.assertIn("at most 50", r.json["detail"])


class ComputedAttributesRestartTest(kt.KithTestCase):
    def test_definitions_and_values_survive_restart(self):
        srv = self.new_server()
        api = srv.api()
        fx = kt.Fixture(api)
        r = api.post(CA, attr(PURCHASES + ".sum(commerce.order.priceTotal)"))
        self.assertStatus(r, 201)
        wait_backfill(api, r.json)
        seg = api.post(DEFS, {"name": kt.uid("seg-"), "schema": {"name": "_xdm.context.profile"},
                              "expression": {"type": "PQL", "format": "pql/text",
                                             "value": "_computed.%s > 10" % r.json["name"]}})
        self.assertStatus(seg, 201)
        crm = kt.uid("c-")
        fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(now_ms() - 1000),
                         "eventType": "commerce.purchases", "commerce": {"order": {"priceTotal": 7}},
                         "identityMap": kt.idmap(("CRMID", crm))})
        srv.restart()
        api = srv.api()
        g = api.get(CA + "/" + r.json["id"])
        self.assertStatus(g, 200)
        self.assertEqual(g.json["status"], {"type": "PUBLISHED", "job": "ENABLED"})
        prof = api.profile("CRMID", crm, withCA="true")
        self.assertEqual(prof["entity"]["_computed"][r.json["name"]], 7)
        # The segment that reads it still compiles after the restart and follows the value.
        fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(now_ms() - 500),
                         "eventType": "commerce.purchases", "commerce": {"order": {"priceTotal": 5}},
                         "identityMap": kt.idmap(("CRMID", crm))})
        prof = api.profile("CRMID", crm, withCA="true")
        self.assertEqual(prof["entity"]["_computed"][r.json["name"]], 12)
        self.assertEqual(prof["entity"]["segmentMembership"]["ups"][seg.json["id"]]["status"], "realized")


@kt.unittest.skipUnless(os.path.exists(FAKETIME), "libfaketime is not installed (scripts/deps.sh installs it)")
class ComputedAttributesAgeingTest(kt.KithTestCase):
    """Values age out with no new data: kithd runs on a faked clock that starts 20 s before an hour
    boundary; an event of the previous hour leaves a 1-hour window at the boundary, and a segment
    reading the value exits then (its timer)."""

    def test_value_ages_out_and_segment_exits(self):
        start = datetime.datetime(2031, 5, 20, 10, 59, 40, tzinfo=datetime.timezone.utc)
        boundary = int(datetime.datetime(2031, 5, 20, 11, 0, 0, tzinfo=datetime.timezone.utc).timestamp() * 1000)
        asan = os.environ.get("ASAN_OPTIONS", "")
        srv = self.new_server(env={"LD_PRELOAD": FAKETIME,
                                   "FAKETIME": "@" + start.strftime("%Y-%m-%d %H:%M:%S"),
                                   "FAKETIME_DONT_RESET": "1",
                                   # a sanitized kithd: libfaketime is preloaded before the ASan runtime
                                   "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"})
        t0 = time.time()
        api = srv.api()
        fx = kt.Fixture(api)
        a = api.post(CA, attr(PURCHASES + ".count()", unit="HOURS", count=1))
        self.assertStatus(a, 201)
        wait_backfill(api, a.json)
        seg = api.post(DEFS, {"name": kt.uid("seg-"), "schema": {"name": "_xdm.context.profile"},
                              "expression": {"type": "PQL", "format": "pql/text",
                                             "value": "_computed.%s >= 1" % a.json["name"]}})
        self.assertStatus(seg, 201)
        crm = kt.uid("c-")
        # 09:30 is in the 1-hour window until 11:00 (it covers the previous hour and this one).
        fx.ingest_event({"_id": kt.uid("ev-"), "timestamp": kt.iso(boundary - 90 * 60000),
                         "eventType": "commerce.purchases", "identityMap": kt.idmap(("CRMID", crm))})
        prof = api.profile("CRMID", crm, withCA="true")
        if time.time() - t0 > 15:
            self.skipTest("the machine is too slow for the faked boundary")
        self.assertEqual(prof["entity"]["_computed"][a.json["name"]], 1)
        self.assertEqual(prof["entity"]["segmentMembership"]["ups"][seg.json["id"]]["status"], "realized")
        deadline = t0 + 60
        status = value = None
        while time.time() < deadline:
            prof = api.profile("CRMID", crm, withCA="true")
            value = prof["entity"]["_computed"][a.json["name"]]
            status = prof["entity"]["segmentMembership"]["ups"][seg.json["id"]]["status"]
            if value == 0 and status == "exited":
                break
            time.sleep(0.2)
        self.assertEqual(value, 0)
        self.assertEqual(status, "exited")


if __name__ == "__main__":
    kt.unittest.main()
