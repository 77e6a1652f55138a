"""kithd --log-format json writes one JSON object per line ({ts, level, module, msg}); text is the
default; an unknown format is a usage error."""
import json
import subprocess

import kithtest as kt


class LoggingTest(kt.KithTestCase):

    def test_json_lines(self):
        srv = self.new_server(extra_args=("--log-format", "json"))
        self.assertStatus(srv.raw("GET", "/livez"), 200)
        srv.terminate_ok(self)
        lines = [l for l in srv.log_tail(200).splitlines() if l.startswith("{")]
        self.assertTrue(lines, srv.log_tail(20))
        docs = [json.loads(l) for l in lines]
        for d in docs:
            self.assertEqual(set(d), {"ts", "level", "module", "msg"})
        self.assertTrue(any("serving" in d["msg"] for d in docs))
        self.assertTrue(any("stopped cleanly" in d["msg"] for d in docs))

    def test_unknown_format_is_a_usage_error(self):
        r = subprocess.run([kt.KITHD, "--log-format", "xml"], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 2)
        self.assertIn("log-format", r.stderr + r.stdout)


if __name__ == "__main__":
    kt.main()
