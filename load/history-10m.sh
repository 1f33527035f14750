#!/usr/bin/env bash
# The history API at 10 million episodes (issue #5): how long does each
# /api/v1/ request take when `alerts` holds a month of a large fleet?
#
#   load/history-10m.sh [--rows 10000000] [--reuse] [--drop] [--runs 5]
#                       [--statement-timeout 10s] [--unvacuumed-hours 0]
#                       [--explain-log FILE] [--shape derived|events]
#                       [--bin BIN] [--database NAME] [--standby]
#
# 1. PostgreSQL up; release build; database ai_history10m created, migrated
#    by `alert-ingest migrate`, and bulk-loaded with SQL generate_series:
#    --rows episodes over the 30 days before the load (a diurnal rate),
#    --rows/10 label sets drawn with a power-law skew (a few flap thousands
#    of times, most fire a handful of times), 200 alertnames of skewed
#    frequency, labels alertname/job/instance/namespace/pod/severity,
#    about 70 % resolved; about 1.5 events per episode (see --shape) and
#    --rows/10 notifications, in the daily partitions the service made.
#    The indexes are dropped during the load and rebuilt from the
#    definitions the migrations created, then VACUUM ANALYZE. Prints the
#    time of each step and the table and index sizes.
#    --shape: how the rows are stored. `derived` (the default), as the
#    service stores them since migration 6: an episode's creation event
#    is its alerts row (first_status, first_ends_at), alert_events holds
#    the resolutions that came later (about 0.5 per episode). `events`, as
#    releases before it stored them (and as an upgraded database keeps
#    them): every event in alert_events, first_status NULL.
#    --reuse keeps a database already loaded with as many rows in the same
#    shape (its COMMENT records the load); --drop drops it at the end.
#    --bin: migrate and serve with that build instead of this tree's (an
#    A/B of a change on the same data; an older build needs --shape events).
#    --database: another name than ai_history10m, to keep two loads side by
#    side (an A/B of two shapes, each served by its own build, alternated).
#    --standby: the history API reads from the local streaming standby
#    (scripts/lib/postgres.sh's ensure_standby, history.database_url),
#    once it has replayed the load (a build older than that setting reads
#    the primary); the EXPLAIN of step 3 still runs on the primary; the
#    standby keeps running (scripts/lib/postgres.sh: stop_standby).
# 2. Serves it (release binary, a free port, log level warn, retention
#    off so that nothing is deleted; history.statement_timeout as given,
#    default that of config.yaml) and times each request with curl, once
#    to warm up then --runs times, and prints one table: request, HTTP
#    status, items returned, median/min/max in ms. Times in the requests
#    are relative to the load (T), so that a reused database is asked the
#    same questions.
#    --unvacuumed-hours H first leaves the episodes of the last H hours as
#    they are between two autovacuums: each with a dead row version (an
#    UPDATE rolled back), on pages not all-visible, so that index-only
#    scans fetch from the heap there (ANALYZE'd, as autoanalyze would). With
#    the default thresholds (20 % of the table) a table growing 333,000
#    episodes a day is vacuumed about every 6 days: up to 144 hours. The
#    database is vacuumed back at the end.
# 3. EXPLAIN (ANALYZE, BUFFERS) of the same statements (a copy of
#    src/history/sql.rs's text: keep them in step) goes to --explain-log
#    (default /tmp/history-10m-explain.<time>.log); each plan's node types
#    and execution time are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/service.sh   # yaml_set

rows=10000000 reuse=false drop=false runs=5 timeout="" explain_log="" stale_hours=0
shape=derived given_bin="" DB=ai_history10m standby=false
while [ $# -gt 0 ]; do
    case $1 in
        --rows) rows=$2; shift ;; --runs) runs=$2; shift ;;
        --statement-timeout) timeout=$2; shift ;; --explain-log) explain_log=$2; shift ;;
        --unvacuumed-hours) stale_hours=$2; shift ;;
        --shape) shape=$2; shift ;; --bin) given_bin=$2; shift ;;
        --database) DB=$2; shift ;;
        --reuse) reuse=true ;; --drop) drop=true ;; --standby) standby=true ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done
