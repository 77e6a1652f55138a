"""The Segment tracking API over raw HTTP (API.md section 3, docs/CONTRACT-NOTES.md): Segment-type
connections and their write keys, every /v1 endpoint and browser short form, each write-key location,
gzip bodies, any Content-Type, CORS preflight, messageId deduplication, the mapping to XDM (traits,
identities, events, alias stitching) and the errors (400 naming the field, 401 for unknown keys)."""

import base64
import gzip
import json
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

C = kt.Client


def basic(key):
    return "Basic " + base64.b64encode((key + ":").encode()).decode()


def mid():
    return "test-" + uuid.uuid4().hex


class SegmentApiTest(kt.KithTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.admin.post(C.CONNECTIONS, {"name": kt.uid("segment "), "type": "segment"})
        if r.status != 201:
            raise AssertionError("segment connection create failed: %r" % r)
        cls.conn = r.json
        cls.key = r.json["writeKey"]

    def send(self, path, body, key=None, how="basic", headers=None, raw=None):
        key = key or self.key
        hdrs = {"Content-Type": "application/json"}
        if how == "basic":
            hdrs["Authorization"] = basic(key)
        elif how == "body":
            body = dict(body, writeKey=key)
        elif how == "query":
            path += "?writeKey=" + key
        if headers:
            hdrs.update(headers)
        data = raw if raw is not None else json.dumps(body).encode()
        return self.server.raw("POST", path, data, hdrs)

    def ok(self, r):
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"success": True}, r)

    # --- connections -----------------------------------------------------------------------------

    def test_connection_shape(self):
        for f in ("id", "writeKey", "profileDataset", "eventDataset"):
            self.assertIn(f, self.conn)
        self.assertEqual(self.conn["userIdNamespace"], "CRMID")
        self.assertEqual(self.conn["anonymousIdNamespace"], "AnonymousId")
        for ds in (self.conn["profileDataset"], self.conn["eventDataset"]):
            self.assertStatus(self.admin.get(C.DATASETS + "/" + ds), 200)
        r = self.admin.get(C.CONNECTIONS + "/" + self.conn["id"])
        self.assertStatus(r, 200)
        # A second connection in the same sandbox reuses the built-in schemas.
        r2 = self.admin.post(C.CONNECTIONS, {"name": kt.uid("segment "), "type": "segment"})
        self.assertStatus(r2, 201)
        self.assertNotEqual(r2.json["writeKey"], self.key)

    def test_connection_bad_input(self):
        r = self.admin.post(C.CONNECTIONS, {"type": "segment"})
        self.assertErrorPath(r, "/name")
        r = self.admin.post(C.CONNECTIONS, {"name": "x", "type": "segment", "userIdNamespace": "NoSuchNs"})
        self.assertErrorPath(r, "/userIdNamespace")
        r = self.admin.post(C.CONNECTIONS, {"name": "x", "type": "segment", "eventDataset": "0" * 24})
        self.assertErrorPath(r, "/eventDataset")
        r = self.admin.post(C.CONNECTIONS, {"name": "x", "type": "segment",
                                            "eventDataset": self.conn["profileDataset"]})
        self.assertErrorPath(r, "/eventDataset")
        r = self.admin.post(C.CONNECTIONS, {"name": "x", "type": "segment"}, key=None)
        self.assertProblem(r, 401)

    def test_connection_with_given_datasets_and_namespace(self):
        r = self.admin.post(C.CONNECTIONS, {"name": "mine", "type": "segment",
                                            "profileDataset": self.conn["profileDataset"],
                                            "eventDataset": self.conn["eventDataset"],
                                            "userIdNamespace": "Email"})
        self.assertStatus(r, 201)
        self.assertEqual(r.json["profileDataset"], self.conn["profileDataset"])
        key = r.json["writeKey"]
        email = kt.uid() + "@seg.example"
        self.ok(self.send("/v1/identify", {"userId": email, "traits": {"plan": "pro"}}, key=key))
        p = self.admin.profile("Email", email)
        self.assertEqual(kt.get_path(p["entity"], "_segment.traits.plan"), "pro")

    # --- write keys --------------------------------------------------------------------------------

    def test_write_key_locations(self):
        for how in ("basic", "body", "query"):
            user = kt.uid("wk-")
            self.ok(self.send("/v1/identify", {"userId": user, "traits": {"how": how}}, how=how))
            p = self.admin.profile("CRMID", user)
            self.assertEqual(kt.get_path(p["entity"], "_segment.traits.how"), how)

    def test_unknown_or_missing_write_key(self):
        body = {"userId": "x", "event": "E", "messageId": mid()}
        r = self.send("/v1/track", body, key="nope")
        self.assertProblem(r, 401)
        r = self.send("/v1/track", body, how="none")
        self.assertProblem(r, 401)
        r = self.send("/v1/batch", {"batch": [dict(body, type="track")]}, how="body", key="nope")
        self.assertProblem(r, 401)

    # --- every endpoint ----------------------------------------------------------------------------

    def test_every_endpoint_and_short_form(self):
        for long, short in (("identify", "i"), ("track", "t"), ("page", "p"), ("screen", "s"),
                            ("group", "g"), ("alias", "a")):
            for path in ("/v1/" + long, "/v1/" + short):
                user = kt.uid("ep-")
                body = {"userId": user, "messageId": mid(), "event": "Clicked", "name": "Home",
                        "groupId": "acme", "previousId": kt.uid("prev-"), "traits": {"k": "v"},
                        "properties": {"p": 1}}
                self.ok(self.send(path, body))
                if long == "identify":
                    p = self.admin.profile("CRMID", user)
                    self.assertEqual(kt.get_path(p["entity"], "_segment.traits.k"), "v")
                else:
                    r = self.admin.events("CRMID", user)
                    self.assertStatus(r, 200)
                    self.assertEqual(len(r.json["children"]), 1, (path, r))
                    ev = r.json["children"][0]["entity"]
                    self.assertEqual(ev["_id"], body["messageId"])
                    self.assertEqual(ev["_segment"]["type"], long)
        for path in ("/v1/batch", "/v1/b"):
            user = kt.uid("b-")
            self.ok(self.send(path, {"batch": [
                {"type": "identify", "userId": user, "traits": {"a": 1}, "messageId": mid()},
                {"type": "track", "userId": user, "event": "E", "messageId": mid()}]}))
            self.assertEqual(len(self.admin.events("CRMID", user).json["children"]), 1)

    def test_any_content_type(self):
        for ct in ("text/plain", "text/plain; charset=UTF-8", "application/x-www-form-urlencoded", None):
            user = kt.uid("ct-")
            h = {"Content-Type": ct} if ct else {}
            r = self.send("/v1/track", {"userId": user, "event": "E", "messageId": mid()}, headers=h)
            self.ok(r)
            self.assertEqual(len(self.admin.events("CRMID", user).json["children"]), 1)

    def test_gzip(self):
        user = kt.uid("gz-")
        body = json.dumps({"batch": [{"type": "track", "userId": user, "event": "Zipped",
                                      "messageId": mid()}]}).encode()
        r = self.send("/v1/batch", None, raw=gzip.compress(body),
                      headers={"Content-Encoding": "gzip",
                               "Content-Type": "application/x-www-form-urlencoded"})
        self.ok(r)
        ev = self.admin.events("CRMID", user).json["children"]
        self.assertEqual(ev[0]["entity"]["eventType"], "Zipped")
        r = self.send("/v1/batch", None, raw=b"not gzip at all", headers={"Content-Encoding": "gzip"})
        self.assertProblem(r, 400)
        # A bomb: small on the wire, over the body limit once inflated.
        bomb = gzip.compress(b'{"batch": [' + b" " * (3 << 20) + b"]}")
        r = self.send("/v1/batch", None, raw=bomb, headers={"Content-Encoding": "gzip"})
        self.assertProblem(r, 413)

    def test_cors(self):
        origin = "https://shop.example"
        for path in ("/v1/t", "/v1/batch", "/v1/i"):
            r = self.server.raw("OPTIONS", path, None, {
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type"})
            self.assertIn(r.status, (200, 204), r)
            self.assertEqual(r.headers.get("access-control-allow-origin"), origin)
            self.assertEqual(r.headers.get("access-control-allow-credentials"), "true")
            allow = r.headers.get("access-control-allow-headers", "").lower()
            for h in ("authorization", "content-type", "x-retry-count"):
                self.assertIn(h, allow)
        r = self.send("/v1/t", {"userId": kt.uid(), "event": "E", "messageId": mid()},
                      headers={"Origin": origin, "Content-Type": "text/plain"})
        self.ok(r)
        self.assertEqual(r.headers.get("access-control-allow-origin"), origin)

    # --- dedup -------------------------------------------------------------------------------------

    def test_message_id_dedup(self):
        user = kt.uid("dd-")
        m = mid()
        self.ok(self.send("/v1/identify", {"userId": user, "traits": {"v": 1}, "messageId": m}))
        # A retry with the same messageId (here with other content, to see it) is acknowledged and
        # not applied again.
        self.ok(self.send("/v1/identify", {"userId": user, "traits": {"v": 2}, "messageId": m},
                          headers={"X-Retry-Count": "1"}))
        p = self.admin.profile("CRMID", user)
        self.assertEqual(kt.get_path(p["entity"], "_segment.traits.v"), 1)
        e = mid()
        batch = {"batch": [{"type": "track", "userId": user, "event": "E", "messageId": e}]}
        self.ok(self.send("/v1/batch", batch))
        self.ok(self.send("/v1/batch", batch))
        self.assertEqual(len(self.admin.events("CRMID", user).json["children"]), 1)
        # A new messageId is a new message.
        self.ok(self.send("/v1/identify", {"userId": user, "traits": {"v": 3}, "messageId": mid()}))
        p = self.admin.profile("CRMID", user)
        self.assertEqual(kt.get_path(p["entity"], "_segment.traits.v"), 3)

    def test_dedup_window_zero_disables(self):
        r = self.admin.post(C.CONNECTIONS, {"name": "nodedup", "type": "segment", "dedupWindowSeconds": 0})
        self.assertStatus(r, 201)
        key = r.json["writeKey"]
        user, m = kt.uid("nd-"), mid()
        self.ok(self.send("/v1/identify", {"userId": user, "traits": {"v": 1}, "messageId": m}, key=key))
        self.ok(self.send("/v1/identify", {"userId": user, "traits": {"v": 2}, "messageId": m}, key=key))
        self.assertEqual(kt.get_path(self.admin.profile("CRMID", user)["entity"], "_segment.traits.v"), 2)
        r = self.admin.post(C.CONNECTIONS, {"name": "x", "type": "segment", "dedupWindowSeconds": -1})
        self.assertErrorPath(r, "/dedupWindowSeconds")

    # --- mapping -----------------------------------------------------------------------------------

    def test_identify_mapping_and_stitching(self):
        user, anon = kt.uid("u-"), kt.uid("anon-")
        email = user + "@seg.example"
        self.ok(self.send("/v1/identify", {
            "userId": user, "anonymousId": anon, "messageId": mid(),
            "traits": {"email": email, "firstName": "Ann", "lastName": "Lee", "phone": "+33 6 00",
                       "address": {"street": "1 rue X", "city": "Paris", "postalCode": "75001",
                                   "country": "France", "floor": 3},
                       "plan": "pro", "logins": 7}}))
        for ns, v in (("CRMID", user), ("AnonymousId", anon)):
            p = self.admin.profile(ns, v)
            ent = p["entity"]
            self.assertEqual(kt.get_path(ent, "personalEmail.address"), email)
            self.assertEqual(kt.get_path(ent, "person.name.firstName"), "Ann")
            self.assertEqual(kt.get_path(ent, "person.name.lastName"), "Lee")
            self.assertEqual(kt.get_path(ent, "mobilePhone.number"), "+33 6 00")
            self.assertEqual(kt.get_path(ent, "homeAddress.street1"), "1 rue X")
            self.assertEqual(kt.get_path(ent, "homeAddress.city"), "Paris")
            self.assertEqual(kt.get_path(ent, "homeAddress.postalCode"), "75001")
            self.assertEqual(kt.get_path(ent, "_segment.traits.plan"), "pro")
            self.assertEqual(kt.get_path(ent, "_segment.traits.logins"), 7)
            self.assertEqual(kt.get_path(ent, "_segment.traits.address.floor"), 3)
            self.assertIsNone(kt.get_path(ent, "_segment.traits.email"))
            self.assertEqual(kt.identities_of(p), {("crmid", user), ("anonymousid", anon)})

    def test_track_page_screen_mapping(self):
        anon = kt.uid("anon-")
        t1, t2, t3 = mid(), mid(), mid()
        self.ok(self.send("/v1/batch", {"context": {"ip": "203.0.113.9"}, "batch": [
            {"type": "track", "anonymousId": anon, "event": "Order Completed", "messageId": t1,
             "timestamp": "2024-05-01T10:00:00.000Z",
             "properties": {"revenue": 42.5, "currency": "EUR", "sku": "s1"}},
            {"type": "page", "anonymousId": anon, "name": "Pricing", "category": "Docs", "messageId": t2,
             "timestamp": "2024-05-01T10:01:00Z",
             "properties": {"url": "https://ex.example/pricing", "referrer": "https://q.example/"}},
            {"type": "screen", "anonymousId": anon, "name": "Home", "messageId": t3,
             "originalTimestamp": "2024-05-01T10:02:00Z", "sentAt": "2024-05-01T10:02:00Z"}]}))
        r = self.admin.events("AnonymousId", anon, orderby="timestamp")
        self.assertStatus(r, 200)
        evs = [c["entity"] for c in r.json["children"]]
        self.assertEqual([e["_id"] for e in evs], [t1, t2, t3])
        track, page, screen = evs
        self.assertEqual(track["eventType"], "Order Completed")
        self.assertEqual(kt.get_path(track, "commerce.order.priceTotal"), 42.5)
        self.assertEqual(kt.get_path(track, "commerce.order.currencyCode"), "EUR")
        self.assertEqual(kt.get_path(track, "_segment.properties.sku"), "s1")
        self.assertEqual(kt.get_path(track, "_segment.context.ip"), "203.0.113.9")
        self.assertEqual(r.json["children"][0]["timestamp"], 1714557600000)
        self.assertEqual(page["eventType"], "web.webpagedetails.pageViews")
        self.assertEqual(kt.get_path(page, "web.webPageDetails.name"), "Pricing")
        self.assertEqual(kt.get_path(page, "web.webPageDetails.URL"), "https://ex.example/pricing")
        self.assertEqual(kt.get_path(page, "web.webReferrer.URL"), "https://q.example/")
        self.assertEqual(kt.get_path(page, "_segment.category"), "Docs")
        self.assertEqual(screen["eventType"], "application.screenView")
        self.assertEqual(kt.get_path(screen, "_segment.name"), "Home")

    def test_alias_stitches(self):
        anon, user = kt.uid("anon-"), kt.uid("u-")
        self.ok(self.send("/v1/track", {"anonymousId": anon, "event": "Browse", "messageId": mid()}))
        self.ok(self.send("/v1/identify", {"userId": user, "traits": {"firstName": "Bo"}, "messageId": mid()}))
        self.ok(self.send("/v1/alias", {"userId": user, "previousId": anon, "messageId": mid()}))
        p = self.admin.profile("AnonymousId", anon)
        self.assertEqual(kt.get_path(p["entity"], "person.name.firstName"), "Bo")
        self.assertIn(("crmid", user), kt.identities_of(p))
        types = sorted(c["entity"]["eventType"] for c in self.admin.events("CRMID", user).json["children"])
        self.assertEqual(types, ["Browse", "segment.alias"])
        # previousId that is a known userId is taken in the userId namespace.
        user2 = kt.uid("u-")
        self.ok(self.send("/v1/alias", {"userId": user2, "previousId": user, "messageId": mid()}))
        p = self.admin.profile("CRMID", user2)
        self.assertIn(("crmid", user), kt.identities_of(p))

    def test_group(self):
        user = kt.uid("g-")
        self.ok(self.send("/v1/group", {"userId": user, "groupId": "acme", "traits": {"name": "Acme Inc"},
                                        "messageId": mid()}))
        ev = self.admin.events("CRMID", user).json["children"][0]["entity"]
        self.assertEqual(ev["eventType"], "segment.group")
        self.assertEqual(kt.get_path(ev, "_segment.groups.acme.name"), "Acme Inc")

    # --- bad input ---------------------------------------------------------------------------------

    def test_bad_input_names_the_field(self):
        cases = [
            ("/v1/track", {"event": "E", "messageId": mid()}, "/userId"),
            ("/v1/track", {"userId": "x", "messageId": mid()}, "/event"),
            ("/v1/alias", {"userId": "x", "messageId": mid()}, "/previousId"),
            ("/v1/group", {"userId": "x", "messageId": mid()}, "/groupId"),
            ("/v1/track", {"userId": "x", "event": "E", "properties": [1]}, "/properties"),
            ("/v1/identify", {"userId": "x", "traits": {"email": "a@@"}}, "/traits/email"),
            ("/v1/batch", {"batch": {}}, "/batch"),
            ("/v1/batch", {"batch": [{"type": "nope", "userId": "x"}]}, "/batch/0/type"),
        ]
        for path, body, field in cases:
            r = self.send(path, body)
            self.assertErrorPath(r, field)
        r = self.send("/v1/batch", None, raw=b'{"batch": [')
        j = self.assertProblem(r, 400)
        self.assertIn("line 1", j["detail"])
        r = self.send("/v1/track", None, raw=b"")
        self.assertProblem(r, 400)
        r = self.send("/v1/track", None, raw=b"[1,2]", how="query")
        self.assertProblem(r, 400)

    def test_batch_partly_bad_stores_the_good(self):
        user = kt.uid("pb-")
        r = self.send("/v1/batch", {"batch": [
            {"type": "track", "userId": user, "event": "Good", "messageId": mid()},
            {"type": "track", "userId": user, "messageId": mid()},
            {"type": "track", "userId": user, "event": "Good2", "messageId": mid()}]})
        self.assertErrorPath(r, "/batch/1/event")
        self.assertEqual(len(self.admin.events("CRMID", user).json["children"]), 2)

    def test_metrics_and_no_5xx_on_junk(self):
        junk = [b"null", b"1", b'"s"', b'{"batch": null}', b'{"batch": [null, 1, "x", []]}',
                b'{"userId": {"a": 1}, "event": "E"}', b'{"userId": "x", "event": 5}',
                b'{"userId": "x", "event": "E", "context": 3}', b'{"anonymousId": 12, "event": "E"}',
                b'{"userId": "x", "event": "E", "timestamp": "garbage"}', b"\xff\xfe"]
        for body in junk:
            for path in ("/v1/track", "/v1/batch", "/v1/identify", "/v1/alias"):
                r = self.send(path, None, raw=body)
                self.assertLess(r.status, 500, (path, body, r))


if __name__ == "__main__":
    kt.main()
