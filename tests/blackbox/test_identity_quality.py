"""Identity quality on a generated population with known truth (bench/gen --truth): pairwise
precision and recall of the resolved graph (bench/idquality.py), with the default linking rules and
with CRMID unique, asserting sane lower bounds. Full-size figures: docs/BENCHMARKS.md."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

SRC = os.environ.get("KITH_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BENCH = os.environ.get("KITH_BENCH_DIR", os.path.join(SRC, "build", "bench"))
CLI = os.environ.get("KITH_CLI", os.path.join(SRC, "build", "kith"))
sys.path.insert(0, os.path.join(SRC, "bench"))
import idquality  # noqa: E402

PEOPLE = int(os.environ.get("KITH_IDQ_PEOPLE", "300"))  # full figures: docs/BENCHMARKS.md


class IdentityQualityTest(kt.KithTestCase):

    def load_population(self, srv, rules=None):
        tmp = tempfile.mkdtemp(prefix="kith-idq-")
        self.addCleanup(subprocess.call, ["rm", "-rf", tmp])
        subprocess.check_call([os.path.join(BENCH, "gen"), "--people", str(PEOPLE), "--seed", "7",
                               "--events-per-person", "8", "--days", "30", "--now", "2026-11-23T00:00:00Z",
                               "--out-dir", tmp, "--truth", os.path.join(tmp, "truth.jsonl")],
                              stdout=subprocess.DEVNULL)
        api = srv.api()
        if rules is not None:
            self.assertStatus(api.put("/data/core/identity/config/linking-rules", rules), 200)
        out = subprocess.check_output(["bash", os.path.join(SRC, "scripts", "demo-setup.sh"), srv.url, srv.admin_key],
                                      stderr=subprocess.DEVNULL, text=True)
        env = {}
        for line in out.splitlines():
            if line.startswith("export "):
                k, _, v = line[7:].partition("=")
                env[k] = v.strip("'\"")
        for ds, f in (("DATASET_CRM", "profiles-crm.jsonl"), ("DATASET_LOYALTY", "profiles-loyalty.jsonl"),
                      ("DATASET_WEB", "events-web.jsonl")):
            subprocess.check_call([CLI, "--url", srv.url, "--key", srv.admin_key, "import", "--dataset", env[ds],
                                   os.path.join(tmp, f)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return idquality.score(srv.url, srv.admin_key, os.path.join(tmp, "truth.jsonl"))

    def test_quality_default_rules(self):
        s = self.load_population(self.server)
        sys.stderr.write("identity quality, default rules, %d people: %r\n" % (PEOPLE, s))
        self.assertGreaterEqual(s["recall"], 0.9)
        self.assertGreaterEqual(s["precision"], 0.5)

    def test_quality_crmid_unique(self):
        srv = self.new_server()
        s = self.load_population(srv, {"uniqueNamespaces": ["CRMID"], "priority": ["CRMID", "Email", "Phone", "ECID"]})
        sys.stderr.write("identity quality, CRMID unique, %d people: %r\n" % (PEOPLE, s))
        self.assertGreaterEqual(s["recall"], 0.8)
        self.assertGreaterEqual(s["precision"], 0.9)


if __name__ == "__main__":
    kt.main()
