#!/usr/bin/env bash
# durability: spool (issue #12): the loader's sustained rate. At each fixed
# arrival rate, unique alerts for --duration, it samples the spool's lag
# (alert_ingest_spool_lag_seconds) every 0.5 s; the sustained rate is the
# highest whose lag stayed under 1 s throughout. Each step starts a fresh
# database and spool; every acknowledged alert is verified in PostgreSQL.
#
# Usage: load/loader-rate.sh --alerts N --rates "5000 10000 15000" [--duration 20s]
# Prints one row per rate: req/s asked and done, alerts/s, non-2xx, max lag,
# how long after the load ended the last acknowledged alert was stored.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/service.sh

alerts=1 rates="5000 10000 15000 20000" duration=20s
while [ $# -gt 0 ]; do
    case $1 in
        --alerts) alerts=$2 ;;
        --rates) rates=$2 ;;
        --duration) duration=$2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift 2
done

ADDR=127.0.0.1:19097
DB=ai_loader_rate
DB_URL=postgres://root@127.0.0.1:5432/$DB
work=$(mktemp -d)
svc=""
cleanup() { [ -n "$svc" ] && kill "$svc" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

ensure_postgres >&2
cargo build --release --bin alert-ingest >&2 && cargo build --release -p alert-ingest-load >&2

printf '%-7s %8s %9s %10s %8s %9s %9s %s\n' alerts 'rate' 'req/s' 'alerts/s' non2xx 'maxLag_s' 'storedMs' verdict
for rate in $rates; do
    fresh_database "$DB"
    start_service "$ADDR" "$work/service.log" ALERT_INGEST_DURABILITY=spool \
        ALERT_INGEST_DATABASE_URL=$DB_URL ALERT_INGEST_SPOOL_DIR="$work/spool-$rate"
    target/release/alert-ingest-load --target "$ADDR" --workload unique --alerts "$alerts" --rate "$rate" \
        --duration "$duration" --verify "$DB_URL" --verify-within 120s --run "rate-$rate" >"$work/load" 2>/dev/null &
    load=$!
    max_lag=0
    while kill -0 "$load" 2>/dev/null; do
        lag=$(curl -fs -m 1 "http://$ADDR/metrics" | awk '$1 == "alert_ingest_spool_lag_seconds" {print $2}' || true)
        [ -n "$lag" ] && max_lag=$(echo "if ($lag > $max_lag) $lag else $max_lag" | bc -l)
        sleep 0.5
    done
    wait "$load" || true
    stop_service
    non2xx=$(($(kv status_4xx "$work/load") + $(kv status_5xx "$work/load") + $(kv transport_errors "$work/load")))
    verdict=sustained
    if [ "$(echo "$max_lag >= 1" | bc -l)" = 1 ] || [ "$non2xx" != 0 ] || [ "$(kv lost "$work/load")" != 0 ]; then
        verdict=behind
    fi
    printf '%-7s %8s %9s %10s %8s %9.2f %9s %s\n' "$alerts" "$rate" "$(kv req_per_s "$work/load")" \
        "$(kv alerts_per_s "$work/load")" "$non2xx" "$max_lag" "$(kv stored_within_ms "$work/load")" "$verdict"
done