case $shape in derived|events) ;; *) echo "--shape: derived or events" >&2; exit 2 ;; esac
explain_log=${explain_log:-/tmp/history-10m-explain.$(date +%Y%m%dT%H%M%S).log}

DB_URL=postgres://root@127.0.0.1:5432/$DB
FINGERPRINTS=$((rows / 10))
NOTIFICATIONS=$((rows / 10))
DAY=86400
work=$(mktemp -d)
svc="" stale=false
cleanup() {
    if [ -n "$svc" ]; then kill -TERM "$svc" 2>/dev/null || true; wait "$svc" 2>/dev/null || true; fi
    rm -rf "$work"
    if $stale && ! $drop; then db_psql -c 'VACUUM (ANALYZE) alerts' || true; fi
    if $drop; then pg_root_psql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true; fi
}
trap cleanup EXIT

db_psql() {
    psql -X -w -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U root -d "$DB" "$@"
}
now_s() { date +%s.%N; }
since_s() { echo "$(now_s) - $1" | bc | xargs printf '%.1f'; }
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
log() { echo "history-10m: $*" >&2; }

# The recorded load: "history-10m rows=N t0=EPOCH key=value...", or empty.
load_record() {
    pg_root_psql -Atc "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$DB'"
}
record_value() { tr ' ' '\n' <<<"$record" | sed -n "s/^$1=//p"; }

free_port() {
    local p
    for p in $(seq 19100 19199); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    echo "no free port in 19100-19199" >&2; return 1
}

migrate() {
    ALERT_INGEST_DATABASE_URL=$DB_URL "$bin" migrate --config "$work/config.yaml" >/dev/null
}

# ---------------------------------------------------------------- 1. data
ensure_postgres >&2
command -v jq >/dev/null || apt_install jq
if [ -z "$given_bin" ]; then
    cargo build --release --quiet --bin alert-ingest
    given_bin="${CARGO_TARGET_DIR:-target}/release/alert-ingest"
fi
# A private copy: the target directory may be shared, and rebuilt meanwhile.
bin=$work/alert-ingest
cp "$given_bin" "$bin"
cp config.yaml "$work/config.yaml"
yaml_set "$work/config.yaml" log level warn
yaml_set "$work/config.yaml" retention enabled false
if [ -n "$timeout" ]; then yaml_set "$work/config.yaml" history statement_timeout "$timeout"; fi
timeout=$(awk '/^[^ #]/ { h = ($0 == "history:") } h && $1 == "statement_timeout:" { print $2 }' "$work/config.yaml")

record=$(load_record)
if $reuse && [ "$(record_value rows)" = "$rows" ] && [ "$(record_value shape)" = "$shape" ]; then
    log "reusing $DB ($record)"
    started=$(now_s)
    migrate
    log "migrate on the loaded database: $(since_s "$started") s"
else
    pg_root_psql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    load_started=$(now_s)
    t0=$(date +%s)
    migrate
    # One row a partition's width after the oldest row to come, in each
    # partitioned table's default partition: `migrate` then creates every
    # daily partition from that day on, and the load lands in them.
    db_psql -v seed="$(iso $((t0 - 30 * DAY + 300)))" <<'SQL'
INSERT INTO alert_events VALUES ('0000000000000000', :'seed', 'firing', NULL, :'seed');
INSERT INTO notifications VALUES ('seed', 'firing', '', '{}', '{}', '{}', '', 0, NULL, 0, :'seed', 0);
SQL
    migrate
    db_psql -c "DELETE FROM alert_events WHERE fingerprint = '0000000000000000'" \
        -c "DELETE FROM notifications WHERE receiver = 'seed'"

    # Every index of the three tables, as the migrations defined it (a
    # partitioned index is rebuilt on its parent, hence no ONLY).
    db_psql -At >"$work/indexes.sql" <<'SQL'
SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s;', conrelid::regclass, conname,
              pg_get_constraintdef(oid))
FROM pg_constraint WHERE contype = 'p' AND conrelid = 'alerts'::regclass;
SELECT replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ') || ';'
FROM pg_index i
WHERE i.indrelid IN ('alerts'::regclass, 'alert_events'::regclass, 'notifications'::regclass)
  AND NOT i.indisprimary
