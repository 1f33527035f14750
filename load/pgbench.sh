#!/usr/bin/env bash
# PostgreSQL alone, without the service or a load generator: how many alert
# rows per second can the batch statement store on this machine? This is
# the ceiling that scripts/bench's figures are read against (issue #3).
#
#   load/pgbench.sh [--rows 25] [--clients "1 2 4"] [--duration 15]
#
# Fresh database ai_pgbench, migrated and partitioned by the service itself
# (`alert-ingest migrate`, as a deployment does), load/pgbench/write-batch.sql: each transaction
# stores ROWS new one-alert requests (an alerts and a notifications row each).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

rows=25 clients="1 2 4" duration=15
while [ $# -gt 0 ]; do
    case $1 in
        --rows) rows=$2 ;; --clients) clients=$2 ;; --duration) duration=$2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift 2
done
ensure_postgres >&2
cargo build --release --quiet --bin alert-ingest
DB=ai_pgbench
printf '%7s %5s %9s %11s %10s\n' clients rows tps 'alerts/s' 'latency ms'
for c in $clients; do
    psql -h 127.0.0.1 -U root -d postgres -qXc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null 2>&1
    ALERT_INGEST_DATABASE_URL="postgres://root@127.0.0.1:5432/$DB" \
        "${CARGO_TARGET_DIR:-target}/release/alert-ingest" migrate --config config.yaml >/dev/null
    out=$(pgbench -h 127.0.0.1 -U root -n -M prepared -c "$c" -j "$c" -T "$duration" \
        -D rows="$rows" -f load/pgbench/write-batch.sql "$DB" 2>&1)
    tps=$(awk '/^tps/ {print $3}' <<<"$out")
    lat=$(awk '/latency average/ {print $4}' <<<"$out")
    printf '%7s %5s %9.0f %11.0f %10s\n' "$c" "$rows" "$tps" "$(echo "$tps * $rows" | bc)" "$lat"
done
psql -h 127.0.0.1 -U root -d postgres -qXc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
