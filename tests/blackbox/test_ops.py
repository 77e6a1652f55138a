"""Operations: health endpoints, /metrics, --help, signals, 404s, the admin key bootstrap."""

import os
import re
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402


def metric_sum(text, pred):
    """Sum of the samples of every metric whose name satisfies pred."""
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        if pred(m.group(1), m.group(2) or ""):
            try:
                total += float(m.group(3))
                found = True
            except ValueError:
                pass
    return total if found else None


class OpsTest(kt.KithTestCase):

    def test_livez_readyz_healthz_need_no_key(self):
        for path in ("/livez", "/readyz", "/healthz"):
            r = self.server.raw("GET", path)
            self.assertStatus(r, 200)

    def test_metrics_prometheus_text_with_request_counters(self):
        r = self.server.raw("GET", "/metrics")
        self.assertStatus(r, 200)
        self.assertTrue(r.content_type.startswith("text/plain"), "metrics content type: %r" % r)
        self.assertIn("# TYPE", r.text, "Prometheus text must carry # TYPE lines")
        # Every sample line is `name{labels} value`.
        for line in r.text.splitlines():
            if line and not line.startswith("#"):
                self.assertRegex(line, r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?\s+[-+0-9.eEInfNa]+(\s+\d+)?$",
                                 "bad sample line in /metrics")
        is_req = lambda name, labels: "request" in name and not name.endswith(("_bucket", "_sum")) \
            and "duration" not in name and "latency" not in name and "seconds" not in name
        before = metric_sum(r.text, is_req)
        self.assertIsNotNone(before, "no request counter in /metrics:\n%s" % r.text[:3000])
        for _ in range(5):
            self.admin.get(kt.Client.SCHEMAS)
        after = metric_sum(self.server.raw("GET", "/metrics").text, is_req)
        self.assertGreaterEqual(after - before, 5, "request counters must count requests")

    def test_metrics_exposes_ingest_and_queue_metrics(self):
        text = self.server.raw("GET", "/metrics").text.lower()
        for word in ("ingest", "queue", "commit", "profile", "cluster", "reject"):
            self.assertIn(word, text, "API.md section 7 lists %s metrics" % word)

    def test_rejected_records_counted(self):
        fx = kt.Fixture(self.admin)
        is_rej = lambda name, labels: "reject" in name
        before = metric_sum(self.server.raw("GET", "/metrics").text, is_rej) or 0
        bad = fx.record({"identityMap": kt.idmap(("Email", kt.uid() + "@m.example")), "bogus": 1})
        for _ in range(3):
            self.assertStatus(self.admin.send(fx.inlet, bad), 400)
        after = metric_sum(self.server.raw("GET", "/metrics").text, is_rej)
        self.assertIsNotNone(after, "/metrics must count rejected records")
        self.assertGreaterEqual(after - before, 3)

    def test_keep_alive(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            for _ in range(50):
                conn.request("GET", kt.Client.SCHEMAS,
                             headers={"Authorization": "Bearer " + self.server.admin_key})
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
        finally:
            conn.close()

    def test_chunked_body(self):
        import http.client
        fx = kt.Fixture(self.admin)
        email = kt.uid() + "@chunk.example"
        body = kt.json.dumps(fx.record({"identityMap": kt.idmap(("Email", email))})).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            conn.request("POST", "/collection/" + fx.inlet, body=iter([body[:10], body[10:]]),
                         headers={"Content-Type": "application/json"}, encode_chunked=True)
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        finally:
            conn.close()
        self.assertStatus(self.admin.lookup("Email", email), 200)
        # A chunked body over the 1 MiB limit is refused even without Content-Length.
        big = kt.json.dumps(fx.record({"identityMap": kt.idmap(("Email", "big" + email)),
                                       "_acme": {"note": "x" * (1024 * 1024 + 10)}})).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            try:
                conn.request("POST", "/collection/" + fx.inlet,
                             body=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                             headers={"Content-Type": "application/json"}, encode_chunked=True)
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 413)
        finally:
            conn.close()
        self.assertStatus(self.admin.lookup("Email", "big" + email), 404)

    def test_unknown_path_is_404_problem(self):
        r = self.admin.get("/no/such/path")
        j = self.assertProblem(r, 404)
        r = self.admin.post("/data/foundation/nothing-here", {"a": 1})
        self.assertProblem(r, 404)

    def test_wrong_method_is_4xx_not_5xx(self):
        r = self.admin.request("DELETE", "/livez")
        self.assertTrue(400 <= r.status < 500, "DELETE /livez: %r" % r)

    def test_org_id_echoed(self):
        org = "0123456789ABCDEF@AdobeOrg"
        r = self.admin.get(kt.Client.SCHEMAS, headers={"x-gw-ims-org-id": org})
        self.assertStatus(r, 200)
        self.assertTrue(r.headers.get("x-gw-ims-org-id") == org or org in r.text,
                        "x-gw-ims-org-id must be echoed: %r %r" % (r.headers, r))


