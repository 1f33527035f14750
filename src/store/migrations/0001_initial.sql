-- One row per alert episode: a label set (fingerprint) firing from startsAt.
CREATE TABLE alerts (
    fingerprint   text        NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{16}$'),
    starts_at     timestamptz NOT NULL,
    alertname     text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    labels        jsonb       NOT NULL,
    annotations   jsonb       NOT NULL,
    ends_at       timestamptz,
    generator_url text        NOT NULL,
    receiver      text        NOT NULL,
    first_seen_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (fingerprint, starts_at)
);
CREATE INDEX alerts_starts_at_idx ON alerts (starts_at DESC);
CREATE INDEX alerts_alertname_starts_at_idx ON alerts (alertname, starts_at DESC);
CREATE INDEX alerts_labels_idx ON alerts USING gin (labels jsonb_path_ops);

-- Append-only history: a row when an episode is first stored and each time
-- its status, ends_at or annotations change. An identical repeat adds none.
CREATE TABLE alert_events (
    fingerprint text        NOT NULL,
    starts_at   timestamptz NOT NULL,
    status      text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    ends_at     timestamptz,
    received_at timestamptz NOT NULL
);
CREATE INDEX alert_events_episode_idx ON alert_events (fingerprint, starts_at, received_at);

-- One row per accepted webhook request.
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
    received_at         timestamptz NOT NULL
);
CREATE INDEX notifications_received_at_idx ON notifications (received_at DESC);
