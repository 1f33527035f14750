#!/usr/bin/env bash
# durability: spool (issue #12): a long PostgreSQL outage under steady load.
# Unique one-alert webhooks at --rate for the whole run; --before of load with
# PostgreSQL up, then the local cluster is stopped for --down, started again,
# and the load goes on for --after. Every 30 s it prints the spool's size,
# pending records and lag (from /metrics) and the non-2xx answers so far;
# at the end, how long the loader took to catch up after PostgreSQL returned
# (lag back under 1 s) and the oracle's check that every acknowledged alert
# is in PostgreSQL exactly once.
#
# Usage: load/outage.sh [--rate 2000] [--down 600] [--before 30] [--after 120]
# It stops the local PostgreSQL cluster: run it where nothing else needs it
# meanwhile. PostgreSQL is started again whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/service.sh

rate=2000 down=600 before=30 after=120
while [ $# -gt 0 ]; do
    case $1 in
        --rate) rate=$2 ;;
        --down) down=$2 ;;
        --before) before=$2 ;;
        --after) after=$2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift 2
done

ADDR=127.0.0.1:19096
DB=ai_outage
DB_URL=postgres://root@127.0.0.1:5432/$DB
work=$(mktemp -d)
svc=""
ensure_postgres >&2
VER=$(pg_version)
pg_ctl() { pg_ctlcluster --skip-systemctl-redirect "$VER" main "$@"; }
cleanup() {
    pg_up || pg_ctl start || true
    [ -n "$svc" ] && kill "$svc" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --bin alert-ingest >&2 && cargo build --release -p alert-ingest-load >&2
fresh_database "$DB"
start_service "$ADDR" "$work/service.log" ALERT_INGEST_DURABILITY=spool \
    ALERT_INGEST_DATABASE_URL=$DB_URL ALERT_INGEST_SPOOL_DIR="$work/spool"

total=$((before + down + after))
target/release/alert-ingest-load --target "$ADDR" --workload unique --alerts 1 --rate "$rate" \
    --duration "${total}s" --verify "$DB_URL" --verify-within 600s --run "outage-$$" \
    >"$work/load" 2>"$work/load.err" &
load=$!
start=$(date +%s)

metric() { curl -fs -m 2 "http://$ADDR/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
non2xx() { # from the service's own counters: answers by status class
    curl -fs -m 2 "http://$ADDR/metrics" |
        awk '/^alert_ingest_http_requests_total\{/ && !/code="2/ {s += $2} END {print s + 0}'
}
sample() {
    printf '%6ss  %-5s %12s %10s %8s %7s\n' "$(($(date +%s) - start))" "$1" \
        "$(metric alert_ingest_spool_bytes)" "$(metric alert_ingest_spool_records_pending)" \
        "$(metric alert_ingest_spool_lag_seconds)" "$(non2xx)"
}

printf '%7s  %-5s %12s %10s %8s %7s\n' time db spool_bytes pending lag_s non2xx
sleep "$before"
pg_ctl stop -m fast
stopped=$(date +%s)
while elapsed=$(($(date +%s) - stopped)); [ "$elapsed" -lt "$down" ]; do
    next=$((30 - elapsed % 30))
    [ $((elapsed + next)) -gt "$down" ] && next=$((down - elapsed))
    sleep "$next"
    sample down
done
peak_bytes=$(metric alert_ingest_spool_bytes)
peak_pending=$(metric alert_ingest_spool_records_pending)
pg_ctl start
back=$(date +%s%N)
caught=""
while kill -0 "$load" 2>/dev/null || [ -z "$caught" ]; do
    lag=$(metric alert_ingest_spool_lag_seconds || true)
    if [ -z "$caught" ] && [ -n "$lag" ] && [ "$(echo "$lag < 1" | bc -l)" = 1 ]; then
        caught=$((($(date +%s%N) - back) / 1000000))
        sample up
    fi
    [ -z "$caught" ] && [ $((($(date +%s%N) - back) / 1000000000)) -gt 600 ] && caught=never
    sleep 0.2
done
wait "$load" || true
sample end
stop_service
cat "$work/load.err"
echo "PostgreSQL down ${down} s at ${rate} req/s: spool peak ${peak_bytes} bytes, ${peak_pending} records pending;" \
    "lag under 1 s ${caught} ms after PostgreSQL was started;" \
    "non-2xx $(($(kv status_4xx "$work/load") + $(kv status_5xx "$work/load") + $(kv transport_errors "$work/load")));" \
    "acknowledged $(kv acked_alerts "$work/load"), lost $(kv lost "$work/load"), duplicates $(kv duplicates "$work/load")"
