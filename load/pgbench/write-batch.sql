-- One batch as the workers first write it (the statement in
-- src/store/mod.rs, WRITE_BATCH), with :rows one-alert requests generated in place of the
-- bound arrays. Run by load/pgbench.sh against the service's own migrations.
--   :episodes = 0 (unique): every alert a new episode: :rows alerts and
--     :rows notifications (a new episode's creation event is its alerts
--     row, no alert_events row).
--   :episodes = N (repeat): unchanged re-sends of N stored episodes drawn
--     at random (distinct within a batch): the upsert changes no row, each
--     request adds its notification. :fill = 1 stores episodes 1..:rows
--     instead (load/pgbench.sh runs it once with psql before a repeat run).
WITH gen AS (
    SELECT DISTINCT ON (h) i, h FROM (
        SELECT i, CASE WHEN :episodes = 0 THEN md5(random()::text || i::text)
                       WHEN :fill = 1 THEN md5(i::text)
                       ELSE md5(((random() * (:episodes - 1))::int + 1)::text) END AS h
        FROM generate_series(1, :rows) AS i) r
), input AS (
    SELECT substr(h, 1, 16) AS fingerprint,
           CASE WHEN :episodes = 0 THEN now() - make_interval(secs => i)
                ELSE timestamptz '2026-12-01 00:00Z' END AS starts_at,
           'HighLatency'::text AS alertname, 'firing'::text AS status,
           '{"alertname":"HighLatency","instance":"' || substr(h, 1, 16)
               || ':9100","job":"api","namespace":"prod","pod":"api-' || substr(h, 17, 8)
               || '","severity":"page"}' AS labels,
           '{"summary":"p99 latency above 5 ms","description":"API p99 latency has been above target for 5 minutes."}'::text AS annotations,
           NULL::timestamptz AS ends_at, 'http://prometheus:9090/graph?g0.expr=up'::text AS generator_url,
           'webhook'::text AS receiver, now() AS received_at
    FROM gen
    ORDER BY fingerprint, starts_at
), changed AS (
    INSERT INTO alerts AS a (fingerprint, starts_at, alertname, status, labels, annotations,
                             ends_at, generator_url, receiver, first_seen_at, updated_at,
                             first_status, first_ends_at)
    SELECT fingerprint, starts_at, alertname, status, labels::jsonb, annotations::jsonb,
           ends_at, generator_url, receiver, received_at, received_at, status, ends_at
    FROM input
    ON CONFLICT (fingerprint, starts_at) DO UPDATE
    SET alertname = EXCLUDED.alertname, status = EXCLUDED.status, labels = EXCLUDED.labels,
        annotations = EXCLUDED.annotations, ends_at = EXCLUDED.ends_at,
        generator_url = EXCLUDED.generator_url, receiver = EXCLUDED.receiver,
        updated_at = EXCLUDED.updated_at
    WHERE (a.status, a.ends_at, a.annotations)
          IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.ends_at, EXCLUDED.annotations)
    -- xmax is 0 in a row version this statement inserted, and the
    -- updating transaction's id in one it updated.
    RETURNING a.fingerprint, a.starts_at, a.status, a.ends_at, a.updated_at,
              a.xmax = 0 AS inserted
), events AS (
    -- Changes only: an inserted episode's creation event is its row
    -- (first_status, first_ends_at, first_seen_at; see alert_timeline).
    INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at)
    SELECT fingerprint, starts_at, status, ends_at, updated_at FROM changed WHERE NOT inserted
), notified AS (
    INSERT INTO notifications (receiver, status, group_key, group_labels, common_labels,
                               common_annotations, external_url, truncated_alerts,
                               notification_reason, alert_count, received_at, request_id)
    SELECT receiver, status, '{}:{alertname="HighLatency"}', '{"alertname":"HighLatency"}'::jsonb,
           labels::jsonb, annotations::jsonb, 'http://alertmanager:9093', 0, NULL, 1, received_at,
           (random() * 9e18)::bigint
    FROM input
)
SELECT count(*) FROM changed;
