-- One batch as the workers first write it (the statement in
-- src/store/mod.rs, WRITE_BATCH), with :rows new one-alert requests generated in place of the
-- bound arrays: :rows alerts and :rows notifications (new episodes: their
-- creation events are their alerts rows, no alert_events row). Run by
-- load/pgbench.sh against the service's own migrations.
WITH gen AS (
    SELECT i, md5(random()::text || i::text) AS h FROM generate_series(1, :rows) AS i
), input AS (
    SELECT substr(h, 1, 16) AS fingerprint, now() - make_interval(secs => i) AS starts_at,
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
