#!/usr/bin/env python3
"""kith side of the segment comparison (bench/pg/compare.sh calls it after the load).

  kith_segments.py URL KEY INLET EVENT_SCHEMA_ID WEB_DATASET_ID TRUTH.jsonl SEG1 SEG2 SEG3 [SAMPLES]

1. Membership: looks every CRM customer up by CRMID and counts the distinct profiles (clusters) whose
   segmentMembership.ups.<segment>.status is "realized" or "existing", per segment; these are the streaming
   segments' members after the load, to set beside PostgreSQL's counts.
2. Event -> membership latency (segment 1, sum of purchases > 10000): for SAMPLES customers not in it,
   POST one purchase of 20,000 to the streaming inlet, then poll the profile until the membership is
   realized (or existing); the time from sending the event to seeing the membership.
3. Batch: one segment job over the three segments (POST /segment/jobs), its time and member counts.
Prints key=value lines."""
import http.client
import json
import os
import random
import sys
import time
import urllib.parse
import uuid

url, key, inlet, schema, dataset, truth = sys.argv[1:7]
segs = sys.argv[7:10]
samples = int(sys.argv[10]) if len(sys.argv) > 10 else 20
u = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
auth = {"Authorization": "Bearer " + key}


def profile(crm):
    q = urllib.parse.urlencode({"schema.name": "_xdm.context.profile", "entityId": crm, "entityIdNS": "CRMID"})
    conn.request("GET", "/data/core/ups/access/entities?" + q, headers=auth)
    r = conn.getresponse()
    body = r.read()
    return json.loads(body) if r.status == 200 else {}


def members(doc):
    """{profile: segments it is in}; a profile is named by the set of its identities, so two CRM
    customers stitched into one profile count once (the response is keyed by the XID asked for)."""
    out = {}
    for xid, p in doc.items():
        ups = (p.get("entity", {}).get("segmentMembership", {}) or {}).get("ups", {}) or {}
        who = tuple(sorted(i.get("xid", "") for i in p.get("identities", []))) or (xid,)
        # "realized" on entering, "existing" while staying in (AEP's statuses); "exited" is out.
        out[who] = {s for s in segs if (ups.get(s) or {}).get("status") in ("realized", "existing")}
    return out


def export_without_crmid(seg):
    """How many of seg's members (realized or existing) have no CRMID, by an export job."""
    body = {"fields": "identityMap",
            "filter": {"segments": [{"segmentId": seg, "status": ["realized", "existing"]}],
                       "emptyProfiles": True}}
    conn.request("POST", "/data/core/ups/export/jobs", body=json.dumps(body),
                 headers=dict(auth, **{"Content-Type": "application/json"}))
    r = conn.getresponse()
    job = json.loads(r.read() or b"{}")
    while r.status == 200 and job.get("status") in ("NEW", "PROCESSING"):
        time.sleep(0.05)
        conn.request("GET", f"/data/core/ups/export/jobs/{job['id']}", headers=auth)
        r = conn.getresponse()
        job = json.loads(r.read() or b"{}")
    if job.get("status") != "SUCCEEDED":
        return None
    conn.request("GET", f"/data/core/ups/export/jobs/{job['id']}/file", headers=auth)
    r = conn.getresponse()
    lines = r.read().decode().splitlines()
    if r.status != 200:
        return None
    return sum(1 for line in lines if not (json.loads(line).get("identityMap") or {}).get("CRMID"))


crms = [t["crmId"] for t in map(json.loads, open(truth)) if t.get("hasCrm")]
t0 = time.monotonic()
seen = {}
by_crm = []  # (segment number, CRMID) of every realized membership, for the cross-check
for c in crms:
    m = members(profile(c))
    seen.update(m)
    by_crm += [(k, c) for k, s in enumerate(segs, 1) if any(s in v for v in m.values())]
scan = time.monotonic() - t0
if os.environ.get("KITH_SEG_MEMBERS"):
    with open(os.environ["KITH_SEG_MEMBERS"], "w") as f:
        f.writelines(f"{k}\t{c}\n" for k, c in sorted(by_crm))
for k, s in enumerate(segs, 1):
    print(f"kith_seg{k}_members={sum(1 for m in seen.values() if s in m)}")
print(f"kith_membership_scan_s={scan:.3f}")

# 3. The same three segments as one batch segment job (POST /segment/jobs): its time against
# PostgreSQL's queries, and its member counts against the streaming ones.
conn.request("POST", "/data/core/ups/segment/jobs", body=json.dumps([{"segmentId": s} for s in segs]),
             headers=dict(auth, **{"Content-Type": "application/json"}))
r = conn.getresponse()
job = json.loads(r.read() or b"{}")
while r.status == 200 and job.get("status") in ("NEW", "PROCESSING"):
    time.sleep(0.05)
    conn.request("GET", "/data/core/ups/segment/jobs/" + job["id"], headers=auth)
    r = conn.getresponse()
    job = json.loads(r.read() or b"{}")
if job.get("status") == "SUCCEEDED":
    m = job["metrics"]
    print(f"kith_job_ms={m['totalTime']['totalTimeInMs']}")
    # the job's evaluation instant: PostgreSQL's queries answer for the same one
    print(f"kith_job_now={time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(job['kith:now'] / 1000))}"
          f".{job['kith:now'] % 1000:03d}Z")
    print(f"kith_job_profiles={m['totalProfiles']}")
    for k, s in enumerate(segs, 1):
        print(f"kith_job_seg{k}_members={m['segmentedProfileCounter'].get(s, 0)}")
    # The job counts every profile, the streaming count above only those reached through a CRM
    # customer: the job's members without a CRMID (an export job of each segment's members with
    # their identityMap) explain a difference between the two.
    for k, s in enumerate(segs, 1):
        n = export_without_crmid(s)
        if n is not None:
            print(f"kith_job_seg{k}_no_crmid={n}")
else:
    print(f"kith_job_error=HTTP {r.status} {job.get('status') or job.get('detail')}", file=sys.stderr)
print(f"kith_profiles_scanned={len(seen)}")

rng = random.Random(1)
lat = []
for c in rng.sample(crms, min(samples, len(crms))):
    if any(segs[0] in m for m in members(profile(c)).values()):
        continue
    ent = {"_id": str(uuid.uuid4()), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
           "eventType": "commerce.purchases",
           "identityMap": {"CRMID": [{"id": c, "authenticatedState": "authenticated"}]},
           "commerce": {"order": {"priceTotal": 20000.0, "currencyCode": "USD"}, "purchases": {"value": 1}}}
    ref = {"id": schema, "contentType": "application/vnd.adobe.xed-full+json;version=1"}
    env = {"header": {"schemaRef": ref, "datasetId": dataset, "source": {"name": "bench"}},
           "body": {"xdmMeta": {"schemaRef": ref}, "xdmEntity": ent}}
    t = time.monotonic()
    conn.request("POST", "/collection/" + inlet, body=json.dumps(env),
                 headers=dict(auth, **{"Content-Type": "application/json"}))
    r = conn.getresponse()
    r.read()
    if r.status // 100 != 2:
        print(f"kith_membership_error=HTTP {r.status}", file=sys.stderr)
        break
    while time.monotonic() - t < 10:
        if any(segs[0] in m for m in members(profile(c)).values()):
            lat.append((time.monotonic() - t) * 1000)
            break
lat.sort()
if lat:
    print(f"kith_ev2mem_p50_ms={lat[len(lat) // 2]:.2f}")
    print(f"kith_ev2mem_max_ms={lat[-1]:.2f}")
print(f"kith_ev2mem_samples={len(lat)}")