ORDER BY i.indrelid, i.indexrelid::regclass::text;
SQL
    db_psql -At >"$work/drop.sql" <<'SQL'
SELECT 'ALTER TABLE alerts DROP CONSTRAINT alerts_pkey;';
SELECT format('DROP INDEX %s;', i.indexrelid::regclass)
FROM pg_index i
WHERE i.indrelid IN ('alerts'::regclass, 'alert_events'::regclass, 'notifications'::regclass)
  AND NOT i.indisprimary;
SQL
    db_psql -f "$work/drop.sql"
    log "schema and partitions: $(since_s "$load_started") s; indexes dropped:"
    sed 's/^/    /' "$work/indexes.sql" >&2

    step=$(now_s)
    # Label sets: rank r = 0 is the noisiest. Every label is a function of
    # r, so a fingerprint always has the same labels.
    if [ "$shape" = derived ]; then
        first_cols=", first_status, first_ends_at"
        first_vals=", CASE WHEN e.status = 'firing' OR e.seen < e.ends THEN 'firing' ELSE 'resolved' END, CASE WHEN e.status = 'resolved' AND e.seen >= e.ends THEN e.ends END"
    else
        first_cols="" first_vals=""
    fi
    db_psql -v rows="$rows" -v fps="$FINGERPRINTS" -v t0="$(iso "$t0")" \
        -v first_cols="$first_cols" -v first_vals="$first_vals" <<'SQL'
SET work_mem = '1GB';   -- the label sets' hash table in one batch: rows stay in time order
SET synchronous_commit = off;
SELECT setseed(0.5) \gset
CREATE FUNCTION pg_temp.u(r bigint, salt bigint) RETURNS float8 LANGUAGE sql IMMUTABLE
    AS $$ SELECT (hashint8extended(r, salt) & 2147483647)::float8 / 2147483648 $$;
CREATE TEMP TABLE label_sets AS
WITH s AS (
    SELECT r, floor(200 * pg_temp.u(r, 1) ^ 3)::int AS a, floor(40 * pg_temp.u(r, 2) ^ 2)::int AS n,
           hashint8extended(r, 3) AS h
    FROM generate_series(0, :fps - 1) r
), named AS (
    SELECT r, h, a,
           (ARRAY['Kube','Node','Etcd','Prometheus','Alertmanager','Http','Grpc','Postgres',
                  'Redis','Kafka','Nginx','Disk','Cpu','Memory','Network','Cert','Dns',
                  'Ingress','Job','Volume'])[a % 20 + 1] ||
           (ARRAY['Down','HighLatency','ErrorRate','Saturated','Throttled','RestartLoop',
                  'NotReady','Degraded','Flapping','Exhausted'])[a / 20 + 1] AS alertname,
           (ARRAY['kubelet','node-exporter','kube-state-metrics','apiserver','etcd','prometheus',
                  'alertmanager','blackbox','postgres-exporter','redis-exporter',
                  'kafka-exporter','ingress-nginx'])[a % 12 + 1] AS job,
           CASE WHEN n < 10 THEN (ARRAY['default','kube-system','monitoring','ingress-nginx',
                  'cert-manager','payments','checkout','search','auth','billing'])[n + 1]
                ELSE 'team-' || n END AS namespace,
           CASE WHEN a % 10 < 2 THEN 'critical' WHEN a % 10 < 8 THEN 'warning' ELSE 'info' END
               AS severity,
           format('10.%s.%s.%s:%s', h >> 8 & 255, h >> 16 & 255, h >> 24 & 255, 9100 + a % 12)
               AS instance
    FROM s
)
SELECT r, lpad(to_hex(hashint8extended(r, 0)), 16, '0') AS fingerprint, alertname,
       jsonb_build_object('alertname', alertname, 'job', job, 'instance', instance,
                          'namespace', namespace,
                          'pod', format('%s-%s-%s', job, to_hex(h >> 36 & 1048575), to_hex(h & 65535)),
                          'severity', severity) AS labels,
       format('%s on %s (%s)', alertname, instance, namespace) AS summary,
       'https://runbooks.example/' || lower(alertname) AS runbook_url,
       format('http://prometheus-k8s-0.monitoring:9090/graph?g0.expr=%s&g0.tab=1', alertname)
           AS generator_url,
       CASE severity WHEN 'critical' THEN 'pagerduty' ELSE 'slack' END AS receiver
