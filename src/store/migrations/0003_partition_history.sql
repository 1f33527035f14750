-- alert_events and notifications grow with every change and every request:
-- they become partitioned by received_at, so that retention drops whole
-- partitions instead of deleting rows. This migration makes the parents and
-- a DEFAULT partition, the net that catches any row no partition covers (a
-- write never fails for want of a partition), and moves the existing rows
-- into it. The service then creates the time partitions (retention.
-- partition_days wide, retention.premake ahead) and moves rows out of the
-- default into them (see store/partitions.rs).

-- A daily partition of `parent` for each UTC day with rows in `source`,
-- named as the service names them (alert_events_p20261124).
CREATE FUNCTION pg_temp.day_partitions(parent text, source text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    day date;
BEGIN
    FOR day IN EXECUTE format(
        'SELECT DISTINCT (received_at AT TIME ZONE ''UTC'')::date FROM %I', source)
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       parent || '_p' || to_char(day, 'YYYYMMDD'), parent,
                       day::timestamp AT TIME ZONE 'UTC',
                       (day + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$;

ALTER TABLE alert_events RENAME TO alert_events_unpartitioned;
CREATE TABLE alert_events (
    fingerprint text        NOT NULL,
    starts_at   timestamptz NOT NULL,
    status      text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    ends_at     timestamptz,
    received_at timestamptz NOT NULL
) PARTITION BY RANGE (received_at);
CREATE TABLE alert_events_default PARTITION OF alert_events DEFAULT;
SELECT pg_temp.day_partitions('alert_events', 'alert_events_unpartitioned');
INSERT INTO alert_events SELECT fingerprint, starts_at, status, ends_at, received_at
    FROM alert_events_unpartitioned;
DROP TABLE alert_events_unpartitioned;
CREATE INDEX alert_events_episode_idx ON alert_events (fingerprint, starts_at, received_at);

ALTER TABLE notifications RENAME TO notifications_unpartitioned;
CREATE TABLE notifications (
    receiver            text        NOT NULL,
    status              text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    group_key           text        NOT NULL,
    group_labels        jsonb       NOT NULL,
    common_labels       jsonb       NOT NULL,
    common_annotations  jsonb       NOT NULL,
    external_url        text        NOT NULL,
    truncated_alerts    bigint      NOT NULL,
    notification_reason text,
    alert_count         integer     NOT NULL,
    received_at         timestamptz NOT NULL,
    request_id          bigint
) PARTITION BY RANGE (received_at);
CREATE TABLE notifications_default PARTITION OF notifications DEFAULT;
SELECT pg_temp.day_partitions('notifications', 'notifications_unpartitioned');
INSERT INTO notifications SELECT receiver, status, group_key, group_labels, common_labels,
        common_annotations, external_url, truncated_alerts, notification_reason,
        alert_count, received_at, request_id
    FROM notifications_unpartitioned;
DROP TABLE notifications_unpartitioned;
-- The key of a notification (see 0002); it includes the partition key, as
-- a unique index on a partitioned table must.
CREATE UNIQUE INDEX notifications_received_at_request_idx
    ON notifications (received_at DESC, request_id);
