-- One batch as the workers first write it (the statement in
-- src/store/mod.rs, WRITE_BATCH), with :rows one-alert requests generated in place of the
-- bound arrays. Run by load/pgbench.sh against the service's own migrations.
--   :episodes = 0 (unique): every alert a new episode: :rows alerts and
--     :rows notifications (a new episode's creation event is its alerts
--     row, no alert_events row).
--   :episodes = N (repeat): unchanged re-sends of N stored episodes drawn
--     at random (distinct within a batch): each moves its row's version
--     only (:cached = 1: through `touched`, else the upsert), each request
--     adds its notification. :fill = 1 stores episodes 1..:rows
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
           'webhook'::text AS receiver, now() AS received_at,
           -- :cached = 1: the version the row holds, as an instance whose
           -- cache stored it would send (the cache's path); else none.
           CASE WHEN :cached = 1 THEN (
               SELECT v.version_at FROM alerts AS v
               WHERE v.fingerprint = substr(h, 1, 16)
                 AND v.starts_at = timestamptz '2026-12-01 00:00Z') END AS cached_version
    FROM gen
    ORDER BY fingerprint, starts_at
), touched AS (
    UPDATE alerts AS a SET version_at = i.received_at
    FROM input AS i
    WHERE i.cached_version IS NOT NULL
      AND a.fingerprint = i.fingerprint AND a.starts_at = i.starts_at
      AND a.version_at = i.cached_version AND a.version_at < i.received_at
    RETURNING a.fingerprint, a.starts_at
), stored AS (
    INSERT INTO alerts AS a (fingerprint, starts_at, alertname, status, labels, annotations,
                             ends_at, generator_url, receiver, first_seen_at, updated_at,
                             version_at, first_status, first_ends_at)
    SELECT fingerprint, starts_at, alertname, status, labels::jsonb, annotations::jsonb,
           ends_at, generator_url, receiver, received_at, received_at, received_at, status,
           ends_at
    FROM input AS i
    WHERE NOT EXISTS (SELECT FROM touched AS t
                      WHERE t.fingerprint = i.fingerprint AND t.starts_at = i.starts_at)
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
), unapplied AS MATERIALIZED (
    -- Usually none: alerts whose row holds a later (or this very) version.
    SELECT * FROM input AS i
    WHERE NOT EXISTS (SELECT FROM stored AS s
                      WHERE s.fingerprint = i.fingerprint AND s.starts_at = i.starts_at)
      AND NOT EXISTS (SELECT FROM touched AS t
                      WHERE t.fingerprint = i.fingerprint AND t.starts_at = i.starts_at)
), raced AS (
    -- An alert the upsert found a later version of that the snapshot does
    -- not show: written by another writer since. Fails the statement, to be
    -- written again with a fresh snapshot (see alert_ingest_retry).
    SELECT alert_ingest_retry('an episode of the batch was written concurrently; retrying')
    FROM unapplied AS u
    LEFT JOIN alerts AS a USING (fingerprint, starts_at)
    WHERE a.fingerprint IS NULL OR u.received_at > COALESCE(a.version_at, a.updated_at)
), placed AS (
    -- A late delivery (received before the version its row holds) among
    -- the runs of the timeline: `p`, the entry that starts the run at or
    -- before it; `n`, the entry after it (`derived`: the creation, read
    -- from the row); `p_until`, the last delivery known of p's run (n's
    -- `previous_until`, or the row's version when p is the last entry).
    SELECT u.fingerprint, u.starts_at, u.status, u.ends_at, u.received_at,
           p.status AS p_status, p.ends_at AS p_ends_at, p.received_at AS p_at,
           n.status AS n_status, n.ends_at AS n_ends_at, n.received_at AS n_at,
           n.previous_until AS n_until, n.derived AS n_derived,
           CASE WHEN n.received_at IS NULL THEN COALESCE(a.version_at, a.updated_at)
                ELSE COALESCE(n.previous_until, p.received_at) END AS p_until,
           (u.status, u.ends_at) IS NOT DISTINCT FROM (p.status, p.ends_at) AS same_as_p,
           (u.status, u.ends_at) IS NOT DISTINCT FROM (n.status, n.ends_at) AS same_as_n
    FROM unapplied AS u
    JOIN alerts AS a USING (fingerprint, starts_at)
    LEFT JOIN LATERAL (
        SELECT t.status, t.ends_at, t.received_at FROM alert_timeline AS t
        WHERE t.fingerprint = u.fingerprint AND t.starts_at = u.starts_at
          AND t.received_at <= u.received_at
        ORDER BY t.received_at DESC LIMIT 1) AS p ON true
    LEFT JOIN LATERAL (
        SELECT * FROM (
            SELECT a.first_status AS status, a.first_ends_at AS ends_at,
                   a.first_seen_at AS received_at, NULL::timestamptz AS previous_until,
                   true AS derived
            WHERE a.first_status IS NOT NULL
            UNION ALL
            SELECT e.status, e.ends_at, e.received_at, e.previous_until, false
            FROM alert_events AS e
            WHERE e.fingerprint = u.fingerprint AND e.starts_at = u.starts_at) AS t
        WHERE t.received_at > u.received_at
        ORDER BY t.received_at LIMIT 1) AS n ON true
    WHERE u.received_at < COALESCE(a.version_at, a.updated_at)
), late AS (
    -- What each late delivery does: `split` p's run (it falls inside it),
    -- `gap` (after p's run: a run of its own, or the start of n's run if
    -- in n's state), `creation` (before the episode's creation: it becomes
    -- the creation), `extends` p's run, or nothing (in p's state).
    SELECT *, CASE
        WHEN p_at IS NULL AND n_derived THEN 'creation'
        WHEN same_as_p THEN CASE WHEN n_at IS NOT NULL AND NOT n_derived
                                      AND received_at > COALESCE(n_until, p_at)
                                 THEN 'extends' ELSE 'none' END
        WHEN received_at < p_until THEN 'split'
        ELSE 'gap' END AS placement
    FROM placed
), late_events AS (
    INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at,
                              previous_until)
    -- The late delivery starts a run.
    SELECT fingerprint, starts_at, status, ends_at, received_at,
           CASE placement WHEN 'split' THEN p_at
                          WHEN 'gap' THEN CASE WHEN same_as_n THEN n_until ELSE p_until END
           END
    FROM late WHERE placement IN ('split', 'gap')
    UNION ALL
    -- p's state comes back after it, last delivered at p_until.
    SELECT fingerprint, starts_at, p_status, p_ends_at, p_until, received_at
    FROM late WHERE placement = 'split'
    UNION ALL
    -- The creation in another state becomes the change after it.
    SELECT fingerprint, starts_at, n_status, n_ends_at, n_at, received_at
    FROM late WHERE placement = 'creation' AND NOT same_as_n
), late_until AS (
    -- The run before n now ends with the late delivery.
    UPDATE alert_events AS e SET previous_until = l.received_at
    FROM late AS l
    WHERE (l.placement = 'extends' OR (l.placement = 'gap' AND NOT l.same_as_n))
      AND e.fingerprint = l.fingerprint AND e.starts_at = l.starts_at AND e.received_at = l.n_at
), late_joined AS (
    -- n's run now starts with the late delivery.
    DELETE FROM alert_events AS e USING late AS l
    WHERE l.placement = 'gap' AND l.same_as_n
      AND e.fingerprint = l.fingerprint AND e.starts_at = l.starts_at AND e.received_at = l.n_at
), late_created AS (
    -- The episode was first delivered earlier than first stored. (Its
    -- row is locked by `stored`, which left it unchanged.)
    UPDATE alerts AS a
    SET first_status = l.status, first_ends_at = l.ends_at, first_seen_at = l.received_at
    FROM late AS l
    WHERE l.placement = 'creation'
      AND a.fingerprint = l.fingerprint AND a.starts_at = l.starts_at
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
