-- alert_events and notifications grow with every change and every request:
-- they become partitioned by received_at, so that retention drops whole
-- partitions instead of deleting rows. Each gets a DEFAULT partition, the
-- net that catches any row no partition covers (a write never fails for want
-- of a partition), and a daily partition for each day of its existing rows.
-- The service then creates the partitions of today and ahead
-- (retention.partition_days wide, retention.premake ahead; see
-- store/partitions.rs) before it is ready.

-- Makes `tbl` partitioned by received_at, its columns and CHECKs unchanged
-- (LIKE), with a DEFAULT partition and a daily partition for each UTC day
-- its rows were received on (named as the service names them,
-- alert_events_p20261124), and copies the rows straight into those.
-- Indexes are made afterwards, on the partitioned table.
CREATE FUNCTION pg_temp.partition_by_day(tbl text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old text := tbl || '_unpartitioned';
    day date;
BEGIN
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, old);
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
                    PARTITION BY RANGE (received_at)', tbl, old);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', tbl || '_default', tbl);
    FOR day IN EXECUTE format(
        'SELECT DISTINCT (received_at AT TIME ZONE ''UTC'')::date FROM %I', old)
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       tbl || '_p' || to_char(day, 'YYYYMMDD'), tbl,
                       day::timestamp AT TIME ZONE 'UTC',
                       (day + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', tbl, old);
    EXECUTE format('DROP TABLE %I', old);
END $$;

SELECT pg_temp.partition_by_day('alert_events');
CREATE INDEX alert_events_episode_idx ON alert_events (fingerprint, starts_at, received_at);

SELECT pg_temp.partition_by_day('notifications');
-- The key of a notification (see 0002); it includes the partition key, as
-- a unique index on a partitioned table must.
CREATE UNIQUE INDEX notifications_received_at_request_idx
    ON notifications (received_at DESC, request_id);
