-- A notification is written once even when its batch is written twice:
-- after a connection lost during COMMIT the worker cannot know whether the
-- batch committed, and writes it again. The alerts upsert and the events
-- were already idempotent; notifications get a key, the request's receipt
-- time plus an id drawn when the request was received, and the write skips
-- a row it finds there. Rows written before this migration keep a NULL id.
ALTER TABLE notifications ADD COLUMN request_id bigint;
CREATE UNIQUE INDEX notifications_received_at_request_idx
    ON notifications (received_at DESC, request_id);
DROP INDEX notifications_received_at_idx;
