"""API keys, roles, sandboxes and strict sandbox isolation (API.md section 1)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

C = kt.Client


def new_key(testcase, api, role, sandboxes=("prod",), name=None):
    """Creates a key; returns (id, secret). The secret is shown once, in the create response."""
    r = api.post(C.KEYS, {"name": name or kt.uid("key-"), "role": role, "sandboxes": list(sandboxes)})
    testcase.assertStatus(r, 200, 201)
    j = r.json
    testcase.assertIsInstance(j, dict, "key create must answer an object: %r" % r)
    secret = None
    for f in ("key", "apiKey", "api_key", "secret", "token", "value"):
        if isinstance(j.get(f), str) and j.get(f):
            secret = j[f]
            break
    testcase.assertIsNotNone(secret, "key create response must carry the key: %r" % r)
    testcase.assertIn("id", j, "key create response must carry the key's id: %r" % r)
    testcase.assertNotEqual(j["id"], secret, "the key id must not be the secret")
    return j["id"], secret


def new_sandbox(testcase, api, name=None, type_="development"):
    name = name or ("sb" + kt.uid())
    r = api.post(C.SANDBOXES, {"name": name, "title": "Sandbox " + name, "type": type_}, sandbox=None)
    testcase.assertStatus(r, 200, 201)
    return name


class AuthTest(kt.KithTestCase):
    fixture_needed = True

    # --- authentication ----------------------------------------------------------------------

    def test_missing_key_401(self):
        r = self.admin.get(C.SCHEMAS, key=None)
        self.assertProblem(r, 401)
        r = self.admin.post(C.SCHEMAS, {"title": "x", "meta:class": kt.PROFILE_CLASS}, key=None)
        self.assertProblem(r, 401)

    def test_unknown_key_401(self):
        r = self.admin.get(C.SCHEMAS, key="no-such-key-" + kt.uid())
        self.assertProblem(r, 401)
        r = self.admin.get(C.SCHEMAS, headers={"Authorization": "Basic Zm9vOmJhcg=="}, key=None)
        self.assertProblem(r, 401)

    def test_x_api_key_accepted(self):
        r = self.admin.get(C.SCHEMAS, use_x_api_key=True)
        self.assertStatus(r, 200)
        r = self.admin.get(C.SCHEMAS, key="wrong-" + kt.uid(), use_x_api_key=True)
        self.assertProblem(r, 401)

    def test_profile_read_requires_key(self):
        r = self.admin.lookup("Email", "nobody@example.com")
        self.assertStatus(r, 404)
        r = self.admin.with_key(None).lookup("Email", "nobody@example.com")
        self.assertProblem(r, 401)

    # --- key admin ---------------------------------------------------------------------------

    def test_key_lifecycle(self):
        kid, secret = new_key(self, self.admin, "viewer", name="lifecycle-viewer")
        viewer = self.admin.with_key(secret)
        self.assertStatus(viewer.get(C.SCHEMAS), 200)
        r = self.admin.get(C.KEYS)
        self.assertStatus(r, 200)
        self.assertIn(kid, r.text, "GET keys must list the new key")
        self.assertIn("lifecycle-viewer", r.text)
        self.assertNotIn(secret, r.text, "GET keys must never show the secret")
        r = self.admin.delete(C.KEYS + "/" + kt.enc(kid))
        self.assertStatus(r, 200, 204)
        self.assertProblem(viewer.get(C.SCHEMAS), 401)
        r = self.admin.get(C.KEYS)
        self.assertNotIn(kid, r.text, "a revoked key must not be listed: %r" % r)

    def test_keys_stored_hashed(self):
        _, secret = new_key(self, self.admin, "viewer")
        self.assertStatus(self.admin.with_key(secret).get(C.SCHEMAS), 200)
        # Whatever is on disk (store files, WAL, logs) never holds a key in clear, neither a created
        # key nor the admin key given by KITH_ADMIN_KEY.
        found = []
        for root, _dirs, files in os.walk(self.server.data_dir):
            for f in files:
                p = os.path.join(root, f)
                try:
                    with open(p, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                for s in (secret, self.server.admin_key):
                    if s.encode() in data:
                        found.append((f, s[:6] + "..."))
        self.assertEqual(found, [], "keys must be stored hashed")

    def test_key_create_rejects_bad_body(self):
        self.assertProblem(self.admin.post(C.KEYS, {"role": "viewer", "sandboxes": ["prod"]}), 400, 422)
        self.assertProblem(self.admin.post(C.KEYS, {"name": "x", "sandboxes": ["prod"]}), 400, 422)
        self.assertProblem(self.admin.post(C.KEYS, {"name": "x", "role": "viewer", "sandboxes": "prod"}),
                           400, 422)

    def test_key_create_rejects_bad_role(self):
        r = self.admin.post(C.KEYS, {"name": "bad", "role": "superuser", "sandboxes": ["prod"]})
        self.assertProblem(r, 400, 422)

    def test_delete_unknown_key_404(self):
        r = self.admin.delete(C.KEYS + "/" + kt.uid("nokey"))
        self.assertProblem(r, 404)

    def test_keys_admin_only(self):
        _, ed = new_key(self, self.admin, "editor")
        _, vw = new_key(self, self.admin, "viewer")
        for secret in (ed, vw):
            c = self.admin.with_key(secret)
            self.assertProblem(c.get(C.KEYS), 403)
            r = c.post(C.KEYS, {"name": "x", "role": "admin", "sandboxes": ["prod"]})
            self.assertProblem(r, 403)

    # --- roles ---------------------------------------------------------------------------------

    def test_viewer_reads_but_cannot_write(self):
        _, secret = new_key(self, self.admin, "viewer")
        v = self.admin.with_key(secret)
        self.assertStatus(v.get(C.SCHEMAS), 200)
        self.assertStatus(v.get(C.DATASETS), 200)
        before = self.admin.get(C.SCHEMAS).text
        title = kt.uid("ViewerSchema ")
        r = v.create_schema(title, kt.PROFILE_CLASS, [kt.FG_PERSON], check=False)
        self.assertProblem(r, 403)
        self.assertNotIn(title, self.admin.get(C.SCHEMAS).text, "a 403 must store nothing")
        r = v.post(C.DATASETS, {"name": "x", "schemaRef": {"id": self.fx.profile_schema_id}})
        self.assertProblem(r, 403)
        email = kt.uid() + "@viewer.example"
        self.fx.ingest_record({"identityMap": kt.idmap(("Email", email))})
        self.assertStatus(v.lookup("Email", email), 200)

    def test_ingest_key_ingests_but_cannot_read(self):
        _, secret = new_key(self, self.admin, "ingest")
        ing = self.admin.with_key(secret)
        inlet = self.admin.create_inlet(auth=True)
        email = kt.uid() + "@ingest.example"
        env = self.fx.record({"identityMap": kt.idmap(("Email", email)),
                              "person": {"name": {"firstName": "Ingo"}}})
        # An authenticated inlet needs a key ...
        self.assertProblem(self.admin.send(inlet, env, key=None), 401)
        self.assertStatus(self.admin.lookup("Email", email), 404)
        # ... and the ingest key is enough.
        r = ing.send(inlet, env, key=secret)
        self.assertStatus(r, 200)
        self.assertStatus(self.admin.lookup("Email", email), 200)
        # But it cannot read profiles or touch the control plane.
        self.assertProblem(ing.lookup("Email", email), 403)
        self.assertProblem(ing.events("Email", email), 403)
        r = ing.create_schema(kt.uid("IngestSchema "), kt.PROFILE_CLASS, [kt.FG_PERSON], check=False)
        self.assertProblem(r, 403)

    def test_ingest_key_limited_to_its_sandbox(self):
        sb = new_sandbox(self, self.admin)
        _, secret = new_key(self, self.admin, "ingest", sandboxes=[sb])
        inlet = self.admin.create_inlet(auth=True)  # an inlet of prod
        email = kt.uid() + "@other-sb.example"
        r = self.admin.send(inlet, self.fx.record({"identityMap": kt.idmap(("Email", email))}), key=secret)
        self.assertProblem(r, 403)
        self.assertStatus(self.admin.lookup("Email", email), 404)

    def test_revoked_key_401_with_x_api_key(self):
        kid, secret = new_key(self, self.admin, "admin")
        self.assertStatus(self.admin.get(C.SCHEMAS, key=secret, use_x_api_key=True), 200)
        self.assertStatus(self.admin.delete(C.KEYS + "/" + kt.enc(kid)), 200, 204)
        self.assertProblem(self.admin.get(C.SCHEMAS, key=secret, use_x_api_key=True), 401)

    def test_viewer_cannot_ingest_into_authenticated_inlet(self):
        _, secret = new_key(self, self.admin, "viewer")
        inlet = self.admin.create_inlet(auth=True)
        email = kt.uid() + "@viewer-ingest.example"
        env = self.fx.record({"identityMap": kt.idmap(("Email", email))})
        r = self.admin.send(inlet, env, key=secret)
        self.assertProblem(r, 403)
        self.assertStatus(self.admin.lookup("Email", email), 404)

    def test_editor_limited_to_its_sandboxes(self):
        sb = new_sandbox(self, self.admin)
        _, secret = new_key(self, self.admin, "editor", sandboxes=[sb])
        ed = self.admin.with_key(secret).in_sandbox(sb)
        sch = ed.create_schema(kt.uid("EditorSchema "), kt.PROFILE_CLASS,
                               [kt.FG_PERSON, kt.FG_IDENTITYMAP])
        self.assertStatus(ed.get(C.SCHEMAS + "/" + kt.enc(sch["$id"])), 200)
        ds = ed.create_dataset(sch["$id"])
        self.assertStatus(ed.get(C.DATASETS + "/" + ds), 200)
        # Elsewhere: 403, and nothing stored.
        prod = self.admin.with_key(secret).in_sandbox("prod")
        title = kt.uid("EditorProd ")
        r = prod.create_schema(title, kt.PROFILE_CLASS, [kt.FG_PERSON], check=False)
        self.assertProblem(r, 403)
        self.assertProblem(prod.get(C.SCHEMAS), 403)
        self.assertNotIn(title, self.admin.get(C.SCHEMAS).text)
        # Default sandbox (no header) is prod: also 403.
        self.assertProblem(self.admin.with_key(secret).get(C.SCHEMAS), 403)
        # Editors do not manage sandboxes.
        r = ed.post(C.SANDBOXES, {"name": "sb" + kt.uid(), "title": "t", "type": "development"})
        self.assertProblem(r, 403)
        self.assertProblem(ed.delete(C.SANDBOXES + "/" + sb), 403)

    # --- sandboxes -----------------------------------------------------------------------------

    def test_sandbox_create_list_delete(self):
        name = new_sandbox(self, self.admin)
        r = self.admin.get(C.SANDBOXES, sandbox=None)
        self.assertStatus(r, 200)
        names = {d.get("name") for d in kt.find_dicts(r.json, lambda d: "name" in d)}
        self.assertIn(name, names)
        self.assertIn("prod", names, "prod always exists")
        # Duplicate create is a 4xx.
        r = self.admin.post(C.SANDBOXES, {"name": name, "title": "again", "type": "development"})
        self.assertTrue(400 <= r.status < 500, "duplicate sandbox: %r" % r)
        r = self.admin.delete(C.SANDBOXES + "/" + name, sandbox=None)
        self.assertStatus(r, 200, 202, 204)
        r = self.admin.get(C.SANDBOXES, sandbox=None)
        names = {d.get("name") for d in kt.find_dicts(r.json, lambda d: "name" in d)}
        self.assertNotIn(name, names)

    def test_sandbox_create_rejects_bad_body(self):
        r = self.admin.post(C.SANDBOXES, {"title": "no name", "type": "development"})
        self.assertProblem(r, 400, 422)
        r = self.admin.post(C.SANDBOXES, {"name": "sb" + kt.uid(), "title": "t", "type": "weird"})
        self.assertProblem(r, 400, 422)

    def test_default_sandbox_is_prod(self):
        sch = self.admin.create_schema(kt.uid("Default sb "), kt.PROFILE_CLASS, [kt.FG_IDENTITYMAP])
        url = C.SCHEMAS + "/" + kt.enc(sch["$id"])
        self.assertStatus(self.admin.get(url, sandbox="prod"), 200)
        sb = new_sandbox(self, self.admin)
        self.assertStatus(self.admin.get(url, sandbox=sb), 404)

    def test_prod_cannot_be_deleted(self):
        r = self.admin.delete(C.SANDBOXES + "/prod")
        self.assertTrue(400 <= r.status < 500, "deleting prod must be refused: %r" % r)
        self.assertStatus(self.admin.get(C.SCHEMAS), 200)

    def test_sandbox_admin_only(self):
        _, vw = new_key(self, self.admin, "viewer")
        v = self.admin.with_key(vw)
        r = v.post(C.SANDBOXES, {"name": "sb" + kt.uid(), "title": "t", "type": "development"})
        self.assertProblem(r, 403)

    def test_unknown_sandbox_header_rejected(self):
        r = self.admin.in_sandbox("nosuch" + kt.uid()).get(C.SCHEMAS)
        self.assertTrue(r.status in (400, 403, 404), "unknown sandbox: %r" % r)
        self.assertIn("application/problem+json", r.content_type)

    # --- isolation -----------------------------------------------------------------------------

    def test_strict_isolation(self):
        a = new_sandbox(self, self.admin)
        b = new_sandbox(self, self.admin)
        api_a = self.admin.in_sandbox(a)
        api_b = self.admin.in_sandbox(b)
        fx_a = kt.Fixture(api_a)
        fx_b = kt.Fixture(api_b)
        email = kt.uid() + "@iso.example"
        ecid = kt.ecid()
        fx_a.ingest_record({"identityMap": kt.idmap(("Email", email), ("ECID", ecid)),
                            "person": {"name": {"firstName": "Alice"}}})
        fx_a.ingest_event(kt.web_event([("ECID", ecid)], 1700000000000))
        self.assertStatus(api_a.lookup("Email", email), 200)
        # Invisible in B and in prod.
        self.assertStatus(api_b.lookup("Email", email), 404)
        self.assertStatus(api_b.lookup("ECID", ecid), 404)
        self.assertStatus(self.admin.lookup("Email", email), 404)
        r = api_b.events("ECID", ecid)
        self.assertTrue(r.status == 404 or (r.status == 200 and not r.json.get("children")),
                        "events of A visible in B: %r" % r)
        # Datasets and schemas of A are invisible in B.
        r = api_b.get(C.DATASETS)
        self.assertStatus(r, 200)
        for ds in (fx_a.crm, fx_a.loyalty, fx_a.web):
            self.assertNotIn(ds, r.text)
            self.assertStatus(api_b.get(C.DATASETS + "/" + ds), 404)
        self.assertStatus(api_b.get(C.SCHEMAS + "/" + kt.enc(fx_a.profile_schema_id)), 404)
        self.assertNotIn(fx_a.profile_schema_id, api_b.get(C.SCHEMAS).text)
        # B's identical identity stays separate.
        fx_b.ingest_record({"identityMap": kt.idmap(("Email", email)),
                            "person": {"name": {"firstName": "Bob"}}})
        pa = api_a.profile("Email", email)
        pb = api_b.profile("Email", email)
        self.assertEqual(kt.get_path(pa["entity"], "person.name.firstName"), "Alice")
        self.assertEqual(kt.get_path(pb["entity"], "person.name.firstName"), "Bob")
        # A's dataset cannot be written through B's inlet.
        r = api_b.send(fx_b.inlet, fx_a.record({"identityMap": kt.idmap(("Email", "x" + email))}))
        self.assertTrue(400 <= r.status < 500, "cross-sandbox dataset accepted: %r" % r)
        self.assertStatus(api_a.lookup("Email", "x" + email), 404)
        # Import batches of A are invisible in B.
        r = api_a.post("/data/foundation/import/batches", {"datasetId": fx_a.crm, "inputFormat": {"format": "json"}})
        self.assertStatus(r, 201)
        bid = r.json["id"]
        self.assertStatus(api_a.get("/data/foundation/catalog/batches/" + bid), 200)
        self.assertTrue(400 <= api_b.get("/data/foundation/catalog/batches/" + bid).status < 500)
        r = api_b.request("PUT", "/data/foundation/import/batches/%s/datasets/%s/files/f.json" % (bid, fx_a.crm),
                          data=b"{}\n", content_type="application/octet-stream")
        self.assertTrue(400 <= r.status < 500, "B wrote into A's batch: %r" % r)
        # Deleting B does not touch A.
        self.assertStatus(self.admin.delete(C.SANDBOXES + "/" + b, sandbox=None), 200, 202, 204)
        pa = api_a.profile("Email", email)
        self.assertEqual(kt.get_path(pa["entity"], "person.name.firstName"), "Alice")
        self.assertStatus(api_a.get(C.DATASETS + "/" + fx_a.crm), 200)
        # Deleting A deletes its data: a new sandbox of the same name starts empty.
        self.assertStatus(self.admin.delete(C.SANDBOXES + "/" + a, sandbox=None), 200, 202, 204)
        new_sandbox(self, self.admin, name=a)
        deadline = time.time() + 10
        while True:
            r = api_a.lookup("Email", email)
            if r.status == 404 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertStatus(r, 404)
        self.assertStatus(api_a.get(C.DATASETS + "/" + fx_a.crm), 404)
        self.assertStatus(api_a.get(C.SCHEMAS + "/" + kt.enc(fx_a.profile_schema_id)), 404)
        # The old inlet of A is gone with it.
        r = api_a.send(fx_a.inlet, fx_a.record({"identityMap": kt.idmap(("Email", email))}))
        self.assertTrue(400 <= r.status < 500, "inlet of a deleted sandbox still works: %r" % r)

    def test_delete_sandbox_and_dataset_during_ingest(self):
        """Deleting a sandbox or a dataset while clients write into it: never a 5xx, kithd stays up,
        and the deleted data stays gone."""
        import threading
        for what in ("dataset", "sandbox"):
            sb = new_sandbox(self, self.admin)
            api = self.admin.in_sandbox(sb)
            fx = kt.Fixture(api)
            statuses, stop = [], threading.Event()

            def worker(w):
                i = 0
                while not stop.is_set() and i < 400:
                    env = fx.record({"identityMap": kt.idmap(("Email", "%d-%d@race.example" % (w, i)))})
                    try:
                        statuses.append(api.send(fx.inlet, env).status)
                    except OSError as e:
                        statuses.append(str(e))
                    i += 1
            ts = [threading.Thread(target=worker, args=(w,)) for w in range(3)]
            for t in ts:
                t.start()
            time.sleep(0.3)
            if what == "dataset":
                r = api.delete(C.DATASETS + "/" + fx.crm)
            else:
                r = self.admin.delete(C.SANDBOXES + "/" + sb, sandbox=None)
            self.assertStatus(r, 200, 202, 204)
            time.sleep(0.3)
            stop.set()
            for t in ts:
                t.join(60)
            bad = [x for x in statuses if not isinstance(x, int) or x >= 500]
            self.assertEqual(bad, [], "%s delete during ingest" % what)
            self.assertStatus(self.server.raw("GET", "/livez"), 200)
            if what == "dataset":
                self.assertProblem(api.get(C.DATASETS + "/" + fx.crm), 404)
                # Records acknowledged before the delete may be gone, but none may be served
                # from the deleted dataset.
                deadline = time.time() + 10
                while True:
                    leftovers = [w for w in range(3) for i in (0, 1)
                                 if api.lookup("Email", "%d-%d@race.example" % (w, i)).status == 200
                                 and fx.crm in kt.profile_of(api.lookup("Email", "%d-%d@race.example" % (w, i))).get("sources", [])]
                    if not leftovers or time.time() > deadline:
                        break
                    time.sleep(0.2)
                self.assertEqual(leftovers, [], "profiles still list the deleted dataset")
            else:
                new_sandbox(self, self.admin, name=sb)
                self.assertStatus(api.lookup("Email", "0-0@race.example"), 404)

    def test_inlet_bound_to_its_sandbox(self):
        a = new_sandbox(self, self.admin)
        api_a = self.admin.in_sandbox(a)
        fx_a = kt.Fixture(api_a)
        email = kt.uid() + "@bound.example"
        # The inlet's sandbox decides; a different x-sandbox-name never puts data elsewhere.
        r = api_a.request("POST", "/collection/" + fx_a.inlet, sandbox="prod", key=None,
                          json_body=fx_a.record({"identityMap": kt.idmap(("Email", email))}))
        self.assertTrue(r.status == 200 or 400 <= r.status < 500, "%r" % r)
        if r.status == 200:
            self.assertStatus(api_a.lookup("Email", email), 200)
        self.assertStatus(self.admin.lookup("Email", email), 404)
        # Without the header it lands in A.
        r = api_a.send(fx_a.inlet, fx_a.record({"identityMap": kt.idmap(("Email", "b" + email))}))
        self.assertStatus(r, 200)
        self.assertStatus(api_a.lookup("Email", "b" + email), 200)
        self.assertStatus(self.admin.lookup("Email", "b" + email), 404)


if __name__ == "__main__":
    kt.main()