FROM named;
ANALYZE label_sets;

-- Episodes in time order (x strictly increasing, a diurnal rate), each
-- of a label set drawn with P(r < k) = (k/fps)^(1/1.75) (at 10M rows the
-- noisiest has ~3,700 episodes, the median ~8); durations
-- exponential, mean 10 min, one in ten 20 times longer; first
-- notification 30 s to 5.5 min after startsAt (group_wait, group_interval),
-- the resolution up to 5 min after endsAt. An episode that ended before its
-- first notification is stored resolved at once (one event), as the write
-- path would. With --shape derived the first event is on the row.
INSERT INTO alerts (fingerprint, starts_at, alertname, status, labels, annotations, ends_at,
                    generator_url, receiver, first_seen_at, updated_at :first_cols)
SELECT l.fingerprint, e.starts_at, l.alertname, e.status, l.labels,
       jsonb_build_object('summary', l.summary, 'runbook_url', l.runbook_url,
                          'description', format('Value %s over the threshold for 5m.', e.value)),
       CASE e.status WHEN 'resolved' THEN e.ends END, l.generator_url, l.receiver,
       least(e.seen, :'t0'),
       CASE WHEN e.status = 'firing' THEN least(e.seen, :'t0')
            WHEN e.seen < e.ends THEN least(e.ends + e.resolved_after, :'t0')
            ELSE least(e.seen, :'t0') END
       :first_vals
FROM (
    SELECT r, starts_at, ends, value, starts_at + first_after AS seen, resolved_after,
           CASE WHEN resolve AND ends <= :'t0' THEN 'resolved' ELSE 'firing' END AS status
    FROM (
        SELECT r, starts_at, value, first_after, resolved_after, resolve,
               starts_at + make_interval(secs => duration) AS ends
        FROM (
            SELECT floor(:fps * random() ^ 1.75)::bigint AS r,
                   :'t0'::timestamptz - interval '30 days'
                       + make_interval(secs => 2592000 * (x + 0.5 * sin(60 * pi() * x) / (60 * pi())))
                       AS starts_at,
                   -600 * ln(1 - random()) * CASE WHEN random() < 0.1 THEN 20 ELSE 1 END AS duration,
                   make_interval(secs => 30 + 300 * random()) AS first_after,
                   make_interval(secs => 300 * random()) AS resolved_after,
                   random() < 0.7 AS resolve,
                   round((100 * random())::numeric, 1) AS value
            FROM (SELECT (i - 1 + 0.9 * random()) / :rows AS x FROM generate_series(1, :rows) i) s
        ) g
    ) d
) e
JOIN label_sets l USING (r);
SQL
    log "alerts: $rows episodes in $(since_s "$step") s"

    step=$(now_s)
    db_psql -v rows="$NOTIFICATIONS" -v t0="$(iso "$t0")" \
        -v derived="$([ "$shape" = derived ] && echo true || echo false)" <<'SQL'
SET synchronous_commit = off;
SELECT setseed(0.25) \gset
-- An event when an episode is first stored, and one when it is resolved
-- later (a resolved episode stored at once has only the second). With
-- --shape derived the first is on the alerts row: only the second.
INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at)
SELECT a.fingerprint, a.starts_at, v.status, v.ends_at, v.received_at
FROM alerts a, LATERAL (VALUES
    ('firing', NULL::timestamptz, a.first_seen_at,
     a.status = 'firing' OR a.first_seen_at < a.updated_at),
    ('resolved', a.ends_at, a.updated_at, a.status = 'resolved')) v(status, ends_at, received_at, happened)
WHERE v.happened AND NOT (:derived AND v.received_at = a.first_seen_at);

INSERT INTO notifications (receiver, status, group_key, group_labels, common_labels,
                           common_annotations, external_url, truncated_alerts,
                           notification_reason, alert_count, received_at, request_id)
SELECT CASE WHEN severity = 'critical' THEN 'pagerduty' ELSE 'slack' END, status,
       format('{}/{severity="%s"}:{alertname="%s"}', severity, alertname),
       jsonb_build_object('alertname', alertname),
       jsonb_build_object('alertname', alertname, 'severity', severity),
       jsonb_build_object('summary', alertname || ' is ' || status),
       'http://alertmanager-0.monitoring:9093', 0, NULL, alert_count, received_at, i
