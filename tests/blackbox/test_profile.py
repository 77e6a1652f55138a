"""Identity stitching, the merged profile (newest fragment wins per leaf, arrays atomic, identityMap
union) and the events of a profile with paging (API.md section 5, aep-spec section 1)."""

import os
import random
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

C = kt.Client
T0 = 1700000000000  # 2023-11-14, in the past


def normalized(prof):
    """Entity with identityMap as a set, for comparing the same profile read by different identities."""
    ent = dict(prof["entity"])
    im = kt.identity_map_of(ent)
    ent.pop("identityMap", None)
    ent.pop("identities", None)
    return ent, im, kt.identities_of(prof)


class ProfileTest(kt.KithTestCase):
    fixture_needed = True

    # --- stitching -----------------------------------------------------------------------------

    def test_stitching_four_identities(self):
        fx = self.fx
        email, crm, ecid, phone = kt.uid() + "@stitch.example", kt.uid("crm"), kt.ecid(), \
            "+1555" + str(random.randint(1000000, 9999999))
        fx.ingest_record({"identityMap": kt.idmap(("Email", email), ("CRMID", crm), primary=0),
                          "person": {"name": {"firstName": "Ann"}}, "_acme": {"tier": "silver"}}, fx.crm)
        # Not yet linked to the ECID.
        self.assertStatus(self.admin.lookup("ECID", ecid), 404)
        fx.ingest_event(kt.web_event([("CRMID", crm), ("ECID", ecid)], T0, page="cart"))
        fx.ingest_record({"identityMap": kt.idmap(("ECID", ecid), ("Phone", phone), primary=0),
                          "_acme": {"points": 500}}, fx.loyalty)
        want = {("email", email), ("crmid", crm), ("ecid", ecid), ("phone", phone)}
        seen = []
        for ns, v in (("Email", email), ("CRMID", crm), ("ECID", ecid), ("Phone", phone)):
            r = self.admin.lookup(ns, v)
            self.assertStatus(r, 200)
            self.assertEqual(len(r.json), 1, "one merged profile: %r" % r)
            p = kt.profile_of(r)
            self.assertEqual(kt.identities_of(p), want, "lookup by %s" % ns)
            self.assertEqual(kt.identity_map_of(p["entity"]), want, "identityMap must be the union")
            ent = p["entity"]
            self.assertEqual(kt.get_path(ent, "person.name.firstName"), "Ann")
            self.assertEqual(kt.get_path(ent, "_acme.tier"), "silver")
            self.assertEqual(kt.get_path(ent, "_acme.points"), 500)
            self.assertNotIn("web", ent, "event fields do not belong in the record union view")
            srcs = p.get("sources")
            self.assertIsInstance(srcs, list, "profile needs sources: %r" % r)
            self.assertIn(fx.crm, srcs)
            self.assertIn(fx.loyalty, srcs)
            self.assertIn("entityId", p)
            self.assertIn("lastModifiedAt", p)
            seen.append(normalized(p))
        for s in seen[1:]:
            self.assertEqual(s, seen[0], "every identity must give the same merged profile")
        # The event belongs to the whole cluster.
        r = self.admin.events("Phone", phone)
        self.assertStatus(r, 200)
        self.assertEqual(len(r.json["children"]), 1)

    def test_two_clusters_merge_later(self):
        fx = self.fx
        e1, e2, crm = kt.uid() + "@m1.example", kt.uid() + "@m2.example", kt.uid("crm")
        fx.ingest_record({"identityMap": kt.idmap(("Email", e1)), "_acme": {"note": "one"}}, fx.crm)
        fx.ingest_record({"identityMap": kt.idmap(("Email", e2)), "_acme": {"tier": "gold"}}, fx.loyalty)
        self.assertNotIn(("email", e2), kt.identities_of(self.admin.profile("Email", e1)))
        fx.ingest_event(kt.web_event([("Email", e1), ("CRMID", crm)], T0))
        fx.ingest_event(kt.web_event([("Email", e2), ("CRMID", crm)], T0 + 1000))
        for ns, v in (("Email", e1), ("Email", e2), ("CRMID", crm)):
            p = self.admin.profile(ns, v)
            self.assertEqual(kt.identities_of(p), {("email", e1), ("email", e2), ("crmid", crm)})
            self.assertEqual(kt.get_path(p["entity"], "_acme.note"), "one")
            self.assertEqual(kt.get_path(p["entity"], "_acme.tier"), "gold")
        r = self.admin.events("Email", e1)
        self.assertEqual(len(r.json["children"]), 2)

    def test_descriptor_identity_links(self):
        fx = self.fx
        email, crm = kt.uid() + "@desc.example", kt.uid("crm")
        fx.ingest_record({"identityMap": kt.idmap(("Email", email)), "_acme": {"crmId": crm}}, fx.crm)
        p = self.admin.profile("CRMID", crm)
        self.assertEqual(kt.identities_of(p), {("email", email), ("crmid", crm)})

    # --- merge -----------------------------------------------------------------------------------

    def test_newest_fragment_wins_per_leaf_and_arrays_atomic(self):
        fx = self.fx
        email = kt.uid() + "@merge.example"
        ids = kt.idmap(("Email", email))
        fx.ingest_record({"identityMap": ids, "person": {"name": {"firstName": "Ann", "lastName": "Lee"}},
                          "_acme": {"tags": ["a", "b", "c"], "prefs": {"color": "red", "size": 3},
                                    "tier": "bronze"}}, fx.crm)
        time.sleep(0.02)
        fx.ingest_record({"identityMap": ids, "person": {"name": {"firstName": "Anna"}},
                          "_acme": {"tags": ["z"], "prefs": {"color": "blue"}}}, fx.loyalty)
        ent = self.admin.profile("Email", email)["entity"]
        self.assertEqual(kt.get_path(ent, "person.name.firstName"), "Anna", "newer fragment wins")
        self.assertEqual(kt.get_path(ent, "person.name.lastName"), "Lee", "older leaf kept when newer lacks it")
        self.assertEqual(kt.get_path(ent, "_acme.tags"), ["z"], "arrays are replaced, not concatenated")
        self.assertEqual(kt.get_path(ent, "_acme.prefs.color"), "blue")
        self.assertEqual(kt.get_path(ent, "_acme.prefs.size"), 3, "merge is per leaf value")
        self.assertEqual(kt.get_path(ent, "_acme.tier"), "bronze")
        time.sleep(0.02)
        # A new record for the same (dataset, identity) replaces that fragment and is now newest.
        fx.ingest_record({"identityMap": ids, "person": {"name": {"firstName": "Annie"}},
                          "_acme": {"tags": ["q", "r"]}}, fx.crm)
        ent = self.admin.profile("Email", email)["entity"]
        self.assertEqual(kt.get_path(ent, "person.name.firstName"), "Annie")
        self.assertEqual(kt.get_path(ent, "_acme.tags"), ["q", "r"])
        self.assertEqual(kt.get_path(ent, "_acme.prefs.color"), "blue")
        self.assertIsNone(kt.get_path(ent, "person.name.lastName"),
                          "the replaced crm fragment no longer holds lastName")
        self.assertIsNone(kt.get_path(ent, "_acme.tier"))

    def test_newest_wins_across_cluster_members(self):
        fx = self.fx
        e, ecid = kt.uid() + "@mx.example", kt.ecid()
        fx.ingest_record({"identityMap": kt.idmap(("Email", e), ("ECID", ecid), primary=0),
                          "_acme": {"note": "first", "score": 1.5}}, fx.crm)
        time.sleep(0.02)
        fx.ingest_record({"identityMap": kt.idmap(("ECID", ecid)), "_acme": {"note": "second"}}, fx.loyalty)
        ent = self.admin.profile("Email", e)["entity"]
        self.assertEqual(kt.get_path(ent, "_acme.note"), "second")
        self.assertEqual(kt.get_path(ent, "_acme.score"), 1.5)

    def test_types_round_trip(self):
        fx = self.fx
        e = kt.uid() + "@types.example"
        acme = {"points": 123456, "score": 2.25, "vip": True, "joined": "2021-03-04T05:06:07Z",
                "birthday": "1990-05-06", "code": "abc", "tags": [], "attrs": {"x": "1", "y": "2"},
                "note": "caf\u00e9 \u2603 \"quoted\" \\ back"}
        fx.ingest_record({"identityMap": kt.idmap(("Email", e)), "_acme": acme,
                          "personalEmail": {"address": e}, "homeAddress": {"city": "Paris"}}, fx.crm)
        ent = self.admin.profile("Email", e)["entity"]
        for k, v in acme.items():
            if k == "joined":
                continue  # a server may normalise the instant's rendering
            self.assertEqual(ent["_acme"].get(k), v, "field %s" % k)
        self.assertTrue(ent["_acme"]["joined"].startswith("2021-03-04T05:06:07"))
        self.assertEqual(kt.get_path(ent, "homeAddress.city"), "Paris")

    def test_unknown_identity_404(self):
        r = self.admin.lookup("Email", kt.uid() + "@nobody.example")
        self.assertProblem(r, 404)
        email = kt.uid() + "@ns.example"
        self.fx.ingest_record({"identityMap": kt.idmap(("Email", email))})
        self.assertStatus(self.admin.lookup("Email", email), 200)
        self.assertStatus(self.admin.lookup("ECID", email), 404)  # right value, wrong namespace

    def test_identity_values_with_special_characters(self):
        fx = self.fx
        vals = [("Email", "J.Doe+tag%s@exämple.com" % kt.uid()),
                ("CRMID", "crm/%s|a:b?c&d=e#f %%20" % kt.uid()),
                ("Phone", "+33 (0)1 23 45 67 89 " + kt.uid())]
        fx.ingest_record({"identityMap": kt.idmap(*vals), "_acme": {"note": "special"}})
        want = {(ns.lower(), v) for ns, v in vals}
        for ns, v in vals:
            p = self.admin.profile(ns, v)
            self.assertEqual(kt.identities_of(p), want)
            self.assertEqual(kt.get_path(p["entity"], "_acme.note"), "special")
        # Identity values are exact: a different case is a different identity.
        self.assertStatus(self.admin.lookup("CRMID", vals[1][1].upper()), 404)

    def test_bad_query_parameters_are_4xx(self):
        email = kt.uid() + "@q.example"
        self.fx.ingest_record({"identityMap": kt.idmap(("Email", email))})
        for params in ({"limit": "abc"}, {"limit": "-5"}, {"startTime": "yesterday"},
                       {"orderby": "sideways"}, {"start": "%%%garbage"}):
            r = self.admin.events("Email", email, **params)
            self.assertTrue(r.status < 500, "%s: %r" % (params, r))
            if r.status >= 400:
                self.assertIn("application/problem+json", r.content_type)
        r = self.admin.get(C.ENTITIES + "?schema.name=_xdm.context.nosuch&entityId=a&entityIdNS=Email")
        self.assertTrue(400 <= r.status < 500, "%r" % r)
        r = self.admin.get(C.ENTITIES + "?schema.name=_xdm.context.profile&entityId=%ZZ&entityIdNS=Email")
        self.assertTrue(400 <= r.status < 500, "%r" % r)
        self.assertStatus(self.server.raw("GET", "/livez"), 200)

    def test_fields_projection(self):
        email = kt.uid() + "@fields.example"
        self.fx.ingest_record({"identityMap": kt.idmap(("Email", email)),
                               "person": {"name": {"firstName": "F", "lastName": "L"}},
                               "_acme": {"tier": "gold"}})
        p = self.admin.profile("Email", email, fields="person.name.firstName")
        self.assertEqual(kt.get_path(p["entity"], "person.name.firstName"), "F")
        self.assertIsNone(kt.get_path(p["entity"], "_acme.tier"), "fields must project the entity")
        self.assertIsNone(kt.get_path(p["entity"], "person.name.lastName"))

    def test_bulk_lookup(self):
        email = kt.uid() + "@bulk.example"
        self.fx.ingest_record({"identityMap": kt.idmap(("Email", email)),
                               "person": {"name": {"firstName": "Bulky" + email[:6]}}})
        r = self.admin.post(C.ENTITIES, {"schema": {"name": "_xdm.context.profile"},
                                         "identities": [
                                             {"entityId": email, "entityIdNS": {"code": "Email"}},
                                             {"entityId": kt.uid() + "@none.example",
                                              "entityIdNS": {"code": "Email"}}]})
        self.assertStatus(r, 200, 207)
        self.assertIn("Bulky" + email[:6], r.text)

    def test_delete_profile(self):
        fx = self.fx
        email, ecid = kt.uid() + "@del.example", kt.ecid()
        fx.ingest_record({"identityMap": kt.idmap(("Email", email), ("ECID", ecid), primary=0),
                          "_acme": {"note": "bye"}})
        fx.ingest_event(kt.web_event([("ECID", ecid)], T0))
        self.assertStatus(self.admin.lookup("Email", email), 200)
        r = self.admin.delete(C.ENTITIES + "?" + kt.qs(schema__name="_xdm.context.profile",
                                                       entityId=email, entityIdNS="Email"))
        self.assertStatus(r, 200, 202, 204)
        deadline = time.time() + 10
        while True:
            r = self.admin.lookup("Email", email)
            ev = self.admin.events("ECID", ecid)
            gone = (r.status == 404 or kt.get_path(kt.profile_of(r)["entity"], "_acme.note") is None) and \
                (ev.status == 404 or not ev.json.get("children"))
            if gone or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertTrue(gone, "profile delete left data: %r %r" % (r, ev))

    # --- events ------------------------------------------------------------------------------------

    def make_cluster_with_events(self, n_ecid=4, n_crm=3):
        fx = self.fx
        email, crm, ecid = kt.uid() + "@ev.example", kt.uid("crm"), kt.ecid()
        fx.ingest_record({"identityMap": kt.idmap(("Email", email), ("CRMID", crm), ("ECID", ecid),
                                                  primary=0)}, fx.crm)
        times = random.sample(range(1, 500), n_ecid + n_crm)
        events = []
        for i, off in enumerate(times):
            ids = [("ECID", ecid)] if i < n_ecid else [("CRMID", crm)]
            ev = kt.web_event(ids, T0 + off * 1000, page="p%d" % i, seq=i)
            fx.ingest_event(ev)
            events.append(ev)
        events.sort(key=lambda e: e["timestamp"])
        return email, crm, ecid, events

    def check_child(self, child, ev):
        self.assertEqual(child.get("entityId"), ev["_id"])
        self.assertIsInstance(child.get("timestamp"), int, "timestamp must be epoch ms: %r" % child)
        self.assertEqual(child["timestamp"], self.ms_of(ev))
        self.assertEqual(kt.get_path(child.get("entity", {}), "web.webPageDetails.name"),
                         ev["web"]["webPageDetails"]["name"])
        self.assertIn("relatedEntityId", child)

    @staticmethod
    def ms_of(ev):
        ts = ev["timestamp"]
        t = time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
        import calendar
        return calendar.timegm(t) * 1000 + int(ts[20:23])

    def test_events_time_order_all_members(self):
        email, crm, ecid, events = self.make_cluster_with_events()
        for ns, v in (("Email", email), ("CRMID", crm), ("ECID", ecid)):
            r = self.admin.events(ns, v)
            self.assertStatus(r, 200)
            j = r.json
            ch = j.get("children")
            self.assertEqual(len(ch), len(events), "events of every cluster member: %r" % r)
            for c, ev in zip(ch, events):
                self.check_child(c, ev)
            self.assertEqual(j["_page"].get("count"), len(events))
            self.assertIn(j["_page"].get("next"), ("", None))

    def test_events_orderby_desc(self):
        email, _, _, events = self.make_cluster_with_events()
        r = self.admin.events("Email", email, orderby="-timestamp")
        self.assertStatus(r, 200)
        self.assertEqual([c["entityId"] for c in r.json["children"]], [e["_id"] for e in reversed(events)])

    def test_events_paging(self):
        email, _, _, events = self.make_cluster_with_events(5, 3)
        got, pages, start = [], 0, None
        while True:
            r = self.admin.events("Email", email, limit=3, start=start)
            self.assertStatus(r, 200)
            j = r.json
            ch = j["children"]
            self.assertLessEqual(len(ch), 3)
            self.assertEqual(j["_page"]["count"], len(ch))
            got.extend(ch)
            pages += 1
            nxt = j["_page"].get("next")
            if not nxt:
                href = kt.get_path(j, "_links.next.href")
                self.assertIn(href, ("", None), "last page: _links.next.href must be empty")
                break
            self.assertTrue(kt.get_path(j, "_links.next.href"), "a next page needs _links.next.href")
            self.assertLess(pages, 10, "paging does not end")
            start = nxt
        self.assertEqual(pages, 3)
        self.assertEqual([c["entityId"] for c in got], [e["_id"] for e in events])

    def test_events_next_href_works(self):
        email, _, _, events = self.make_cluster_with_events(3, 1)
        r = self.admin.events("Email", email, limit=2)
        href = kt.get_path(r.json, "_links.next.href")
        self.assertTrue(href)
        if href.startswith("/entities"):
            href = "/data/core/ups/access" + href
        elif href.startswith("entities"):
            href = "/data/core/ups/access/" + href
        r2 = self.admin.get(href)
        self.assertStatus(r2, 200)
        self.assertEqual([c["entityId"] for c in r2.json["children"]], [e["_id"] for e in events[2:4]])

    def test_events_time_window(self):
        email, _, _, events = self.make_cluster_with_events()
        lo, hi = self.ms_of(events[1]), self.ms_of(events[4])
        r = self.admin.events("Email", email, startTime=lo, endTime=hi)
        self.assertStatus(r, 200)
        self.assertEqual([c["entityId"] for c in r.json["children"]], [e["_id"] for e in events[1:4]],
                         "startTime inclusive, endTime exclusive")

    def test_events_paging_with_equal_timestamps(self):
        ecid = kt.ecid()
        ids = []
        for i in range(7):
            ev = kt.web_event([("ECID", ecid)], T0 + 777000, seq=i)
            self.fx.ingest_event(ev)
            ids.append(ev["_id"])
        got, start = [], None
        for _ in range(10):
            r = self.admin.events("ECID", ecid, limit=2, start=start)
            self.assertStatus(r, 200)
            got.extend(c["entityId"] for c in r.json["children"])
            start = r.json["_page"].get("next")
            if not start:
                break
        self.assertEqual(sorted(got), sorted(ids), "paging over equal timestamps must return each event once")

    def test_event_timestamp_offsets_and_fractions(self):
        ecid = kt.ecid()
        cases = [("2023-11-14T23:13:20+01:00", 1700000000000),
                 ("2023-11-14T22:13:20.123456Z", 1700000000123),
                 ("2023-11-14T17:13:21.5-05:00", 1700000001500)]
        for ts, _ms in cases:
            ev = kt.web_event([("ECID", ecid)], T0)
            ev["timestamp"] = ts
            self.fx.ingest_event(ev)
        r = self.admin.events("ECID", ecid)
        self.assertStatus(r, 200)
        self.assertEqual([c["timestamp"] for c in r.json["children"]], sorted(ms for _, ms in cases))

    def test_missing_namespace_is_4xx(self):
        r = self.admin.get(C.ENTITIES + "?" + kt.qs(schema__name="_xdm.context.profile",
                                                    entityId="someone@example.com"))
        self.assertTrue(400 <= r.status < 500, "%r" % r)
        r = self.admin.get(C.ENTITIES + "?" + kt.qs(entityId="x@example.com", entityIdNS="Email"))
        self.assertTrue(400 <= r.status < 500, "missing schema.name: %r" % r)

    def test_dataset_not_enabled_for_profile(self):
        fx = self.fx
        ds = self.admin.create_dataset(fx.profile_schema_id, kt.uid("lake-only-"), profile=False,
                                       identity=False)
        email = kt.uid() + "@lake.example"
        fx.ingest_record({"identityMap": kt.idmap(("Email", email)), "_acme": {"note": "base"}}, fx.crm)
        r = self.admin.send(fx.inlet, fx.record({"identityMap": kt.idmap(("Email", email)),
                                                 "_acme": {"note": "lake"}}, ds))
        self.assertTrue(r.status == 200 or 400 <= r.status < 500, "%r" % r)
        p = self.admin.profile("Email", email)
        self.assertEqual(kt.get_path(p["entity"], "_acme.note"), "base",
                         "a dataset not enabled for Profile must not feed the profile")
        self.assertNotIn(ds, p.get("sources", []))

    def test_concurrent_chain_merges_into_one_cluster(self):
        import threading
        n = 24
        crms = [kt.uid("chain") for _ in range(n + 1)]
        envs = [self.fx.record({"identityMap": kt.idmap(("CRMID", crms[i]), ("CRMID", crms[i + 1])),
                                "_acme": {"note": "link%d" % i}}) for i in range(n)]
        random.shuffle(envs)
        errors = []

        def worker(part):
            for env in part:
                r = self.admin.send(self.fx.inlet, env)
                if r.status != 200:
                    errors.append(r)
        threads = [threading.Thread(target=worker, args=(envs[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        want = {("crmid", c) for c in crms}
        for c in (crms[0], crms[n // 2], crms[n]):
            self.assertEqual(kt.identities_of(self.admin.profile("CRMID", c)), want)

    def test_events_default_limit_and_full_traversal(self):
        ecid = kt.ecid()
        msgs = [self.fx.event(kt.web_event([("ECID", ecid)], T0 + i * 10, seq=i)) for i in range(1200)]
        for k in range(0, len(msgs), 400):
            r = self.admin.send_batch(self.fx.inlet, msgs[k:k + 400])
            self.assertStatus(r, 207)
        seen, start, pages = [], None, 0
        while True:
            r = self.admin.events("ECID", ecid, start=start)
            self.assertStatus(r, 200)
            ch = r.json["children"]
            self.assertLessEqual(len(ch), 1000, "default limit is 1000")
            seen.extend(c["_acme_seq"] if "_acme_seq" in c else c["entity"]["_acme"]["seq"] for c in ch)
            pages += 1
            start = r.json["_page"].get("next")
            if not start or pages > 5:
                break
        self.assertEqual(seen, list(range(1200)))

    def test_two_fragments_same_dataset_different_primary(self):
        fx = self.fx
        email, crm = kt.uid() + "@frag.example", kt.uid("crm")
        fx.ingest_record({"identityMap": kt.idmap(("Email", email), ("CRMID", crm), primary=0),
                          "_acme": {"note": "one", "tier": "gold"}}, fx.crm)
        time.sleep(0.02)
        fx.ingest_record({"identityMap": kt.idmap(("CRMID", crm), primary=0),
                          "_acme": {"note": "two"}}, fx.crm)
        ent = self.admin.profile("Email", email)["entity"]
        self.assertEqual(kt.get_path(ent, "_acme.note"), "two")
        self.assertEqual(kt.get_path(ent, "_acme.tier"), "gold",
                         "fragments are per (dataset, primary identity): the Email fragment stays")

    def test_events_dedup_on_id(self):
        fx = self.fx
        ecid = kt.ecid()
        ev = kt.web_event([("ECID", ecid)], T0 + 5000)
        fx.ingest_event(ev)
        fx.ingest_event(ev)
        r = self.admin.events("ECID", ecid)
        self.assertEqual(len(r.json["children"]), 1, "the same event twice is stored once")

    def test_events_of_profile_without_events(self):
        email = kt.uid() + "@noevents.example"
        self.fx.ingest_record({"identityMap": kt.idmap(("Email", email))})
        for params in ({}, {"orderby": "-timestamp"}, {"limit": 1}):
            r = self.admin.events("Email", email, **params)
            self.assertTrue(r.status == 404 or (r.status == 200 and r.json.get("children") == []),
                            "%r" % r)
            if r.status == 200:
                self.assertEqual(r.json["_page"].get("count"), 0)
        self.assertStatus(self.server.raw("GET", "/livez"), 200)

    def test_map_merge_per_key(self):
        fx = self.fx
        email = kt.uid() + "@map.example"
        fx.ingest_record({"identityMap": kt.idmap(("Email", email)), "_acme": {"attrs": {"a": "1", "b": "2"}}},
                         fx.crm)
        time.sleep(0.02)
        fx.ingest_record({"identityMap": kt.idmap(("Email", email)), "_acme": {"attrs": {"b": "3"}}},
                         fx.loyalty)
        ent = self.admin.profile("Email", email)["entity"]
        self.assertEqual(kt.get_path(ent, "_acme.attrs"), {"a": "1", "b": "3"})

    def test_events_unknown_identity(self):
        r = self.admin.events("ECID", kt.ecid())
        self.assertTrue(r.status == 404 or (r.status == 200 and r.json.get("children") == []), "%r" % r)

    def test_profile_from_events_only(self):
        ecid = kt.ecid()
        self.fx.ingest_event(kt.web_event([("ECID", ecid)], T0))
        r = self.admin.lookup("ECID", ecid)
        self.assertStatus(r, 200)
        self.assertIn(("ecid", ecid), kt.identities_of(kt.profile_of(r)))


if __name__ == "__main__":
    kt.main()
