#!/usr/bin/env bash
# Scaling out on one machine (issue #14): the same unique load against one
# instance directly and against scripts/cluster's three instances behind
# HAProxy, all on one PostgreSQL, alternated, with the streaming
# standby's replay lag during each run (history on the standby at 10M
# episodes: load/history-10m.sh --standby).
#
#   load/cluster.sh [--alerts 1] [--duration 15s] [--runs 2]
#
# Brings scripts/cluster up in a directory of its own under /tmp
# (database alert_ingest_cluster, kept: every run tags its alerts) and
# stops it at the end. Every acknowledged alert is verified in PostgreSQL.
# Prints one row per run: setup, req/s, alerts/s, p50, p99, non-2xx, lost,
# stored twice, the largest replay lag sampled (pg_stat_replication, every 0.5 s).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/service.sh

alerts=1 duration=15s runs=2
while [ $# -gt 0 ]; do
    case $1 in
        --alerts) alerts=$2 ;; --duration) duration=$2 ;; --runs) runs=$2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift 2
done

DB_URL=postgres://root@127.0.0.1:5432/alert_ingest_cluster
export CLUSTER_DIR=/tmp/alert-ingest-cluster-load
work=$(mktemp -d)
cluster="" sampler=""
cleanup() {
    if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; fi
    if [ -n "$cluster" ]; then kill -TERM "$cluster" 2>/dev/null || true; wait "$cluster" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --bin alert-ingest >&2 && cargo build --release -p alert-ingest-load >&2
rm -rf "$CLUSTER_DIR"
scripts/cluster >"$work/cluster.out" 2>&1 &
cluster=$!
for _ in $(seq 600); do
    grep -q '^cluster: up' "$work/cluster.out" && break
    kill -0 "$cluster" 2>/dev/null || { cat "$work/cluster.out" >&2; exit 1; }
    sleep 0.5
done
grep -q '^cluster: up' "$work/cluster.out" || { cat "$work/cluster.out" >&2; exit 1; }

# max_lag FILE: samples the standby's replay lag (s) into FILE until killed.
sample_lag() {
    while :; do
        pg_root_psql -Atc "SELECT COALESCE(EXTRACT(epoch FROM max(replay_lag)), 0)
                           FROM pg_stat_replication" >>"$1" 2>/dev/null || true
        sleep 0.5
    done
}

printf '%-4s %-22s %8s %9s %7s %7s %7s %5s %5s %9s\n' run setup 'req/s' 'alerts/s' p50ms p99ms non2xx lost dups maxLag_s
for run in $(seq "$runs"); do
    for setup in one-instance three-behind-haproxy; do
        target=127.0.0.1:9101
        [ "$setup" = three-behind-haproxy ] && target=127.0.0.1:9095
        : >"$work/lag"
        sample_lag "$work/lag" &
        sampler=$!
        target/release/alert-ingest-load --target "$target" --workload unique --alerts "$alerts" \
            --rate 0 --duration "$duration" --verify "$DB_URL" --verify-within 120s \
            --run "cluster-$setup-$run-$(date +%s)" >"$work/load" 2>"$work/load.err" || true
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        sampler=""
        grep -q '^req_per_s=' "$work/load" || { cat "$work/load.err" >&2; exit 1; }
        non2xx=$(($(kv status_4xx "$work/load") + $(kv status_5xx "$work/load") + $(kv transport_errors "$work/load")))
        printf '%-4s %-22s %8s %9s %7s %7s %7s %5s %5s %9.2f\n' "$run" "$setup" "$(kv req_per_s "$work/load")" \
            "$(kv alerts_per_s "$work/load")" "$(kv p50_ms "$work/load")" "$(kv p99_ms "$work/load")" \
            "$non2xx" "$(kv lost "$work/load")" "$(kv duplicates "$work/load")" "$(sort -g "$work/lag" | tail -n 1)"
    done
done

