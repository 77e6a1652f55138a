"""The kith command-line client against a real kithd (API.md sections 0-3 and 5, CLI rows).

Starts kithd on a free port with a temporary data dir (kithtest harness), creates schemas and
datasets over HTTP, then drives `kith`: import (good file, bad lines, stdin, split uploads), profile
get/events, sandbox and key administration, lists, health, every --help, and usage errors (exit 2).
Python 3 standard library only.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

CLI_TIMEOUT = 120

# Every command of the CLI, as words; each must answer --help with exit 0.
COMMANDS = [
    ["import"], ["batch", "get"], ["profile", "get"], ["profile", "events"],
    ["sandbox", "list"], ["sandbox", "create"], ["sandbox", "delete"],
    ["key", "list"], ["key", "create"], ["key", "delete"],
    ["schema", "list"], ["dataset", "list"], ["inlet", "create"],
    ["health"], ["version"], ["help"],
]


def record(email, crm, first="Ada", tier="gold"):
    return {"identityMap": kt.idmap(("Email", email)),
            "_acme": {"crmId": crm, "tier": tier, "points": 7},
            "person": {"name": {"firstName": first, "lastName": "Lovelace"}},
            "personalEmail": {"address": email}}


class CliTest(kt.KithTestCase):
    fixture_needed = True

    # --- helpers ---------------------------------------------------------------------------------

    def kith(self, *args, key=kt.Client.DEFAULT, url=kt.Client.DEFAULT, stdin=None, env=None):
        """Runs the CLI; returns (exit code, stdout, stderr). key/url None: no --key/--url option.
        The environment carries no KITH_* settings unless given, so every test says what it uses."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("KITH_")}
        if env:
            e.update(env)
        u = self.server.url if url is kt.Client.DEFAULT else url
        cmd = [kt.KITH_CLI] + (["--url", u] if u is not None else [])
        k = self.server.admin_key if key is kt.Client.DEFAULT else key
        if k is not None:
            cmd += ["--key", k]
        cmd += list(args)
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=e, timeout=CLI_TIMEOUT)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def ok(self, *args, **kw):
        rc, out, err = self.kith(*args, **kw)
        self.assertEqual(rc, 0, "kith %s -> %d\nstdout:\n%s\nstderr:\n%s" % (" ".join(args), rc, out, err))
        return out

    def jsonl_file(self, lines):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            for line in lines:
                f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
        self.addCleanup(os.unlink, f.name)
        return f.name

    # --- help and usage --------------------------------------------------------------------------

    def test_help_for_every_command(self):
        out = self.ok("--help")
        for words in COMMANDS:
            self.assertIn(" ".join(words), out, "kith --help must list %r" % words)
        for words in COMMANDS:
            out = self.ok(*(words + ["--help"]), key=None)
            self.assertIn("usage: kith", out, "%r --help" % words)
            self.assertIn(" ".join(words), out)
        for group in ("profile", "sandbox", "key", "batch"):
            out = self.ok(group, "--help", key=None)
            self.assertIn("%s " % group, out)
        out = self.ok("help", "profile", "get", key=None)
        self.assertIn("--ns NS", out)
        self.assertIn("--xid XID", out)
        out = self.ok("import", "--help", key=None)
        for opt in ("--dataset", "--wait", "--url", "--key", "--sandbox", "--json"):
            self.assertIn(opt, out)

    def test_usage_errors_exit_2(self):
        cases = [
            [],
            ["no-such-command"],
            ["profile"],
            ["profile", "nope"],
            ["profile", "get"],
            ["profile", "get", "--ns", "Email"],
            ["profile", "get", "--id", "x"],
            ["profile", "get", "--ns", "Email", "--id", "x", "--xid", "y"],
            ["profile", "get", "--ns", "Email", "--id", "x", "--bogus"],
            ["profile", "events", "--ns", "Email", "--id", "x", "--limit", "abc"],
            ["profile", "events", "--ns", "Email", "--id", "x", "--limit", "0"],
            ["import", "f.jsonl"],
            ["import", "--dataset", "d"],
            ["import", "--dataset"],
            ["import", "--dataset", "d", "a.jsonl", "b.jsonl"],
            ["import", "--dataset", "d", "--split-size", "lots", "a.jsonl"],
            ["sandbox", "create"],
            ["sandbox", "create", "x", "--type", "staging"],
            ["sandbox", "delete"],
            ["key", "create", "--name", "n"],
            ["key", "create", "--name", "n", "--role", "superuser"],
            ["key", "delete"],
            ["inlet", "create"],
            ["health", "extra"],
            ["version", "--json=yes"],
        ]
        for args in cases:
            rc, out, err = self.kith(*args)
            self.assertEqual(rc, 2, "kith %r must be a usage error (2), got %d: %s%s" % (args, rc, out, err))
            self.assertIn("usage:", err, "kith %r must print the usage: %s" % (args, err))

    def test_version(self):
        out = self.ok("version", key=None)
        self.assertRegex(out, r"^kith \d+\.\d+")
        j = json.loads(self.ok("--json", "version", key=None))
        self.assertIn("version", j)

    # --- import ----------------------------------------------------------------------------------

    def test_import_good_file_then_profile_get(self):
        people = [(kt.uid() + "@cli.example", kt.uid("crm"), "Ada%d" % i) for i in range(6)]
        path = self.jsonl_file([record(e, c, first=n) for e, c, n in people])
        out = self.ok("import", "--dataset", self.fx.crm, "--wait", path)
        self.assertRegex(out, r"6 read, 6 written, 0 failed")
        for email, crm, first in people:
            out = self.ok("profile", "get", "--ns", "Email", "--id", email)
            entity = json.loads(out)
            self.assertEqual(kt.get_path(entity, "person.name.firstName"), first, out)
            self.assertEqual(kt.get_path(entity, "_acme.crmId"), crm, out)
        # --json: the whole Profile Access response, keyed by XID; the XID finds the same profile.
        email = people[0][0]
        raw = json.loads(self.ok("--json", "profile", "get", "--ns", "Email", "--id", email))
        self.assertEqual(len(raw), 1, raw)
        (xid, prof), = raw.items()
        self.assertIn("entity", prof)
        entity = json.loads(self.ok("profile", "get", "--xid", xid))
        self.assertEqual(kt.get_path(entity, "personalEmail.address"), email)
        # --fields narrows the entity.
        entity = json.loads(self.ok("profile", "get", "--ns", "Email", "--id", email,
                                    "--fields", "person.name"))
        self.assertEqual(kt.get_path(entity, "person.name.firstName"), people[0][2])
        self.assertNotIn("_acme", entity, "--fields person.name must leave _acme out: %r" % entity)

    def test_import_default_waits(self):
        email = kt.uid() + "@wait.example"
        path = self.jsonl_file([record(email, kt.uid("crm"))])
        self.ok("import", "--dataset", self.fx.crm, path)
        self.assertStatus(self.admin.lookup("Email", email), 200)

    def test_import_bad_lines_named(self):
        good1, good2 = kt.uid() + "@g1.example", kt.uid() + "@g2.example"
        bad_email = kt.uid() + "@bad.example"
        path = self.jsonl_file([record(good1, kt.uid("crm")),
                                record(bad_email, kt.uid("crm"), tier="platinum"),
                                '{"broken": ',
                                record(good2, kt.uid("crm"))])
        rc, out, err = self.kith("import", "--dataset", self.fx.crm, "--wait", path)
        self.assertEqual(rc, 1, "a failed line must fail the import\n%s%s" % (out, err))
        self.assertRegex(out, r"4 read, 2 written, 2 failed", out)
        self.assertRegex(out, r"(?m)^line 2: ", out)
        self.assertRegex(out, r"(?m)^line 3: ", out)
        self.assertIn("/_acme/tier", out, "the failing path of line 2 must be shown: " + out)
        self.assertNotRegex(out, r"(?m)^line [14]: ", out)
        for e in (good1, good2):
            self.assertStatus(self.admin.lookup("Email", e), 200)
        rc, out, err = self.kith("profile", "get", "--ns", "Email", "--id", bad_email)
        self.assertEqual(rc, 1)

    def test_import_stdin(self):
        email = kt.uid() + "@stdin.example"
        data = (json.dumps(record(email, kt.uid("crm"))) + "\n").encode()
        rc, out, err = self.kith("import", "--dataset", self.fx.crm, "--wait", "-", stdin=data)
        self.assertEqual(rc, 0, out + err)
        self.assertStatus(self.admin.lookup("Email", email), 200)

    def test_import_split_into_several_files(self):
        people = [(kt.uid() + "@split.example", kt.uid("crm")) for _ in range(40)]
        path = self.jsonl_file([record(e, c) for e, c in people])
        self.assertGreater(os.path.getsize(path), 3 * 2048)
        out = self.ok("import", "--dataset", self.fx.crm, "--split-size", "2K", path)
        self.assertRegex(out, r"40 read, 40 written, 0 failed")
        for e, _ in people[::7] + [people[-1]]:
            self.assertStatus(self.admin.lookup("Email", e), 200)
        # Failed lines are numbered in the whole input, not in the uploaded piece.
        lines = [record(kt.uid() + "@split2.example", kt.uid("crm")) for _ in range(40)]
        lines[29]["_acme"]["tier"] = "platinum"
        lines[35] = '{"broken": '
        path2 = self.jsonl_file(lines)
        rc, out, err = self.kith("import", "--dataset", self.fx.crm, "--split-size", "2K", path2)
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"40 read, 38 written, 2 failed")
        self.assertRegex(out, r"(?m)^line 30: ", out)
        self.assertRegex(out, r"(?m)^line 36: ", out)
        # A line longer than the split size cannot be uploaded whole: a clear error, no batch.
        rc, out, err = self.kith("import", "--dataset", self.fx.crm, "--split-size", "100", path)
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, r"line 1\b.*longer than 100 bytes", err)

    def test_import_no_wait_then_batch_get(self):
        email = kt.uid() + "@nowait.example"
        path = self.jsonl_file([record(email, kt.uid("crm"))])
        out = self.ok("import", "--dataset", self.fx.crm, "--no-wait", path)
        m = re.search(r"batch (\S+) submitted", out)
        self.assertTrue(m, out)
        out = self.ok("batch", "get", m.group(1), "--wait")
        self.assertRegex(out, r"success")
        self.assertRegex(out, r"1 read, 1 written, 0 failed")
        rc, out, err = self.kith("batch", "get", "nobatch" + kt.uid())
        self.assertEqual(rc, 1)
        self.assertIn("Not Found", err)

    def test_import_errors(self):
        path = self.jsonl_file([record(kt.uid() + "@x.example", kt.uid("crm"))])
        rc, out, err = self.kith("import", "--dataset", "nods" + kt.uid(), path)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("import batch", err)
        rc, out, err = self.kith("import", "--dataset", self.fx.crm, "/nonexistent/file.jsonl")
        self.assertEqual(rc, 1)
        self.assertIn("cannot open /nonexistent/file.jsonl", err)

    # --- profiles and events ---------------------------------------------------------------------

    def test_unknown_profile(self):
        rc, out, err = self.kith("profile", "get", "--ns", "Email", "--id", "nobody@nowhere.example")
        self.assertEqual(rc, 1)
        self.assertIn("no profile for Email:nobody@nowhere.example", err)
        self.assertEqual(out, "")
        rc, out, err = self.kith("profile", "get", "--ns", "NoSuchNamespace", "--id", "x")
        self.assertEqual(rc, 1)
        self.assertIn("no profile for NoSuchNamespace:x", err)
        rc, out, err = self.kith("profile", "events", "--ns", "Email", "--id", "nobody@nowhere.example")
        self.assertEqual(rc, 1)
        self.assertIn("no profile for Email:nobody@nowhere.example", err)

    def test_profile_events(self):
        ecid = kt.ecid()
        evs = [kt.web_event([("ECID", ecid)], 1700000000000 + i * 1000) for i in range(5)]
        path = self.jsonl_file(evs)
        self.ok("import", "--dataset", self.fx.web, path)
        out = self.ok("profile", "events", "--ns", "ECID", "--id", ecid, "--all", "--limit", "2")
        got = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([e.get("_id") for e in got], [e["_id"] for e in evs], out)
        out = self.ok("profile", "events", "--ns", "ECID", "--id", ecid, "--limit", "2")
        self.assertEqual(len(out.splitlines()), 2, out)
        out = self.ok("--json", "profile", "events", "--ns", "ECID", "--id", ecid, "--limit", "10")
        page = json.loads(out.splitlines()[0])
        self.assertEqual(len(page["children"]), 5)

    # --- administration --------------------------------------------------------------------------

    def test_sandbox_round_trip(self):
        name = "cli" + kt.uid()[:8]
        out = self.ok("sandbox", "create", name, "--title", "CLI test", "--type", "development")
        self.assertIn(name, out)
        out = self.ok("sandbox", "list")
        self.assertRegex(out, r"(?m)^NAME\s+TITLE")
        self.assertRegex(out, r"(?m)^%s\s+CLI test\s+development" % name)
        self.assertRegex(out, r"(?m)^prod\s")
        raw = json.loads(self.ok("--json", "sandbox", "list"))
        self.assertIn(name, json.dumps(raw))
        # The new sandbox is isolated: its schema list is empty, prod's is not.
        self.assertIn("no schemas", self.ok("--sandbox", name, "schema", "list"))
        self.assertIn(self.fx.profile_schema["meta:altId"], self.ok("--sandbox", "prod", "schema", "list"))
        rc, out, err = self.kith("sandbox", "create", name)
        self.assertEqual(rc, 1, "a duplicate sandbox must fail: " + out + err)
        self.assertTrue(err.startswith("kith: "), err)
        self.ok("sandbox", "delete", name)
        self.assertNotRegex(self.ok("sandbox", "list"), r"(?m)^%s\s" % name)

    def test_key_round_trip(self):
        name = kt.uid("clikey-")
        rc, out, err = self.kith("key", "create", "--name", name, "--role", "viewer", "--sandbox", "prod")
        self.assertEqual(rc, 0, out + err)
        m = re.search(r"(?m)^key: (\S+)$", out)
        self.assertTrue(m, out)
        secret = m.group(1)
        kid = re.search(r"created key (\S+)", out).group(1)
        listing = self.ok("key", "list")
        self.assertRegex(listing, r"(?m)^ID\s+NAME\s+ROLE")
        self.assertIn(name, listing)
        self.assertNotIn(secret, listing, "key list must never show a secret")
        # The new key reads through the CLI, env KITH_KEY works, and a viewer cannot write.
        self.ok("dataset", "list", key=secret)
        self.ok("dataset", "list", key=None, env={"KITH_KEY": secret})
        rc, out, err = self.kith("sandbox", "create", "v" + kt.uid()[:8], key=secret)
        self.assertEqual(rc, 1)
        self.assertIn("Forbidden", err)
        self.ok("key", "delete", kid)
        self.assertNotIn(name, self.ok("key", "list"))
        rc, out, err = self.kith("dataset", "list", key=secret)
        self.assertEqual(rc, 1)
        self.assertIn("Unauthorized", err)

    def test_lists_and_inlet(self):
        out = self.ok("dataset", "list")
        self.assertRegex(out, r"(?m)^ID\s+NAME\s+SCHEMA")
        for ds in (self.fx.crm, self.fx.web):
            self.assertIn(ds, out)
        out = self.ok("schema", "list")
        self.assertIn(self.fx.profile_schema["meta:altId"], out)
        self.assertIn(self.fx.event_schema["meta:altId"], out)
        out = self.ok("inlet", "create", "--name", kt.uid("cli-inlet-"))
        m = re.search(r"(?m)^created inlet (\S+)$", out)
        self.assertTrue(m, out)
        self.assertIn("/collection/" + m.group(1), out)

    def test_auth_and_connection_errors(self):
        rc, out, err = self.kith("dataset", "list", key=None)
        self.assertEqual(rc, 1)
        self.assertIn("Unauthorized", err)
        self.assertIn("--key", err)
        port = kt.free_port()
        rc, out, err = self.kith("health", url="http://127.0.0.1:%d" % port)
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach kithd", err)
        rc, out, err = self.kith("sandbox", "list", url=None,
                                 env={"KITH_URL": "http://127.0.0.1:%d" % port})
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach kithd at http://127.0.0.1:%d" % port, err)

    def test_health_and_env(self):
        self.assertEqual(self.ok("health", key=None).strip(), "ok")
        rc, out, err = self.kith("health", key=None, url="http://127.0.0.1:1")
        self.assertEqual(rc, 1)
        # Settings from the environment: KITH_URL, KITH_KEY, KITH_SANDBOX.
        e = {"KITH_URL": self.server.url, "KITH_KEY": self.server.admin_key, "KITH_SANDBOX": "prod"}
        p = subprocess.run([kt.KITH_CLI, "dataset", "list"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=CLI_TIMEOUT,
                           env=dict({k: v for k, v in os.environ.items() if not k.startswith("KITH_")}, **e))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(self.fx.crm, p.stdout.decode())


if __name__ == "__main__":
    if not os.path.exists(kt.KITH_CLI):
        sys.stderr.write("kith CLI not found at %s (set KITH_CLI or run make)\n" % kt.KITH_CLI)
        sys.exit(1)
    kt.main()
