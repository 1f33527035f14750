-- One batch as the workers first write it (the statement in
-- src/store/mod.rs, WRITE_BATCH), with :rows one-alert requests generated in place of the
-- bound arrays. Run by load/pgbench.sh against the service's own migrations.
--   :episodes = 0 (unique): every alert a new episode: :rows alerts and
--     :rows notifications (a new episode's creation event is its alerts
--     row, no alert_events row).
--   :episodes = N (repeat): unchanged re-sends of N stored episodes drawn
--     at random (distinct within a batch): each moves its row's version
--     only (issue #14), each request adds its notification. :fill = 1 stores episodes 1..:rows
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
), stored AS (
    INSERT INTO alerts AS a (fingerprint, starts_at, alertname, status, labels, annotations,
                             ends_at, generator_url, receiver, first_seen_at, updated_at,
                             version_at, first_status, first_ends_at)
    SELECT fingerprint, starts_at, alertname, status, labels::jsonb, annotations::jsonb,
           ends_at, generator_url, receiver, received_at, received_at, received_at, status,
           ends_at
    FROM input
    ON CONFLICT (fingerprint, starts_at) DO UPDATE
    SET alertname = EXCLUDED.alertname, status = EXCLUDED.status, labels = EXCLUDED.labels,
        annotations = EXCLUDED.annotations, ends_at = EXCLUDED.ends_at,
        generator_url = EXCLUDED.generator_url, receiver = EXCLUDED.receiver,
        updated_at = CASE WHEN (a.status, a.ends_at, a.annotations)
                               IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.ends_at,
                                                 EXCLUDED.annotations)
                          THEN EXCLUDED.updated_at ELSE a.updated_at END,
        previous_until = CASE WHEN (a.status, a.ends_at, a.annotations)
                                   IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.ends_at,
                                                     EXCLUDED.annotations)
                              THEN COALESCE(a.version_at, a.updated_at)
                              ELSE a.previous_until END,
        version_at = EXCLUDED.version_at
    -- A row stored before migration 8 has no version: its last change's.
    WHERE EXCLUDED.version_at > COALESCE(a.version_at, a.updated_at)
    -- xmax is 0 in a row version this statement inserted, and the
    -- updating transaction's id in one it updated. A change sets both
    -- times to the delivery's receipt; an unchanged repeat only the version.
    RETURNING a.fingerprint, a.starts_at, a.status, a.ends_at, a.updated_at,
              a.previous_until, a.xmax = 0 AS inserted, a.updated_at = a.version_at AS changed
), events AS (
    -- Changes only: an inserted episode's creation event is its row
    -- (first_status, first_ends_at, first_seen_at; see alert_timeline).
    INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at,
                              previous_until)
    SELECT fingerprint, starts_at, status, ends_at, updated_at, previous_until FROM stored
    WHERE changed AND NOT inserted
), late AS (
    -- Alerts whose row holds a later (or this very) version: a delivery
    -- loaded late, or the second copy of an HA pair's notification.
    SELECT alert_ingest_place_late(fingerprint, starts_at, status, ends_at, received_at)
        AS placed
    FROM input AS i
    WHERE NOT EXISTS (SELECT FROM stored AS s
                      WHERE s.fingerprint = i.fingerprint AND s.starts_at = i.starts_at)
), notified AS (
    INSERT INTO notifications (receiver, status, group_key, group_labels, common_labels,
                               common_annotations, external_url, truncated_alerts,
                               notification_reason, alert_count, received_at, request_id)
    SELECT receiver, status, '{}:{alertname="HighLatency"}', '{"alertname":"HighLatency"}'::jsonb,
           labels::jsonb, annotations::jsonb, 'http://alertmanager:9093', 0, NULL, 1, received_at,
           (random() * 9e18)::bigint
    FROM input
)
SELECT count(*) FROM stored;
