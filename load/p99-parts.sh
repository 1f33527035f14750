#!/usr/bin/env bash
# Where the latency tail at a fixed rate comes from (issue #12): the same
# load (unique one-alert webhooks, the tool's latency from each request's
# scheduled time) against setups that each add one part of the data path,
# alternated in every run so that the machine's noise hits all of them:
#   bare        bare-hyper: the load tool and an HTTP server that does nothing
#   tmpfs-nodb  durability: spool on a tmpfs (fdatasync costs nothing), the
#               database unreachable: ingress, parse, the writer thread
#   disk-nodb   the spool on disk, database unreachable: + fdatasync
#   disk-db     the spool on disk with PostgreSQL loading it: + the loader
#               and PostgreSQL sharing the cores and the disk (the product)
#   tmpfs-db    the spool on a tmpfs with PostgreSQL loading it: + the
#               loader and PostgreSQL, without the spool's disk writes
#   database    durability: database (not in the default list): the
#               workers commit before each answer, no spool
# Each row has the service's peak RSS (VmHWM). For the spool setups it
# also prints the writer's sync time p99 and
# largest (bucket upper bounds: powers of 2 from 25 µs) and mean group
# size, from the service's own histograms.
#
# Usage: load/p99-parts.sh [--rate 10000] [--duration 30s] [--runs 3]
#                          [--parts "bare tmpfs-nodb disk-nodb disk-db tmpfs-db"]
# Needs root for the tmpfs (mounted under a temporary directory, removed
# at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/service.sh

rate=10000 duration=30s runs=3 parts="bare tmpfs-nodb disk-nodb disk-db tmpfs-db"
while [ $# -gt 0 ]; do
    case $1 in
        --rate) rate=$2 ;; --duration) duration=$2 ;; --runs) runs=$2 ;; --parts) parts=$2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift 2
done

ADDR=127.0.0.1:19114
DB=ai_p99_parts
DB_URL=postgres://root@127.0.0.1:5432/$DB
NO_DB_URL=postgres://root@127.0.0.1:1/$DB # nothing listens on port 1
work=$(mktemp -d)
mkdir "$work/tmpfs"
mount -t tmpfs -o size=2g tmpfs "$work/tmpfs"
svc=""
cleanup() {
    [ -n "$svc" ] && kill "$svc" 2>/dev/null && wait "$svc" 2>/dev/null
    umount "$work/tmpfs" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ensure_postgres >&2
cargo build --release --bin alert-ingest >&2 && cargo build --release -p alert-ingest-load >&2

# histogram_quantile Q NAME FILE: the upper bound of the bucket holding the
# quantile Q (1 = the largest) of a Prometheus histogram in a /metrics dump,
# in ms.
histogram_quantile() {
    awk -v q="$1" -v m="$2_bucket" 'index($1, m "{") == 1 {
            le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le); n++; b[n] = le; c[n] = $2 }
        END { if (!n || !c[n]) { print "-"; exit }
              for (i = 1; i <= n; i++) if (c[i] >= q * c[n]) {
                  if (b[i] == "+Inf") print b[i]; else print b[i] * 1000; exit } }' "$3"
}
histogram_mean() {
    awk -v m="$1" '$1 == m "_sum" {s = $2} $1 == m "_count" {c = $2}
        END { if (c) printf "%.1f", s / c; else print "-" }' "$2"
}

printf '%-4s %-11s %8s %7s %7s %8s %5s %6s %10s %10s %8s\n' run part 'req/s' p50ms p99ms p99.9ms 5xx rssMB syncP99ms syncMaxMs perSync
for run in $(seq "$runs"); do
    for part in $parts; do
        rm -rf "$work/tmpfs/spool" "$work/spool"
        case $part in
            bare)
                target/release/bare-hyper "$ADDR" 2>/dev/null &
                svc=$!
                for _ in $(seq 100); do curl -fs -o /dev/null "http://$ADDR/" && break; sleep 0.05; done ;;
            *)
                case $part in tmpfs-*) dir=$work/tmpfs/spool ;; *) dir=$work/spool ;; esac
                case $part in *-nodb) url=$NO_DB_URL ;; *) url=$DB_URL; fresh_database "$DB" ;; esac
                case $part in database) durability=database ;; *) durability=spool ;; esac
                start_service "$ADDR" "$work/service.log" ALERT_INGEST_DURABILITY=$durability \
                    ALERT_INGEST_SPOOL_DIR="$dir" ALERT_INGEST_DATABASE_URL="$url" ;;
        esac
        target/release/alert-ingest-load --target "$ADDR" --workload unique --alerts 1 \
            --rate "$rate" --duration "$duration" --run "parts-$part-$run" >"$work/load" 2>/dev/null || true
        sync_p99=- sync_max=- per_sync=-
        rss=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$svc/status" 2>/dev/null || echo -)
        if [ "$part" != bare ] && [ "$part" != database ]; then
            curl -fs "http://$ADDR/metrics" >"$work/metrics" || true
            sync_p99=$(histogram_quantile 0.99 alert_ingest_spool_sync_duration_seconds "$work/metrics")
            sync_max=$(histogram_quantile 1 alert_ingest_spool_sync_duration_seconds "$work/metrics")
            per_sync=$(histogram_mean alert_ingest_spool_records_per_sync "$work/metrics")
        fi
        if ! kill -0 "$svc" 2>/dev/null; then
            echo "$part: the server exited during the run; its log:" >&2
            tail -20 "$work/service.log" >&2
            exit 1
        fi
        if [ "$part" = bare ]; then kill "$svc"; wait "$svc" 2>/dev/null || true; svc=""; else stop_service; fi
        out() { kv "$1" "$work/load"; }
        printf '%-4s %-11s %8s %7s %7s %8s %5s %6s %10s %10s %8s\n' "$run" "$part" "$(out req_per_s)" "$(out p50_ms)" \
            "$(out p99_ms)" "$(out p999_ms)" "$(out status_5xx)" "$rss" "$sync_p99" "$sync_max" "$per_sync"
    done
done
