#!/usr/bin/env python3
"""Writes webhook bodies, one JSON document per line, for `oha -Z` (load/oha.sh).

Same shape as load/k6/webhook.js and alert-ingest-load: a pod-level firing
alert with 7 labels and 2 annotations; the `run` label tags the run."""
import argparse
import json
import random
import time

p = argparse.ArgumentParser()
p.add_argument("--workload", choices=["unique", "repeat", "mixed"], default="repeat")
p.add_argument("--alerts", type=int, default=1)
p.add_argument("--bodies", type=int, default=100000, help="lines for unique/mixed")
p.add_argument("--groups", type=int, default=1000, help="distinct repeat groups")
p.add_argument("--run", default=f"oha-{int(time.time())}")
a = p.parse_args()
starts_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))


def body(key):
    alerts = [{
        "status": "firing",
        "labels": {"alertname": "LoadTest", "run": a.run, "cluster": "prod-eu-1", "job": "node",
                   "namespace": f"team-{i % 7}", "pod": f"{key}-{i}", "severity": "warning"},
        "annotations": {"summary": "load test alert", "description": f"alert {i} of {key}"},
        "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
    } for i in range(a.alerts)]
    return json.dumps({
        "receiver": "load", "status": "firing", "alerts": alerts,
        "groupLabels": {"alertname": "LoadTest"}, "commonLabels": {"alertname": "LoadTest", "run": a.run},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "version": "4",
        "groupKey": f'{{}}:{{alertname="LoadTest", key="{key}"}}', "truncatedAlerts": 0,
    }, separators=(",", ":"))


if a.workload == "repeat":
    lines = (body(f"g{g}") for g in range(a.groups))
elif a.workload == "unique":
    lines = (body(f"u{n}") for n in range(a.bodies))
else:
    lines = (body(f"g{random.randrange(a.groups)}") if random.random() < 0.8 else body(f"u{n}")
             for n in range(a.bodies))
for line in lines:
    print(line)
