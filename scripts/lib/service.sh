# shellcheck shell=bash
# Helpers for load scripts that run the release service themselves (sourced
# after scripts/lib/postgres.sh; bash, set -euo pipefail):
#   fresh_database NAME        - drops and creates database NAME
#   start_service ADDR LOG [VAR=VALUE...]
#                              - $service_bin (default
#                                target/release/alert-ingest) with
#                                $service_config (default config.yaml) on
#                                ADDR, stderr to LOG, with these environment
#                                variables; its pid in $svc; returns once
#                                /readyz is 200 (or after 10 s)
#   stop_service               - SIGTERM, waits for the exit
#   post_webhooks ADDR FILE... - POSTs each file to ADDR's /webhook, in
#                                order; fails on the first non-2xx
#   use_given_or_release_bin   - $service_bin = $ALERT_INGEST_BIN, or a
#                                release build made now
#   kv KEY FILE                - the value of a key=value line of FILE
#   wait_http URL [SECONDS]    - until URL answers 2xx (default 10 s);
#                                returns 1, saying so, if it never does
#   yaml_set FILE SECTION KEY VALUE
#                              - sets KEY of top-level SECTION of a copy of
#                                config.yaml (its layout: two-space keys)

fresh_database() {
    pg_root_psql -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
}

start_service() {
    local addr=$1 log=$2
    shift 2
    env "$@" RUST_LOG=warn "${service_bin:-target/release/alert-ingest}" \
        --config "${service_config:-config.yaml}" --listen "$addr" 2>"$log" &
    svc=$!
    for _ in $(seq 200); do
        curl -fs -o /dev/null "http://$addr/readyz" && return 0
        sleep 0.05
    done
}

stop_service() {
    kill -TERM "$svc"
    wait "$svc" || true
    svc=""
}

post_webhooks() {
    local addr=$1 body
    shift
    for body in "$@"; do
        curl -fsS -o /dev/null -H 'Content-Type: application/json' --data-binary "@$body" \
            "http://$addr/webhook"
    done
}

use_given_or_release_bin() {
    if [ -z "${ALERT_INGEST_BIN:-}" ]; then cargo build --release --quiet --bin alert-ingest; fi
    service_bin=${ALERT_INGEST_BIN:-target/release/alert-ingest}
}

kv() { grep "^$1=" "$2" | cut -d= -f2; }

wait_http() {
    local _
    for _ in $(seq $((${2:-10} * 20))); do
        curl -fs -o /dev/null "$1" && return 0
        sleep 0.05
    done
    echo "no answer from $1 within ${2:-10} s" >&2
    return 1
}

yaml_set() {
    awk -v s="$2" -v k="$3" -v v="$4" '
        /^[^ #]/ { in_s = ($0 == s ":") }
        in_s && $1 == k ":" { sub(/:.*/, ": " v); found = 1 }
        { print }
        END { if (!found) exit 1 }' "$1" >"$1.tmp"
    mv "$1.tmp" "$1"
}
