-- durability: spool (issue #12). Each spool (a directory of segment files
-- on one instance, named by a random id) records how far it has been
-- loaded: the segment and byte offset of the next record to load. The
-- loader writes it in the same transaction as the rows of the records
-- before it (as Kafka Connect commits source offsets with the data), so a
-- crash between the two can neither lose nor repeat a record.
CREATE TABLE spool_positions (
    spool_id      text        PRIMARY KEY,
    segment       bigint      NOT NULL,
    record_offset bigint      NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- A spooled request PostgreSQL refused when it was loaded (whatever the
-- parser could not foresee: a constraint added by an operator, say). It was
-- acknowledged, so it is kept here whole, with the reason, and never
-- silently dropped; the records behind it are loaded. Keyed like its
-- notification would have been, so loading it twice keeps one row.
CREATE TABLE rejected_notifications (
    received_at   timestamptz NOT NULL,
    request_id    bigint      NOT NULL,
    spool_id      text        NOT NULL,
    segment       bigint      NOT NULL,
    record_offset bigint      NOT NULL,
    -- The SQLSTATE of the refusal; NULL when the body itself no longer
    -- parses (a newer version's parser refusing what an older one took).
    sqlstate      text,
    message       text        NOT NULL,
    -- The request body as received, byte for byte.
    body          bytea       NOT NULL,
    rejected_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (received_at, request_id)
);
