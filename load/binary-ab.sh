#!/usr/bin/env bash
# A performance change as an A/B: two alert-ingest binaries (the previous
# build and this one; copy the previous one aside before rebuilding), the
# same fixed-rate load against each, alternated in every run so that the
# shared machine's noise hits both. Each run gets a fresh database and a
# fresh spool, every acknowledged alert is verified in PostgreSQL, and the
# service's peak RSS, loader batch size and spool sync p99 are printed
# beside the load tool's latencies; medians of the runs at the end.
#
# Usage: load/binary-ab.sh --a BIN --b BIN [--a-config FILE] [--b-config FILE]
#                          [--a-env "K=V ..."] [--b-env "K=V ..."]
#                          [--rate 10000] [--duration 30s] [--runs 3]
#                          [--alerts 1] [--workload unique]
# --a-config/--b-config: that side's configuration file (default
# config.yaml; an older binary refuses keys it does not know, so give it
# the config.yaml of its own commit: git show REV:config.yaml > FILE).
# --a-env/--b-env: environment for that side only, e.g.
# "ALERT_INGEST_DURABILITY=database". The same binary twice with two
# configurations compares two settings.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/service.sh

a="" b="" a_env="" b_env="" a_config=config.yaml b_config=config.yaml rate=10000 duration=30s runs=3 alerts=1 workload=unique
while [ $# -gt 0 ]; do
    case $1 in
        --a) a=$2 ;; --b) b=$2 ;; --a-env) a_env=$2 ;; --b-env) b_env=$2 ;;
        --a-config) a_config=$2 ;; --b-config) b_config=$2 ;;
        --rate) rate=$2 ;; --duration) duration=$2 ;; --runs) runs=$2 ;;
        --alerts) alerts=$2 ;; --workload) workload=$2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift 2
done
[ -x "$a" ] && [ -x "$b" ] || { echo "--a and --b must be executables" >&2; exit 2; }

ADDR=127.0.0.1:19115
DB=ai_binary_ab
DB_URL=postgres://root@127.0.0.1:5432/$DB
work=$(mktemp -d)
svc=""
cleanup() { [ -n "$svc" ] && kill "$svc" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

ensure_postgres >&2
cargo build --release -p alert-ingest-load >&2

mean() { # NAME FILE: a histogram's mean from a /metrics dump
    awk -v m="$1" '$1 == m "_sum" {s = $2} $1 == m "_count" {c = $2}
        END { if (c) printf "%.0f", s / c; else print "-" }' "$2"
}

printf '%-4s %-2s %8s %7s %7s %8s %8s %5s %5s %6s %9s\n' run bin 'req/s' p50ms p99ms p99.9ms storedMs 5xx lost rssMB batchRows
for run in $(seq "$runs"); do
    for side in a b; do
        if [ $side = a ]; then
            service_bin=$a service_config=$a_config env=$a_env
        else
            service_bin=$b service_config=$b_config env=$b_env
        fi
        fresh_database "$DB"
        # shellcheck disable=SC2086  # $env is a list of K=V words
        start_service "$ADDR" "$work/service.log" ALERT_INGEST_DURABILITY=spool \
            ALERT_INGEST_SPOOL_DIR="$work/spool-$side-$run" ALERT_INGEST_DATABASE_URL=$DB_URL $env
        target/release/alert-ingest-load --target "$ADDR" --workload "$workload" --alerts "$alerts" \
            --rate "$rate" --duration "$duration" --verify "$DB_URL" --verify-within 60s \
            --run "ab-$side-$run" >"$work/load" 2>/dev/null || true
        curl -fs "http://$ADDR/metrics" >"$work/metrics" || true
        rss=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$svc/status")
        stop_service
        out() { kv "$1" "$work/load"; }
        printf '%-4s %-2s %8s %7s %7s %8s %8s %5s %5s %6s %9s\n' "$run" "$side" "$(out req_per_s)" \
            "$(out p50_ms)" "$(out p99_ms)" "$(out p999_ms)" "$(out stored_within_ms)" \
            "$(out status_5xx)" "$(out lost)" "$rss" "$(mean alert_ingest_batch_rows "$work/metrics")" |
            tee -a "$work/rows"
    done
done
median() { # SIDE COLUMN
    awk -v s="$1" -v c="$2" '$2 == s {print $c}' "$work/rows" | sort -g |
        awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
for side in a b; do
    echo "median $side: p50 $(median $side 4) ms, p99 $(median $side 5) ms, p99.9 $(median $side 6) ms," \
        "peak RSS $(median $side 10) MB, loader batch $(median $side 11) rows"
done
