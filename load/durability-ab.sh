#!/usr/bin/env bash
# durability: spool against durability: database (issue #12), alternated
# in one run: fixed-rate load, every acknowledged alert verified, peak RSS.
# Unlike scripts/bench it runs no bare-hyper baseline (a fixed rate needs
# none), so a 60 s A/B of 3 runs each takes about 7 minutes.
#
# Usage: load/durability-ab.sh [--rate 10000] [--duration 60s] [--runs 3]
#                              [--alerts 1] [--workload unique]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/service.sh

rate=10000 duration=60s runs=3 alerts=1 workload=unique
while [ $# -gt 0 ]; do
    case $1 in
        --rate) rate=$2 ;; --duration) duration=$2 ;; --runs) runs=$2 ;;
        --alerts) alerts=$2 ;; --workload) workload=$2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift 2
done

ADDR=127.0.0.1:19113
DB=ai_durability_ab
DB_URL=postgres://root@127.0.0.1:5432/$DB
work=$(mktemp -d)
svc=""
cleanup() { [ -n "$svc" ] && kill "$svc" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

ensure_postgres >&2
cargo build --release --bin alert-ingest >&2 && cargo build --release -p alert-ingest-load >&2

for run in $(seq "$runs"); do
    for durability in spool database; do
        fresh_database "$DB"
        start_service "$ADDR" "$work/service.log" ALERT_INGEST_DURABILITY=$durability \
            ALERT_INGEST_SPOOL_DIR="$work/spool-$run" ALERT_INGEST_DATABASE_URL=$DB_URL
        target/release/alert-ingest-load --target "$ADDR" --workload "$workload" --alerts "$alerts" \
            --rate "$rate" --duration "$duration" --verify "$DB_URL" --verify-within 60s \
            --run "ab-$durability-$run" >"$work/load" 2>/dev/null || true
        rss=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$svc/status")
        stop_service
        out() { kv "$1" "$work/load"; }
        echo "$durability run $run: req/s $(out req_per_s) p50 $(out p50_ms) p90 $(out p90_ms)" \
            "p99 $(out p99_ms) p99.9 $(out p999_ms) ms; 5xx $(out status_5xx) lost $(out lost)" \
            "dups $(out duplicates); verified $(out stored_within_ms) ms after the end; peak RSS ${rss} MB"
    done
done
