"""Real Segment-spec SDKs against kithd: @segment/analytics-node and @rudderstack/rudder-sdk-node,
installed from npm into the build directory (tests/blackbox/sdk/package.json; node_modules is never
committed), send identify, track, page and alias through their own batching, gzip and auth code
(tests/blackbox/sdk/send.js), then the test reads the profile and events back over the Profile Access
API: one profile stitched across userId and both anonymous ids, traits mapped to XDM, events present.

Skips (with a message) only when npm is not installed; scripts/deps.sh installs nodejs and npm."""

import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kithtest as kt  # noqa: E402

C = kt.Client
HERE = os.path.dirname(os.path.abspath(__file__))
SDK_SRC = os.path.join(HERE, "sdk")
NPM = shutil.which("npm")
NODE = shutil.which("node")


def sdk_dir():
    """Installs the SDKs once into <build dir>/segment-sdk (reused while package.json is unchanged)."""
    base = os.environ.get("KITH_SDK_DIR") or os.path.join(os.path.dirname(os.path.abspath(kt.KITHD)),
                                                          "segment-sdk")
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(SDK_SRC, "package.json")) as f:
        want = f.read()
    pj = os.path.join(base, "package.json")
    have = None
    if os.path.exists(pj):
        with open(pj) as f:
            have = f.read()
    shutil.copy(os.path.join(SDK_SRC, "send.js"), os.path.join(base, "send.js"))
    installed = all(os.path.isdir(os.path.join(base, "node_modules", p))
                    for p in ("@segment/analytics-node", "@rudderstack/rudder-sdk-node"))
    if have != want or not installed:
        with open(pj, "w") as f:
            f.write(want)
        r = subprocess.run([NPM, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=base,
                           capture_output=True, text=True, timeout=240)
        if r.returncode != 0:
            raise AssertionError("npm install failed (%d):\n%s\n%s" % (r.returncode, r.stdout, r.stderr))
    return base


@unittest.skipIf(not NPM or not NODE, "npm/node not installed: run scripts/deps.sh (installs nodejs and npm) "
                                      "to test the real Segment and RudderStack SDKs")
class SegmentSdkTest(kt.KithTestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = sdk_dir()
        super().setUpClass()
        r = cls.admin.post(C.CONNECTIONS, {"name": "sdk", "type": "segment"})
        if r.status != 201:
            raise AssertionError("segment connection create failed: %r" % r)
        cls.key = r.json["writeKey"]

    def run_sdk(self, which):
        s = {"userId": kt.uid("u-"), "anonymousId": kt.uid("anon-"), "anonymousId2": kt.uid("anon2-"),
             "prefix": kt.uid("P")}
        s["email"] = s["userId"] + "@sdk.example"
        r = subprocess.run([NODE, "send.js", which, self.server.url, self.key, json.dumps(s)], cwd=self.dir,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, "%s SDK failed:\n%s\n%s\nkithd:\n%s"
                         % (which, r.stdout, r.stderr, self.server.log_tail(20)))
        self.assertIn("ok", r.stdout)
        return s

    def check(self, s):
        # One profile, whichever identity it is looked up by.
        profiles = [self.admin.profile(ns, v) for ns, v in (
            ("CRMID", s["userId"]), ("AnonymousId", s["anonymousId"]), ("AnonymousId", s["anonymousId2"]))]
        self.assertEqual(len({frozenset(kt.identities_of(p)) for p in profiles}), 1, profiles)
        p = profiles[0]
        self.assertTrue({("crmid", s["userId"]), ("anonymousid", s["anonymousId"]),
                         ("anonymousid", s["anonymousId2"])} <= kt.identities_of(p), p)
        ent = p["entity"]
        self.assertEqual(kt.get_path(ent, "personalEmail.address"), s["email"])
        self.assertEqual(kt.get_path(ent, "person.name.firstName"), "Ann")
        self.assertEqual(kt.get_path(ent, "_segment.traits.plan"), "pro")
        # Events of the whole cluster.
        r = self.admin.events("AnonymousId", s["anonymousId"])
        self.assertStatus(r, 200)
        evs = [c["entity"] for c in r.json["children"]]
        types = sorted(e["eventType"] for e in evs)
        self.assertEqual(types, sorted([s["prefix"] + " Viewed", s["prefix"] + " Order Completed",
                                        "web.webpagedetails.pageViews", "segment.alias"]), evs)
        order = [e for e in evs if e["eventType"].endswith("Order Completed")][0]
        self.assertEqual(kt.get_path(order, "commerce.order.priceTotal"), 42.5)
        page = [e for e in evs if e["eventType"] == "web.webpagedetails.pageViews"][0]
        self.assertEqual(kt.get_path(page, "web.webPageDetails.URL"), "https://shop.example/pricing")
        for e in evs:
            self.assertTrue(e["_id"])
            self.assertIn("library", kt.get_path(e, "_segment.context", {}))

    def test_segment_analytics_node(self):
        self.check(self.run_sdk("segment"))

    def test_rudderstack_sdk_node(self):
        # Gzip bodies with Content-Type application/x-www-form-urlencoded, originalTimestamp + sentAt.
        self.check(self.run_sdk("rudder"))


if __name__ == "__main__":
    kt.main()
