"""Dataset export: GET /data/foundation/catalog/dataSets/{id}/export streams the dataset's records or
events as JSON lines, and `kith export` writes them so that `kith import` can load them elsewhere."""
import json
import os
import subprocess
import tempfile

import kithtest as kt

CLI = os.environ.get("KITH_CLI") or os.path.join(os.path.dirname(kt.KITHD), "kith")
T0 = 1_700_000_000_000


class ExportTest(kt.KithTestCase):
    fixture_needed = True

    def kith(self, *args):
        env = dict(os.environ, KITH_URL=self.server.url, KITH_KEY=self.server.admin_key)
        return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=120)

    def test_records_and_events_round_trip(self):
        fx = self.fx
        emails = [kt.uid() + "@export.example" for _ in range(30)]
        for i, email in enumerate(emails):
            fx.ingest_record({"identityMap": kt.idmap(("Email", email)), "_acme": {"tier": "gold"},
                              "person": {"name": {"firstName": "N%d" % i}}})
        ecid = kt.ecid()
        for i in range(25):
            fx.ingest_event(kt.web_event([("ECID", ecid)], T0 + i * 1000, page="p%d" % i))
        r = self.server.raw("GET", "/data/foundation/catalog/dataSets/%s/export" % fx.crm,
                            headers={"Authorization": "Bearer " + self.server.admin_key})
        self.assertStatus(r, 200)
        lines = [json.loads(l) for l in r.text.splitlines()]
        self.assertEqual(len(lines), 30)
        self.assertEqual({l["identityMap"]["Email"][0]["id"] for l in lines}, set(emails))
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "web.jsonl")
            r = self.kith("export", "--dataset", fx.web, "--output", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                events = [json.loads(l) for l in f]
            self.assertEqual(len(events), 25)
            # Import the export into another sandbox's dataset: the same events come back.
            other = kt.uid("exp").lower().replace("_", "-")[:30]
            self.assertStatus(self.admin.post("/data/foundation/sandbox-management/sandboxes",
                                              {"name": other, "type": "development"}), 201)
            api2 = self.server.api(sandbox=other)
            fx2 = kt.Fixture(api2)
            env = dict(os.environ, KITH_URL=self.server.url, KITH_KEY=self.server.admin_key,
                       KITH_SANDBOX=other)
            r = subprocess.run([CLI, "import", "--dataset", fx2.web, out], capture_output=True,
                               text=True, env=env, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(len(api2.events("ECID", ecid).json["children"]), 25)

    def test_unknown_dataset_and_isolation(self):
        r = self.kith("export", "--dataset", "000000000000000000000000")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no dataset", r.stderr)
        r = self.kith("export")
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    kt.main()
