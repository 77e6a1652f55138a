"""kith pql check / explain / eval / convert: the language runs in the client; eval reads a stored
profile and its events from kithd and evaluates the expression on them; convert turns text into the
pql/json tree and back."""
import json
import os
import subprocess

import kithtest as kt

CLI = os.environ.get("KITH_CLI") or os.path.join(os.path.dirname(kt.KITHD), "kith")
T0 = 1_700_000_000_000


class CliPqlTest(kt.KithTestCase):
    fixture_needed = True

    def kith(self, *args, stdin=None):
        env = dict(os.environ, KITH_URL=self.server.url, KITH_KEY=self.server.admin_key)
        return subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60)

    def test_check_ok_and_error_position(self):
        r = self.kith("pql", "check", 'person.name.firstName = "Ann"')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mode: edge", r.stdout)
        r = self.kith("pql", "check", 'person.name.firstName =\n  and true')
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^2:\d+: ")
        r = self.kith("pql", "check", "-", stdin='xEvent[eventType = "commerce.purchases"].count() > 2')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("commerce.purchases", r.stdout)

    def test_check_against_server_schemas(self):
        r = self.kith("pql", "check", "--server", "person.name.nosuchfield = 1")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("nosuchfield", r.stderr)
        r = self.kith("pql", "check", "--server", 'person.name.firstName = "x"')
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_convert_both_ways(self):
        text = 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 10000'
        r = self.kith("pql", "convert", text)
        self.assertEqual(r.returncode, 0, r.stderr)
        tree = json.loads(r.stdout)
        self.assertEqual((tree["nodeType"], tree["fnName"]), ("fnApply", ">"))
        r = self.kith("pql", "convert", "-", stdin=r.stdout)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, text), r.stderr)
        tree["params"][1]["literalType"] = "Nope"
        r = self.kith("pql", "convert", json.dumps(tree))
        self.assertEqual(r.returncode, 1)
        self.assertIn("/params/1/literalType: ", r.stderr)
        r = self.kith("pql", "convert", "a = ")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^1:\d+: ")

    def test_explain_prints_steps(self):
        r = self.kith("pql", "explain", 'person.name.firstName.startsWith("A")')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("RET", r.stdout)
        self.assertIn('"A"', r.stdout)

    def test_eval_on_a_stored_profile(self):
        fx = self.fx
        ecid = kt.ecid()
        for i, amount in enumerate((4000, 7000)):
            ev = kt.web_event([("ECID", ecid)], T0 + i * 1000)
            ev["eventType"] = "commerce.purchases"
            ev["commerce"] = {"order": {"priceTotal": amount}}
            fx.ingest_event(ev)
        expr = 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 10000'
        r = self.kith("--json", "pql", "eval", expr, "--ns", "ECID", "--id", ecid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"match": true', r.stdout)
        self.assertIn('"events": 2', r.stdout)
        r = self.kith("pql", "eval", 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal)',
                      "--ns", "ECID", "--id", ecid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("11000", r.stdout)
        r = self.kith("pql", "eval", "true", "--ns", "ECID", "--id", kt.ecid())
        self.assertEqual(r.returncode, 1)
        self.assertIn("no profile", r.stderr)


if __name__ == "__main__":
    kt.main()
