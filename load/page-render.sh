#!/usr/bin/env bash
# The history page (src/page/) with thousands of episodes: does it stay
# smooth? For each size, a fresh database gets that many episodes through
# the webhook, then Debian's headless Chromium (driven over WebDriver with
# curl: ChromeDriver is plain HTTP and JSON) opens the 24-hour timeline
# holding all of them, --runs times, and the page's own functions are
# timed in it:
#   loaded     navigation start -> every episode fetched (the
#              `episodes-loaded` performance mark): API pages of 1000
#   ready      navigation start -> the timeline drawn (`view-ready`):
#              also grouping, rows and canvas
#   rows       renderRows(): the label sets' DOM rows
#   draw       drawBars(): one canvas frame of the rows in view
#   hit        episodeAt(): the hover hit-test under the pointer
#   frame p50 / p99
#              intervals between animation frames while the rows scroll
#              200 px a frame for 120 frames (16.7 ms is 60 fps)
# Medians of the runs. Usage:
#   load/page-render.sh [--episodes "1000 5000 20000"] [--runs 3]
# ALERT_INGEST_BIN: the binary to serve (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/service.sh

sizes="1000 5000 20000" runs=3
while [ $# -gt 0 ]; do
    case $1 in
        --episodes) sizes=$2; shift ;; --runs) runs=$2; shift ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done

addr=127.0.0.1:19096
db=ai_page_render
T0=2026-11-23T00:00:00Z
window="since=$T0&until=2026-11-24T00:00:00Z"
ensure_postgres >&2
ensure_chromium >&2
command -v jq >/dev/null || apt_install jq
use_given_or_release_bin
work=$(mktemp -d)
driver="" session=""
cleanup() {
    [ -n "$session" ] && curl -fs -X DELETE "$wd/session/$session" >/dev/null || true
    [ -n "$driver" ] && kill "$driver" 2>/dev/null || true
    [ -n "${svc:-}" ] && stop_service 2>/dev/null || true
    rm -rf "$work"
    pg_root_psql -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

port=19097
chromedriver --port=$port >"$work/chromedriver.log" 2>&1 &
driver=$!
wd=http://127.0.0.1:$port
wait_http "$wd/status" 20
# W3C WebDriver: POST a JSON body, read .value.
webdriver() { curl -fsS -X "$1" -H 'Content-Type: application/json' "$wd/session${2}" ${3:+-d "$3"}; }
js() { webdriver POST "/$session/execute/sync" "$(jq -n --arg s "$1" '{script: $s, args: []}')" | jq -c .value; }

# N episodes over the 24 hours: N/4 label sets of 20 alertnames, about
# four episodes each, 70 % resolved after 1-60 minutes, 500 per request.
bodies() {
    python3 - "$1" "$work/bodies" <<'PY'
import json, os, random, sys, datetime as dt
n, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
random.seed(n)
t0 = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
sets = max(1, n // 4)
fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
alerts = []
for i in range(n):
    s = random.randrange(sets)
    start = t0 + dt.timedelta(seconds=(86400 * (i + random.random())) // n)
    resolved = random.random() < 0.7
    end = start + dt.timedelta(minutes=random.randint(1, 60))
    alerts.append({
        "status": "resolved" if resolved else "firing",
        "labels": {"alertname": f"Alert{s % 20:02d}", "instance": f"host-{s:05d}:9100",
                   "job": "node", "severity": ["critical", "warning", "warning", "info"][s % 4]},
        "annotations": {"summary": f"episode {i} of set {s}"},
        "startsAt": fmt(start), "endsAt": fmt(end) if resolved else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph"})
for k in range(0, n, 500):
    body = {"receiver": "render", "status": "firing", "alerts": alerts[k:k + 500],
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am:9093", "version": "4", "groupKey": "{}:{}",
            "truncatedAlerts": 0}
    open(f"{out}/{k // 500:05d}.json", "w").write(json.dumps(body))
PY
}

MEASURE='
const scroller = document.getElementById("scroller");
const time = (f, n) => { const t = performance.now(); for (let i = 0; i < n; i++) f(i); return (performance.now() - t) / n; };
const rows = time(() => renderRows(), 3);
const height = timeline.rows.length * ROW_HEIGHT;
const draw = time((i) => { scroller.scrollTop = (i * 997) % Math.max(1, height); drawBars(); }, 100);
const width = document.getElementById("bars").clientWidth;
const hit = time((i) => episodeAt((i * 37) % width, (i * 13) % scroller.clientHeight), 1000);
return { loaded: performance.getEntriesByName("episodes-loaded")[0].startTime,
         ready: performance.getEntriesByName("view-ready")[0].startTime, rows, draw, hit,
         labelSets: timeline.rows.length, episodes: Number(document.getElementById("timeline").dataset.episodes) };'
FRAMES='
const done = arguments[arguments.length - 1];
const scroller = document.getElementById("scroller");
scroller.scrollTop = 0;
const gaps = []; let last = 0, n = 0;
const step = (t) => {
  if (last) gaps.push(t - last);
  last = t;
  scroller.scrollTop += 200;
  if (++n < 120) requestAnimationFrame(step); else { gaps.sort((a, b) => a - b); done([gaps[Math.floor(gaps.length / 2)], gaps[Math.floor(gaps.length * 0.99)]]); }
};
requestAnimationFrame(step);'

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

printf '%9s %10s %10s %10s %9s %9s %9s %9s %9s\n' episodes label_sets loaded_ms ready_ms rows_ms draw_ms hit_us frame_p50 frame_p99
for n in $sizes; do
    fresh_database "$db"
    rm -rf "$work/bodies"
    bodies "$n"
    start_service "$addr" "$work/service.log" \
        ALERT_INGEST_DATABASE_URL="postgres://root@127.0.0.1:5432/$db" ALERT_INGEST_DURABILITY=database
    post_webhooks "$addr" "$work"/bodies/*.json
    caps='{"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/usr/bin/chromium",
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,720"]}}}}'
    session=$(webdriver POST "" "$caps" | jq -r .value.sessionId)
    : >"$work/runs"
    for _ in $(seq "$runs"); do
        webdriver POST "/$session/url" "{\"url\": \"http://$addr/?$window\"}" >/dev/null
        for _ in $(seq 600); do
            [ "$(js 'return document.body.dataset.ready === "true"')" = true ] && break
            sleep 0.1
        done
        m=$(js "$MEASURE")
        f=$(webdriver POST "/$session/execute/async" "$(jq -n --arg s "$FRAMES" '{script: $s, args: []}')" | jq -c .value)
        echo "$m $f" >>"$work/runs"
    done
    webdriver DELETE "/$session" >/dev/null
    session=""
    stop_service
    measured() { cut -d' ' -f1 "$work/runs" | jq -r "$1"; }
    frames() { cut -d' ' -f2 "$work/runs" | jq -r "$1"; }
    printf '%9s %10s %10.0f %10.0f %9.1f %9.2f %9.1f %9.1f %9.1f\n' \
        "$(measured .episodes | head -1)" "$(measured .labelSets | head -1)" \
        "$(measured .loaded | median)" "$(measured .ready | median)" "$(measured .rows | median)" \
        "$(measured .draw | median)" "$(measured '.hit * 1000' | median)" \
        "$(frames '.[0]' | median)" "$(frames '.[1]' | median)"
done
