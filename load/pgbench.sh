#!/usr/bin/env bash
# PostgreSQL alone, without the service or a load generator: how many alert
# rows per second can the batch statement store on this machine? This is
# the ceiling that scripts/bench's figures are read against (issue #3).
#
#   load/pgbench.sh [--rows 25] [--clients "1 2 4"] [--duration 15]
#                   [--episodes 0] [--bin BIN] [--sql FILE] [--setup FILE]
#
# Fresh database ai_pgbench, migrated and partitioned by the service itself
# (`alert-ingest migrate`, as a deployment does), load/pgbench/write-batch.sql:
# each transaction stores ROWS one-alert requests.
#   --episodes 0 (unique, the default): every alert a new episode (an
#     alerts and a notifications row each).
#   --episodes N (repeat): N episodes are stored first, then every request
#     re-sends ROWS of them unchanged (a notifications row each, and each
#     alert row's version moved, issue #14): the steady state of
#     Alertmanager re-sending its groups.
#   --bin, --sql: an older build and its statement (git show
#     REV:load/pgbench/write-batch.sql > FILE), for an A/B of a schema change.
#   --setup: SQL run after the migrations (a schema variant to measure
#     before writing its migration, e.g. ALTER INDEX alerts_labels_idx
#     RESET (gin_pending_list_limit)).
# Prints alerts/s and the WAL PostgreSQL wrote per alert.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

rows=25 clients="1 2 4" duration=15 episodes=0 bin="" sql=load/pgbench/write-batch.sql setup=""
while [ $# -gt 0 ]; do
    case $1 in
        --rows) rows=$2 ;; --clients) clients=$2 ;; --duration) duration=$2 ;;
        --episodes) episodes=$2 ;; --bin) bin=$2 ;; --sql) sql=$2 ;; --setup) setup=$2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift 2
done
ensure_postgres >&2
if [ -z "$bin" ]; then
    cargo build --release --quiet --bin alert-ingest
    bin="${CARGO_TARGET_DIR:-target}/release/alert-ingest"
fi
DB=ai_pgbench
q() { psql -h 127.0.0.1 -U root -d "$DB" -qXAt "$@"; }
printf '%7s %5s %9s %11s %10s %11s\n' clients rows tps 'alerts/s' 'latency ms' 'WAL B/alert'
for c in $clients; do
    psql -h 127.0.0.1 -U root -d postgres -qXc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null 2>&1
    ALERT_INGEST_DATABASE_URL="postgres://root@127.0.0.1:5432/$DB" "$bin" migrate --config config.yaml >/dev/null
    if [ -n "$setup" ]; then q -v ON_ERROR_STOP=1 -f "$setup" >/dev/null; fi
    if [ "$episodes" -gt 0 ]; then
        q -v ON_ERROR_STOP=1 -v rows="$episodes" -v episodes="$episodes" -v fill=1 -f "$sql" >/dev/null
        q -c "VACUUM ANALYZE" >/dev/null
    fi
    q -c CHECKPOINT >/dev/null
    lsn=$(q -c "SELECT pg_current_wal_lsn()")
    out=$(pgbench -h 127.0.0.1 -U root -n -M prepared -c "$c" -j "$c" -T "$duration" \
        -D rows="$rows" -D episodes="$episodes" -D fill=0 -f "$sql" "$DB" 2>&1)
    tps=$(awk '/^tps/ {print $3}' <<<"$out")
    [ -n "$tps" ] || { echo "$out" >&2; exit 1; }
    lat=$(awk '/latency average/ {print $4}' <<<"$out")
    txs=$(awk '/number of transactions actually processed/ {print $6}' <<<"$out")
    # Requests written: a notification each. (A repeat batch drops the
    # duplicates it drew, so it holds up to ROWS, not always ROWS.)
    sent=$(( $(q -c "SELECT count(*) FROM notifications") - episodes ))
    wal=$(q -c "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn') / $sent)")
    printf '%7s %5s %9.0f %11.0f %10s %11s\n' "$c" "$rows" "$tps" "$(echo "$tps * $sent / $txs" | bc -l)" "$lat" "$wal"
done
psql -h 127.0.0.1 -U root -d postgres -qXc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
