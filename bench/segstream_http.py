#!/usr/bin/env python3
"""Streaming segmentation end to end over HTTP (bench/run.sh step 1b).

  segstream_http.py URL KEY [SEGMENTS] [DURATION_S] [LOADERS]

Against a running kithd: creates a sandbox "segbench-<random>" with the test fixture's schemas,
datasets and inlet (tests/blackbox/kithtest.py), SEGMENTS streaming segments of mixed shapes (profile
attributes, event counts and sums, campaign windows) and one latency segment, and opens the membership
change stream (GET /data/core/ups/stream/memberships, filtered to the latency segment). Then for
DURATION_S seconds LOADERS threads post batches of 100 events (/collection/batch) for 2,000 people
while a sampler posts, every 20 ms, one purchase (/collection) that makes a new profile enter the
latency segment; the latency is from sending that POST to reading the "realized" event on the stream
(validation, the writer's group, the WAL fsync, the answer and the stream included). Python clients:
the event rate is what these threads push, not kithd's ceiling (bench/loadgen measures that).
Prints key=value lines and a RESULT line."""
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))
import kithtest as kt  # noqa: E402
from test_stream import SseClient  # noqa: E402

DEFS = "/data/core/ups/segment/definitions"
LATENCY = 'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 5000000'


class Remote:
    """What kithtest.Client needs of a server."""

    def __init__(self, port, key):
        self.port = port
        self.admin_key = key


def expression(i):
    k = i // 6
    shapes = [
        '_acme.tier = "%s"' % ("gold", "silver", "bronze")[k % 3],
        'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > %d' % (100 + 50 * k),
        'xEvent[eventType = "advertising.impressions" and _acme.campaignId in ["c-%d", "c-%d"] and '
        'timestamp occurs <= %d minutes before now]._acme.campaignId.distinct().count() >= 2'
        % (101 + k % 5, 102 + k % 5, 30 + k % 60),
        'xEvent[eventType = "web.webpagedetails.pageViews"].count() >= %d' % (1 + k % 10),
        'person.name.lastName = "L%d"' % (k % 50),
        'xEvent[eventType = "commerce.productViews" and timestamp occurs <= %d days before now]'
        '.count() >= 1' % (1 + k % 30),
    ]
    return shapes[i % 6]


def main():
    url, key = sys.argv[1], sys.argv[2]
    nseg = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    duration = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    loaders = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    port = urllib.parse.urlparse(url).port
    srv = Remote(port, key)
    sb = "segbench-%06d" % random.randrange(10 ** 6)
    admin = kt.Client(srv, key)
    r = admin.post(kt.Client.SANDBOXES, {"name": sb, "title": sb, "type": "development"})
    if r.status != 201:
        print("segstream_http: sandbox: %r" % r, file=sys.stderr)
        return 1
    api = admin.in_sandbox(sb)
    fx = kt.Fixture(api)
    t0 = time.time()
    for i in range(nseg):
        r = api.post(DEFS, {"name": "s%d" % i, "expression": {"type": "PQL", "format": "pql/text",
                                                              "value": expression(i)}})
        if r.status != 201:
            print("segstream_http: segment %d: %r" % (i, r), file=sys.stderr)
            return 1
    r = api.post(DEFS, {"name": "latency", "expression": {"type": "PQL", "format": "pql/text",
                                                         "value": LATENCY}})
    lat_id = r.json["id"]
    print("defined %d segments (+1 latency) in %.1f s" % (nseg, time.time() - t0))
    stream = SseClient(srv, key, sandbox=sb, query="?segmentId=" + lat_id)
    if stream.status != 200:
        print("segstream_http: stream: %d" % stream.status, file=sys.stderr)
        return 1
    stream.next(event=None, timeout=5)

    stop = threading.Event()
    counts = [0] * loaders
    errors = [0]
    types = ["web.webpagedetails.pageViews"] * 9 + ["commerce.productViews"] * 6 + \
        ["advertising.impressions"] * 4 + ["commerce.purchases"]

    def loader(n):
        rnd = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        seq = 0
        while not stop.is_set():
            msgs = []
            now = int(time.time() * 1000)
            for _ in range(100):
                seq += 1
                crm = "p-%d" % rnd.randrange(2000)
                et = rnd.choice(types)
                ent = {"_id": "ld%d-%d" % (n, seq), "timestamp": kt.iso(now - rnd.randrange(3600000)),
                       "eventType": et, "identityMap": kt.idmap(("CRMID", crm))}
                if et == "commerce.purchases":
                    ent["commerce"] = {"order": {"priceTotal": rnd.randrange(10, 500)}}
                elif et == "advertising.impressions":
                    ent["_acme"] = {"campaignId": "c-%d" % (101 + rnd.randrange(6))}
                msgs.append(fx.event(ent))
            body = json.dumps({"messages": msgs})
            conn.request("POST", "/collection/batch/" + fx.inlet, body,
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 207:
                counts[n] += 100
            else:
                errors[0] += 1
                time.sleep(0.05)

    sent, seen = {}, {}

    def reader():
        while not stop.is_set() or len(seen) < len(sent):
            try:
                f = stream.next(timeout=0.5)
            except AssertionError:
                if stop.is_set():
                    return
                continue
            ident = f["data"].get("identity", {}).get("id", "")
            if ident.startswith("lat-") and ident not in seen:
                seen[ident] = time.time()

    def sampler():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        k = 0
        while not stop.is_set():
            crm = "lat-%d" % k
            ent = {"_id": "lat-ev-%d" % k, "timestamp": kt.iso(int(time.time() * 1000) - 1000),
                   "eventType": "commerce.purchases", "commerce": {"order": {"priceTotal": 9000000}},
                   "identityMap": kt.idmap(("CRMID", crm))}
            body = json.dumps(fx.event(ent))
            sent[crm] = time.time()
            conn.request("POST", "/collection/" + fx.inlet, body, {"Content-Type": "application/json"})
            conn.getresponse().read()
            k += 1
            time.sleep(0.02)

    threads = [threading.Thread(target=loader, args=(i,), daemon=True) for i in range(loaders)]
    rt = threading.Thread(target=reader, daemon=True)
    st = threading.Thread(target=sampler, daemon=True)
    rt.start()
    t0 = time.time()
    for t in threads:
        t.start()
    st.start()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join()
    st.join()
    elapsed = time.time() - t0
    rt.join(5)
    stream.close()
    lat = sorted((seen[c] - sent[c]) * 1000 for c in sent if c in seen)
    events = sum(counts) + len(sent)
    p = (lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]) if lat else (lambda q: 0)
    print("segments=%d http_events_per_s=%.0f loaders=%d errors=%d" % (nseg, events / elapsed, loaders,
                                                                     errors[0]))
    print("event -> membership change over HTTP: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d of %d samples)"
          % (p(0.5), p(0.99), lat[-1] if lat else 0, len(lat), len(sent)))
    print("RESULT segments=%d http_events_per_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f samples=%d"
          % (nseg, events / elapsed, p(0.5), p(0.99), lat[-1] if lat else 0, len(lat)))
    return 0 if lat else 1


if __name__ == "__main__":
    sys.exit(main())
