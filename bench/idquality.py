#!/usr/bin/env python3
"""Pairwise precision and recall of kithd's identity graph against bench/gen's truth file.

    python3 bench/idquality.py --url http://127.0.0.1:8080 --key KEY --truth /tmp/pop/truth.jsonl

Identities scored: every identity of the truth file that the data can link (ECIDs only ever seen
anonymously are excluded: nothing can tell whose they are). A true pair is two identities listed
for one person; a resolved pair is two scored identities in one cluster (POST
/data/core/identity/clusters/members, 1,000 at a time). precision = |true ∩ resolved| / |resolved|,
recall = |true ∩ resolved| / |true|. Standard library only."""

import argparse
import itertools
import json
import sys
import urllib.request

NSID = {"CRMID": 8, "Email": 6, "Phone": 7, "ECID": 4}


def clusters_of(url, key, sandbox, idents):
    """identity → frozenset of the scored identities in its cluster."""
    out = {}
    idents = list(idents)
    for i in range(0, len(idents), 1000):
        chunk = idents[i:i + 1000]
        body = json.dumps({"compositeXids": [{"nsid": NSID[ns], "id": v} for ns, v in chunk]}).encode()
        req = urllib.request.Request(url + "/data/core/identity/clusters/members", data=body, method="POST",
                                     headers={"Authorization": "Bearer " + key, "Content-Type": "application/json",
                                              "x-sandbox-name": sandbox})
        with urllib.request.urlopen(req, timeout=60) as r:
            res = json.load(r)
        back = {v: k for k, v in NSID.items()}
        for ident, c in zip(chunk, res["clusters"]):
            out[ident] = frozenset((back.get(m["nsid"], "?"), m["id"]) for m in c["members"]) or frozenset([ident])
    return out


def score(url, key, truth_path, sandbox="prod"):
    true_pairs, scored = set(), set()
    with open(truth_path) as f:
        truth = [json.loads(line) for line in f]
    for t in truth:
        ids = sorted((i["namespace"], i["id"]) for i in t["identities"] if i.get("linked", True))
        scored.update(ids)
        true_pairs.update(itertools.combinations(ids, 2))
    cl = clusters_of(url, key, sandbox, sorted(scored))
    resolved = set()
    for members in set(cl.values()):
        ids = sorted(m for m in members if m in scored)
        resolved.update(itertools.combinations(ids, 2))
    tp = len(true_pairs & resolved)
    precision = tp / len(resolved) if resolved else 1.0
    recall = tp / len(true_pairs) if true_pairs else 1.0
    return {"identities": len(scored), "truePairs": len(true_pairs), "resolvedPairs": len(resolved),
            "precision": round(precision, 4), "recall": round(recall, 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--sandbox", default="prod")
    a = ap.parse_args()
    json.dump(score(a.url.rstrip("/"), a.key, a.truth, a.sandbox), sys.stdout)
    print()


if __name__ == "__main__":
    main()
