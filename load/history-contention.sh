#!/usr/bin/env bash
# Does a heavy history query raise ingestion's latency? (issue #5: the
# history API runs on its own pool so that it never takes a worker's
# connection; on a small machine it still competes for PostgreSQL's CPU.)
#
#   load/history-contention.sh [--rows 1000000] [--rate 2000] [--duration 20s]
#                              [--rounds 3] [--hammers 4] [--config config.yaml]
#
# A fresh database ai_contention gets --rows episodes (SQL generate_series,
# a new pod label on each, spread over 30 days); the release service serves
# it. Each round measures webhook latency at a fixed --rate (unique
# workload, 1 alert, alert-ingest-load, every acknowledged alert verified)
# twice: alone, then while --hammers clients loop on the heaviest history
# query (stats/top by a label over 30 days). Prints each round, then the
# medians and the ratio of p99 with the queries to p99 without.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

rows=1000000 rate=2000 duration=20s rounds=3 hammers=4 config=config.yaml
while [ $# -gt 0 ]; do
    case $1 in
        --rows) rows=$2 ;; --rate) rate=$2 ;; --duration) duration=$2 ;;
        --rounds) rounds=$2 ;; --hammers) hammers=$2 ;; --config) config=$2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift 2
done

ADDR=127.0.0.1:19098
DB=ai_contention
DB_URL=postgres://root@127.0.0.1:5432/$DB
HEAVY="/api/v1/stats/top?by=label:pod&since=$(date -u -d '30 days ago' +%FT%TZ)"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

ensure_postgres >&2
cargo build --release --bin alert-ingest >&2 && cargo build --release -p alert-ingest-load >&2
psql -h 127.0.0.1 -U root -d postgres -qXc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null 2>&1
ALERT_INGEST_DATABASE_URL=$DB_URL target/release/alert-ingest migrate --config "$config" >/dev/null
started=$(date +%s)
psql -h 127.0.0.1 -U root -d "$DB" -qX -v ON_ERROR_STOP=1 <<SQL
INSERT INTO alerts (fingerprint, starts_at, alertname, status, labels, annotations, ends_at,
                    generator_url, receiver, first_seen_at, updated_at)
SELECT lpad(to_hex(i), 16, '0'), now() - (i % 2592000) * interval '1 second',
       'Bulk' || (i % 200), 'resolved',
       jsonb_build_object('alertname', 'Bulk' || (i % 200), 'pod', 'pod-' || i,
                          'namespace', 'ns' || (i % 20), 'severity', 'warning'),
       '{"summary": "bulk"}', now(), '', 'r', now(), now()
FROM generate_series(1, $rows) AS i;
VACUUM ANALYZE alerts;
SQL
echo "loaded $rows episodes in $(($(date +%s) - started)) s" >&2

ALERT_INGEST_DATABASE_URL=$DB_URL RUST_LOG=warn target/release/alert-ingest \
    --config "$config" --listen "$ADDR" 2>"$work/service.log" &
pids+=("$!")
for _ in $(seq 200); do curl -fs -o /dev/null "http://$ADDR/readyz" && break; sleep 0.05; done
one=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "http://$ADDR$HEAVY")
echo "one heavy history query alone: status ${one% *}, ${one#* } s" >&2

# Prints "p99_ms acknowledged lost 5xx" of one fixed-rate run.
ingest() {
    target/release/alert-ingest-load --target "$ADDR" --workload unique --alerts 1 \
        --rate "$rate" --duration "$duration" --connections 50 --verify "$DB_URL" \
        --run "contention-$1" >"$work/load" 2>/dev/null || true
    kv() { grep "^$1=" "$work/load" | cut -d= -f2; }
    echo "$(kv p99_ms) $(kv ok) $(kv lost) $(kv status_5xx)"
}

# Loops on the heavy query until $work/stop exists; counts answers by status.
hammer() {
    while [ ! -e "$work/stop" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 "http://$ADDR$HEAVY" >>"$work/history.$1"
    done
}

printf '%5s %-14s %9s %8s %5s %5s %s\n' round phase 'p99 ms' acked lost 5xx 'history answers'
alone=() busy=()
for r in $(seq "$rounds"); do
    read -r p99 ok lost s5 < <(ingest "$r-alone")
    printf '%5s %-14s %9s %8s %5s %5s\n' "$r" alone "$p99" "$ok" "$lost" "$s5"
    alone+=("$p99")
    rm -f "$work/stop" "$work"/history.*
    hammer_pids=()
    for h in $(seq "$hammers"); do hammer "$h" & hammer_pids+=("$!"); done
    read -r p99 ok lost s5 < <(ingest "$r-busy")
    touch "$work/stop"
    wait "${hammer_pids[@]}" 2>/dev/null || true
    answers=$(cat "$work"/history.* | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')
    printf '%5s %-14s %9s %8s %5s %5s %s\n' "$r" "history busy" "$p99" "$ok" "$lost" "$s5" "$answers"
    busy+=("$p99")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_alone=$(median "${alone[@]}") m_busy=$(median "${busy[@]}")
echo "median p99: alone $m_alone ms, with $hammers clients on the heaviest history query $m_busy ms," \
     "ratio $(echo "scale=2; $m_busy / $m_alone" | bc)"