FROM (
    SELECT i, 'Alert' || floor(200 * random() ^ 3) AS alertname,
           (ARRAY['critical','warning','warning','info'])[1 + floor(4 * random())::int] AS severity,
           CASE WHEN random() < 0.6 THEN 'firing' ELSE 'resolved' END AS status,
           1 + floor(20 * random() ^ 3)::int AS alert_count,
           :'t0'::timestamptz - interval '30 days'
               + make_interval(secs => 2592000 * (i - 1 + 0.9 * random()) / :rows) AS received_at
    FROM generate_series(1, :rows) i
) n;
SQL
    log "alert_events and $NOTIFICATIONS notifications: $(since_s "$step") s"

    step=$(now_s)
    { echo "SET maintenance_work_mem = '1GB';"; cat "$work/indexes.sql"; } | db_psql
    log "indexes rebuilt: $(since_s "$step") s"
    step=$(now_s)
    db_psql -c 'VACUUM (ANALYZE) alerts' -c 'VACUUM (ANALYZE) alert_events' \
        -c 'VACUUM (ANALYZE) notifications'
    log "VACUUM ANALYZE: $(since_s "$step") s"
    migrate # files any row a default partition caught
    load_s=$(since_s "$load_started")

    # Parameters of the timed requests, chosen from the data.
    common=$(db_psql -Atc "SELECT alertname FROM alerts GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
    rare=$(db_psql -Atc "SELECT alertname FROM alerts GROUP BY 1 ORDER BY count(*), 1 LIMIT 1")
    namespace=$(db_psql -Atc "SELECT labels->>'namespace' FROM alerts
        WHERE starts_at >= '$(iso $((t0 - DAY)))' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
    flapping=$(db_psql -Atc "SELECT lpad(to_hex(hashint8extended(0, 0)), 16, '0')")
    record="history-10m rows=$rows shape=$shape t0=$t0 load_s=$load_s common=$common rare=$rare namespace=$namespace flapping=$flapping"
    pg_root_psql -c "COMMENT ON DATABASE $DB IS '$record'"
    echo "loaded $rows episodes in $load_s s ($record)"
fi

echo
echo "sizes (T = $(iso "$(record_value t0)"), load took $(record_value load_s) s):"
db_psql -P footer=off <<'SQL'
SELECT t.name AS "table", to_char(t.n, 'FM999,999,999') AS "rows",
       pg_size_pretty(t.heap) AS heap, pg_size_pretty(t.indexes) AS indexes,
       pg_size_pretty(t.heap + t.indexes) AS total
FROM (
    SELECT 'alerts' AS name, (SELECT count(*) FROM alerts) AS n,
           pg_table_size('alerts') AS heap, pg_indexes_size('alerts') AS indexes
    UNION ALL
    SELECT 'alert_events', (SELECT count(*) FROM alert_events),
           sum(pg_table_size(relid)), sum(pg_indexes_size(relid))
    FROM pg_partition_tree('alert_events') WHERE isleaf
    UNION ALL
    SELECT 'notifications', (SELECT count(*) FROM notifications),
           sum(pg_table_size(relid)), sum(pg_indexes_size(relid))
    FROM pg_partition_tree('notifications') WHERE isleaf
) t;
SELECT i.indexrelid::regclass AS "alerts index", pg_size_pretty(pg_relation_size(i.indexrelid)) AS size
FROM pg_index i WHERE i.indrelid = 'alerts'::regclass ORDER BY 1;
SELECT (SELECT count(*) FROM alert_events_default) AS "alert_events in default partition",
       (SELECT count(*) FROM notifications_default) AS "notifications in default partition",
       pg_size_pretty(pg_database_size(current_database())) AS database;
SQL

# ---------------------------------------------------------------- 2. timings
t0=$(record_value t0)
if [ "$stale_hours" != 0 ]; then
    stale=true
    step=$(now_s)
    db_psql -c BEGIN -c "UPDATE alerts SET updated_at = updated_at
                         WHERE starts_at >= '$(iso $((t0 - stale_hours * 3600)))'" \
        -c ROLLBACK -c 'ANALYZE alerts'
    log "last $stale_hours hours left unvacuumed: $(since_s "$step") s"
fi
common=$(record_value common) rare=$(record_value rare)
namespace=$(record_value namespace) flapping=$(record_value flapping)
history_url=$DB_URL
if $standby; then
    ensure_standby >&2
    step=$(now_s)
    standby_caught_up 1800
    log "standby caught up: $(since_s "$step") s"
    history_url=postgres://root@$PG_HOST:$STANDBY_PORT/$DB
fi
port=$(free_port)
base=http://127.0.0.1:$port
ALERT_INGEST_DATABASE_URL=$DB_URL ALERT_INGEST_HISTORY_DATABASE_URL=$history_url \
    "$bin" --config "$work/config.yaml" --listen "127.0.0.1:$port" 2>"$work/service.log" &
svc=$!
for _ in $(seq 600); do curl -fs -o /dev/null "$base/readyz" && break; sleep 0.1; done
curl -fs -o /dev/null "$base/readyz" || { cat "$work/service.log" >&2; exit 1; }

# time_request LABEL PATH: one warm-up, then $runs timed; one table row.
time_request() {
    local label=$1 path=$2 out code="" times=() items i
    curl -s -o /dev/null --max-time 900 "$base$path" || true
    for ((i = 0; i < runs; i++)); do
        out=$(curl -s -o "$work/body" -w '%{http_code} %{time_total}' --max-time 900 "$base$path" || true)
        code=${out% *}
        times+=("${out#* }")
    done
    items=-
    if [ "$code" = 200 ]; then items=$(jq '.items | length' "$work/body"); fi
    printf '%s\n' "${times[@]}" | sort -g | awk -v label="$label" -v code="$code" -v items="$items" '
        { t[NR] = $1 * 1000 }
        END {
            median = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
            printf "%-66s %4s %6s %10.1f %10.1f %10.1f\n", label, code, items, median, t[1], t[NR]
        }'
    echo "$label: GET $path" >>"$work/requests"
}

# The cursor after following next_cursor N times from the first page.
cursor_after() {
    local cursor="" n
    for ((n = 0; n < $1; n++)); do
        cursor=$(curl -fs "$base/api/v1/alerts${cursor:+?cursor=$cursor}" | jq -r .next_cursor)
    done
    echo "$cursor"
}

day_ago=$(iso $((t0 - DAY))) week_ago=$(iso $((t0 - 7 * DAY))) month_ago=$(iso $((t0 - 30 * DAY)))
echo
echo "history requests at $rows episodes; T = $(iso "$t0"); history.statement_timeout $timeout;" \
    "last $stale_hours hours unvacuumed; 1 warm-up + $runs runs each; ms;" \
    "read from $(if $standby; then echo the standby; else echo the primary; fi)"
printf '%-66s %4s %6s %10s %10s %10s\n' request code items median min max
time_request "/api/v1/alerts" "/api/v1/alerts"
time_request "/api/v1/alerts?status=firing" "/api/v1/alerts?status=firing"
time_request "/api/v1/alerts?alertname=$common (common)" "/api/v1/alerts?alertname=$common"
time_request "/api/v1/alerts?alertname=$rare (rare)" "/api/v1/alerts?alertname=$rare"
time_request "/api/v1/alerts?label=namespace=$namespace&label=severity=critical" \
    "/api/v1/alerts?label=namespace%3D$namespace&label=severity%3Dcritical"
time_request "/api/v1/alerts?since=T-3d&until=T-2d" \
    "/api/v1/alerts?since=$(iso $((t0 - 3 * DAY)))&until=$(iso $((t0 - 2 * DAY)))"
time_request "/api/v1/alerts?active_at=T-12h" "/api/v1/alerts?active_at=$(iso $((t0 - DAY / 2)))"
time_request "/api/v1/alerts?cursor=<after 10 pages>" "/api/v1/alerts?cursor=$(cursor_after 10)"
time_request "/api/v1/alerts/$flapping (flaps most)" "/api/v1/alerts/$flapping"
time_request "/api/v1/stats/top?since=T-24h" "/api/v1/stats/top?since=$day_ago"
time_request "/api/v1/stats/top?since=T-30d" "/api/v1/stats/top?since=$month_ago"
time_request "/api/v1/stats/top?by=label:namespace&since=T-24h" \
    "/api/v1/stats/top?by=label:namespace&since=$day_ago"
time_request "/api/v1/stats/top?by=label:namespace&since=T-30d" \
    "/api/v1/stats/top?by=label:namespace&since=$month_ago"
time_request "/api/v1/stats/flapping?since=T-24h" "/api/v1/stats/flapping?since=$day_ago"
time_request "/api/v1/stats/flapping?since=T-7d" "/api/v1/stats/flapping?since=$week_ago"
time_request "/api/v1/stats/flapping?since=T-30d" "/api/v1/stats/flapping?since=$month_ago"
time_request "/api/v1/stats/durations?since=T-24h" "/api/v1/stats/durations?since=$day_ago"
time_request "/api/v1/stats/durations?since=T-30d" "/api/v1/stats/durations?since=$month_ago"
# What the history page (src/page/) asks: the timeline's pages of 1000
# (those started in the window, then those firing at its start), the
# noisy and flapping tables with 48-point sparklines, with and without a
# label filter, and an episode's notifications.
hour_ago=$(iso $((t0 - DAY / 24)))
time_request "page: /api/v1/alerts?since=T-1h&limit=1000" "/api/v1/alerts?since=$hour_ago&limit=1000"
time_request "page: /api/v1/alerts?since=T-24h&limit=1000" "/api/v1/alerts?since=$day_ago&limit=1000"
time_request "page: /api/v1/alerts?active_at=T-24h&limit=1000" \
    "/api/v1/alerts?active_at=$day_ago&limit=1000"
for window in "T-24h $day_ago" "T-7d $week_ago" "T-30d $month_ago"; do
    read -r name since <<<"$window"
    time_request "page: /api/v1/stats/top?since=$name&limit=20&buckets=48" \
        "/api/v1/stats/top?since=$since&limit=20&buckets=48"
    time_request "page: /api/v1/stats/flapping?since=$name&limit=20&buckets=48" \
        "/api/v1/stats/flapping?since=$since&limit=20&buckets=48"
done
time_request "page: /api/v1/stats/top?since=T-30d&label=namespace=$namespace&buckets=48" \
    "/api/v1/stats/top?since=$month_ago&label=namespace%3D$namespace&limit=20&buckets=48"
time_request "page: /api/v1/stats/flapping?since=T-30d&label=namespace=$namespace&buckets=48" \
    "/api/v1/stats/flapping?since=$month_ago&label=namespace%3D$namespace&limit=20&buckets=48"
latest=$(curl -fs "$base/api/v1/alerts/$flapping?limit=1" | jq -r '.items[0].starts_at // empty') || true
if [ -n "$latest" ]; then
    time_request "page: /api/v1/alerts/$flapping/notifications?starts_at=<latest>" \
        "/api/v1/alerts/$flapping/notifications?starts_at=$(jq -rn --arg t "$latest" '$t|@uri')"
fi
kill -TERM "$svc"
wait "$svc" || log "service exited with $? (see its log below)"
svc=""
grep -v '^\s*$' "$work/service.log" | tail -n 5 >&2 || true

# ---------------------------------------------------------------- 3. plans
# The statements of src/history/sql.rs with the same parameters.
explain() {
    local name=$1 params=$2 args=$3 body=$4
    {
        echo "==== $name"
        db_psql -P pager=off <<SQL
PREPARE q($params) AS $body;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE q($args);
SQL
    } >>"$explain_log" 2>&1
}
TOP="SELECT jsonb_build_object('value', value, 'episodes', episodes)::text FROM (
     SELECT alertname AS value, count(*) AS episodes FROM alerts WHERE true AND starts_at >= \$1
     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT \$2) t ORDER BY episodes DESC, value"
TOP_LABEL="SELECT jsonb_build_object('value', value, 'episodes', episodes)::text FROM (
     SELECT labels ->> \$1 AS value, count(*) AS episodes FROM alerts WHERE true
     AND labels ->> \$1 IS NOT NULL AND starts_at >= \$2
     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT \$3) t ORDER BY episodes DESC, value"
