#!/usr/bin/env bash
# oha load test for POST /webhook (`cargo install oha`).
#
#   load/oha.sh [--target http://127.0.0.1:9095] [--workload repeat|unique|mixed]
#               [--alerts 1|10|100] [--rate REQ_PER_S (0 = flat out)]
#               [--duration 30s] [--connections 50]
#
# Bodies come from a file this script generates (load/gen-bodies.py):
#   repeat  GROUPS (1000) fixed firing groups; oha picks one at random per request
#   unique  BODIES distinct bodies (default: enough for the run at the given rate, or
#           200000 flat out); oha picks *at random with replacement*, so some are
#           sent more than once: oha cannot guarantee a purely unique workload.
#           For that (and for checking PostgreSQL afterwards) use
#           target/release/alert-ingest-load or scripts/bench.
#   mixed   80 % of the lines are repeat groups, 20 % unique
# At a fixed rate oha runs with --latency-correction (coordinated-omission-safe).
set -euo pipefail
cd "$(dirname "$0")/.."

target=http://127.0.0.1:9095 workload=repeat alerts=1 rate=0 duration=30s connections=50
while [ $# -gt 0 ]; do
    case $1 in
        --target) target=$2 ;; --workload) workload=$2 ;; --alerts) alerts=$2 ;;
        --rate) rate=$2 ;; --duration) duration=$2 ;; --connections) connections=$2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift 2
done
command -v oha >/dev/null || { echo "oha not found: cargo install oha" >&2; exit 1; }

secs=${duration%s}
bodies=${BODIES:-$([ "$rate" -gt 0 ] && echo $((rate * secs)) || echo 200000)}
file=$(mktemp --suffix=.jsonl)
trap 'rm -f "$file"' EXIT
python3 load/gen-bodies.py --workload "$workload" --alerts "$alerts" --bodies "$bodies" >"$file"

args=(-z "$duration" -c "$connections" -m POST -H 'Content-Type: application/json' -Z "$file" --no-tui)
if [ "$rate" -gt 0 ]; then
    args+=(-q "$rate" --latency-correction)
fi
echo "oha: $workload workload, $alerts alert(s) per request, rate ${rate:-flat out}, $duration, $connections connections" >&2
exec oha "${args[@]}" "$target/webhook"