class ProcessTest(kt.KithTestCase):
    """Tests that manage their own kithd processes."""

    @classmethod
    def setUpClass(cls):
        cls.server = None

    def test_help_lists_options(self):
        p = subprocess.run([kt.KITHD, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=20)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, "kithd --help must exit 0: %s" % out)
        for opt in ("--data-dir", "--listen"):
            self.assertIn(opt, out)
        low = out.lower()
        for words in (("thread",), ("durab", "fsync", "sync"), ("limit", "max"), ("log",), ("config",)):
            self.assertTrue(any(w in low for w in words),
                            "--help must mention %s (API.md section 0):\n%s" % ("/".join(words), out))

    def test_unknown_option_fails(self):
        p = subprocess.run([kt.KITHD, "--no-such-option-xyz"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        self.assertNotEqual(p.returncode, 0)

    def test_sigterm_exits_zero(self):
        s = self.new_server()
        self.assertStatus(s.raw("GET", "/livez"), 200)
        self.assertEqual(s.stop(signal.SIGTERM), 0, "SIGTERM must exit 0:\n%s" % s.log_tail())

    def test_sigint_exits_zero(self):
        s = self.new_server()
        self.assertEqual(s.stop(signal.SIGINT), 0, "SIGINT must exit 0:\n%s" % s.log_tail())

    def test_sigterm_after_ingest_exits_zero_and_data_survives(self):
        s = self.new_server()
        api = s.api()
        fx = kt.Fixture(api)
        email = kt.uid() + "@ops.example"
        fx.ingest_record({"identityMap": kt.idmap(("Email", email)),
                          "person": {"name": {"firstName": "Op"}}})
        self.assertEqual(s.stop(signal.SIGTERM), 0, "SIGTERM must exit 0:\n%s" % s.log_tail())
        s.start()
        prof = s.api().profile("Email", email)
        self.assertEqual(kt.get_path(prof["entity"], "person.name.firstName"), "Op")

    def test_generated_admin_key_written_0600(self):
        s = kt.KithServer(use_admin_env=False)
        self.addCleanup(s.cleanup)
        s.start()
        path = os.path.join(s.data_dir, "admin.key")
        self.assertTrue(os.path.exists(path), "without KITH_ADMIN_KEY the key goes to DIR/admin.key")
        mode = stat.S_IMODE(os.stat(path).st_mode)
        self.assertEqual(mode, 0o600, "admin.key mode must be 0600, is %o" % mode)
        with open(path) as f:
            key = f.read().strip()
        self.assertTrue(key)
        self.assertStatus(s.api(key=key).get(kt.Client.SCHEMAS), 200)
        self.assertStatus(s.api(key="not-" + key).get(kt.Client.SCHEMAS), 401)

    def test_back_pressure_429_has_retry_after(self):
        """With a tiny apply queue, overload answers 429 with Retry-After and stores nothing of the
        refused request; never a 5xx."""
        import threading
        s = self.new_server(extra_args=["--queue", "1"])
        fx = kt.Fixture(s.api())
        results = []

        def worker(w):
            for attempt in range(4):
                emails = ["%d-%d-%d-%s@bp.example" % (w, attempt, i, kt.uid()) for i in range(50)]
                msgs = [fx.record({"identityMap": kt.idmap(("Email", e))}) for e in emails]
                results.append((s.api().send_batch(fx.inlet, msgs), emails))
        ts = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        api = s.api()
        for r, emails in results:
            self.assertLess(r.status, 500, "%r" % r)
            if r.status == 429:
                self.assertIn("retry-after", r.headers, "429 needs Retry-After: %r" % r)
                stored = [e for e in emails if api.lookup("Email", e).status == 200]
                self.assertEqual(stored, [], "a 429 must store nothing")
            else:
                self.assertStatus(r, 207)
                for x, e in zip(r.json["responses"], emails):
                    if "xactionId" in x:
                        self.assertStatus(api.lookup("Email", e), 200)
                    else:
                        self.assertStatus(api.lookup("Email", e), 404)
        self.assertEqual(s.stop(), 0)

    def check_limits(self, s):
        api = s.api()
        fx = kt.Fixture(api)
        email = kt.uid() + "@lim.example"
        big = fx.record({"identityMap": kt.idmap(("Email", email)), "_acme": {"note": "x" * 3000}})
        self.assertProblem(api.send(fx.inlet, big), 413)
        four = fx.record({"identityMap": kt.idmap(("Email", email), ("CRMID", kt.uid()), ("CRMID", kt.uid()),
                                                  ("Phone", kt.uid()))})
        r = api.send(fx.inlet, four)
        self.assertProblem(r, 400, 413)
        self.assertIn("3", r.json.get("detail", "") + kt.json.dumps(r.json.get("errors", "")))
        self.assertStatus(api.lookup("Email", email), 404)
        three = fx.record({"identityMap": kt.idmap(("Email", email), ("CRMID", kt.uid()), ("Phone", kt.uid()))})
        self.assertStatus(api.send(fx.inlet, three), 200)

    def thread_nice(self, pid):
        """{thread name: nice} of a process, from /proc/PID/task/*/stat (field 19 is nice)."""
        out = {}
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            out.setdefault(name, set()).add(int(stat[stat.rindex(")") + 2:].split()[16]))
        return out

    def test_writer_runs_below_the_request_threads(self):
        """Profile reads on the HTTP threads preempt the writer: it runs --writer-nice (default 5)
        nice levels below the process, the ingest parse pool 10 below; 0-19 accepted."""
        for bad in ("20", "-1", "x"):
            p = subprocess.run([kt.KITHD, "--writer-nice", bad], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=20)
            self.assertNotEqual(p.returncode, 0, "--writer-nice %s must be refused" % bad)
        for args, want in (([], 5), (["--writer-nice", "9"], 9), (["--writer-nice", "0"], 0)):
            s = self.new_server(extra_args=args)
            self.assertStatus(s.raw("GET", "/readyz"), 200)
            base = os.getpriority(os.PRIO_PROCESS, s.proc.pid)
            expect = {"kith-apply": {min(19, base + want)}, "kith-ingest": {min(19, base + 10)}}
            for _ in range(50):  # the pool's threads renice themselves as they start
                nice = self.thread_nice(s.proc.pid)
                if all(nice.get(k) == v for k, v in expect.items()):
                    break
                time.sleep(0.1)
            for k, v in expect.items():
                self.assertEqual(nice.get(k), v, (args, k, nice))
            s.stop(signal.SIGTERM)

    def test_limits_configurable_by_option(self):
        s = self.new_server(extra_args=["--max-body", "2048", "--max-identities", "3"])
        self.check_limits(s)

    def test_limits_configurable_by_config_file(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("# kithd test config\nmax-body = 2048\nmax-identities = 3\n")
            path = f.name
        self.addCleanup(os.unlink, path)
        s = self.new_server(extra_args=["--config", path])
        self.check_limits(s)

    def test_admin_key_env_only_at_first_start(self):
        s = self.new_server()
        first = s.admin_key
        self.assertStatus(s.api().get(kt.Client.SCHEMAS), 200)
        s.stop()
        s.admin_key = "adm-other-" + kt.uid()
        s.start()
        # The key set at the first start of the data dir keeps working after a restart.
        self.assertStatus(s.api(key=first).get(kt.Client.SCHEMAS), 200)

    def test_data_dir_survives_restart_with_schema(self):
        s = self.new_server()
        sch = s.api().create_schema(kt.uid("Persist "), kt.PROFILE_CLASS, [kt.FG_PERSON, kt.FG_IDENTITYMAP])
        s.terminate_ok(self)
        s.start()
        r = s.api().get(kt.Client.SCHEMAS + "/" + kt.enc(sch["$id"]))
        self.assertStatus(r, 200)


if __name__ == "__main__":
    kt.main()