FLAPPING="WITH top AS (
     SELECT fingerprint, count(*) AS episodes, max(starts_at) AS last_starts_at
     FROM alerts WHERE true AND starts_at >= \$1
     GROUP BY fingerprint HAVING count(*) > 1
     ORDER BY episodes DESC, fingerprint LIMIT \$2)
     SELECT jsonb_build_object('fingerprint', t.fingerprint, 'episodes', t.episodes,
                               'alertname', a.alertname, 'labels', a.labels,
                               'last_starts_at', t.last_starts_at)::text
     FROM top t JOIN alerts a ON a.fingerprint = t.fingerprint AND a.starts_at = t.last_starts_at
     ORDER BY t.episodes DESC, t.fingerprint"
# /api/v1/alerts: the page's rows (LIST ... ORDER BY ... LIMIT), then their JSON.
LIST="SELECT * FROM alerts a WHERE true"
list() {
    echo "SELECT a.starts_at, a.fingerprint, jsonb_build_object(
     'fingerprint', a.fingerprint, 'alertname', a.alertname, 'status', a.status,
     'labels', a.labels, 'annotations', a.annotations, 'starts_at', a.starts_at,
     'ends_at', a.ends_at, 'generator_url', a.generator_url, 'receiver', a.receiver,
     'first_seen_at', a.first_seen_at, 'updated_at', a.updated_at)::text FROM ($1) a
     ORDER BY a.starts_at DESC, a.fingerprint DESC"
}
echo "history-10m plans, T = $(iso "$t0"), $rows episodes, last $stale_hours hours unvacuumed," \
    "$(date -u +%FT%TZ)" >"$explain_log"
