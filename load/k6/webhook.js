// k6 load test for POST /webhook.
//
//   k6 run load/k6/webhook.js -e TARGET=http://127.0.0.1:9095 -e WORKLOAD=unique \
//          -e ALERTS=1 -e RATE=10000 -e DURATION=60s
//
// WORKLOAD  unique  every request is a new alert episode (worst case for PostgreSQL)
//           repeat  a fixed set of firing groups re-sent, as Alertmanager does every
//                   group_interval (the fingerprint-cache path)
//           mixed   80 % repeat, 20 % unique
// ALERTS    alerts per request (1, 10, 100)
// RATE      requests/s at a fixed arrival rate (constant-arrival-rate, so latencies
//           are free of coordinated omission); 0 = flat out with VUS connections
// DURATION  e.g. 60s; VUS  connections (default 50); GROUPS  repeat set size (default 1000)
// RUN       a tag put in every alert's `run` label, so that a run's alerts can be
//           counted in PostgreSQL afterwards (scripts/bench does)
//
// Counters `ack_unique_alerts` and `ack_repeat_requests` say how many alerts
// were acknowledged (200), for the check against PostgreSQL.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';

const TARGET = __ENV.TARGET || 'http://127.0.0.1:9095';
const WORKLOAD = __ENV.WORKLOAD || 'unique';
const ALERTS = parseInt(__ENV.ALERTS || '1', 10);
const RATE = parseInt(__ENV.RATE || '0', 10);
const DURATION = __ENV.DURATION || '30s';
const VUS = parseInt(__ENV.VUS || '50', 10);
const GROUPS = parseInt(__ENV.GROUPS || '1000', 10);
const RUN = __ENV.RUN || `k6-${Date.now()}`;
const STARTS_AT = new Date(Date.now() - 60000).toISOString();

const ackUnique = new Counter('ack_unique_alerts');
const ackRepeat = new Counter('ack_repeat_requests');

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
  scenarios: {
    webhook: RATE > 0
      ? { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: DURATION,
          preAllocatedVUs: VUS, maxVUs: VUS * 4 }
      : { executor: 'constant-vus', vus: VUS, duration: DURATION },
  },
};

function alert(key, i) {
  return {
    status: 'firing',
    labels: {
      alertname: 'LoadTest', run: RUN, cluster: 'prod-eu-1', job: 'node',
      namespace: `team-${i % 7}`, pod: `pod-${key}-${i}`, severity: 'warning',
    },
    annotations: { summary: 'load test alert', description: `alert ${i} of ${key}` },
    startsAt: STARTS_AT,
    endsAt: '0001-01-01T00:00:00Z',
    generatorURL: 'http://prometheus:9090/graph?g0.expr=up',
  };
}

function body(key) {
  const alerts = [];
  for (let i = 0; i < ALERTS; i++) alerts.push(alert(key, i));
  return JSON.stringify({
    receiver: 'load', status: 'firing', alerts,
    groupLabels: { alertname: 'LoadTest' }, commonLabels: { alertname: 'LoadTest', run: RUN },
    commonAnnotations: {}, externalURL: 'http://alertmanager:9093', version: '4',
    groupKey: `{}:{alertname="LoadTest", key="${key}"}`, truncatedAlerts: 0,
  });
}

// The repeat set is built once per VU: re-sending it costs no JSON work.
const repeatBodies = [];
function repeatBody() {
  const g = exec.scenario.iterationInTest % GROUPS;
  if (!repeatBodies[g]) repeatBodies[g] = body(`g${g}`);
  return repeatBodies[g];
}

export default function () {
  const unique = WORKLOAD === 'unique' || (WORKLOAD === 'mixed' && Math.random() < 0.2);
  const payload = unique ? body(`u${exec.vu.idInTest}-${exec.vu.iterationInInstance}`) : repeatBody();
  const res = http.post(`${TARGET}/webhook`, payload, {
    headers: { 'Content-Type': 'application/json' },
    tags: { kind: unique ? 'unique' : 'repeat' },
  });
  const ok = check(res, { 'status is 200': (r) => r.status === 200 });
  if (ok && unique) ackUnique.add(ALERTS);
  if (ok && !unique) ackRepeat.add(1);
}