explain "stats/top?since=T-24h" "timestamptz, bigint" "'$day_ago', 10" "$TOP"
explain "stats/top?since=T-30d" "timestamptz, bigint" "'$month_ago', 10" "$TOP"
explain "stats/top?by=label:namespace&since=T-24h" "text, timestamptz, bigint" \
    "'namespace', '$day_ago', 10" "$TOP_LABEL"
explain "stats/top?by=label:namespace&since=T-30d" "text, timestamptz, bigint" \
    "'namespace', '$month_ago', 10" "$TOP_LABEL"
explain "stats/flapping?since=T-24h" "timestamptz, bigint" "'$day_ago', 10" "$FLAPPING"
explain "stats/flapping?since=T-7d" "timestamptz, bigint" "'$week_ago', 10" "$FLAPPING"
explain "stats/flapping?since=T-30d" "timestamptz, bigint" "'$month_ago', 10" "$FLAPPING"
explain "alerts?label=namespace=$namespace&label=severity=critical" "text, bigint" \
    "'{\"namespace\":\"$namespace\",\"severity\":\"critical\"}', 101" \
    "$(list "$LIST AND a.labels @> \$1::text::jsonb ORDER BY a.starts_at DESC, a.fingerprint DESC LIMIT \$2")"
explain "alerts?alertname=$rare" "text, bigint" "'$rare', 101" \
    "$(list "$LIST AND a.alertname = \$1 ORDER BY a.starts_at DESC, a.fingerprint DESC LIMIT \$2")"
explain "alerts?active_at=T-12h" "timestamptz, bigint" "'$(iso $((t0 - DAY / 2)))', 101" \
    "$(list "$LIST AND a.starts_at <= \$1 AND (a.ends_at IS NULL OR a.ends_at > \$1)
     ORDER BY a.starts_at DESC, a.fingerprint DESC LIMIT \$2")"
cat "$work/requests" >>"$explain_log"

echo
echo "plans (EXPLAIN ANALYZE, BUFFERS in full: $explain_log):"
awk '
    /^==== / { if (name != "") print name ": " nodes; name = substr($0, 6); nodes = ""; next }
    /actual time=/ {
        node = $0; sub(/^ *(->)? */, "", node); sub(/  \(cost=.*/, "", node)
        nodes = nodes (nodes == "" ? "" : " > ") node
    }
    /Execution Time:/ { nodes = nodes " [" $3 " ms]" }
    END { if (name != "") print name ": " nodes }' "$explain_log"
