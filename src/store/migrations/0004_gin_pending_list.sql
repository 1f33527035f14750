-- The labels GIN index buffers new entries in a pending list and merges
-- them into the index when the list outgrows gin_pending_list_limit
-- (default 4 MB). The batch that crosses the limit does the whole merge
-- before it commits, so every request waiting on it, and every request
-- queued behind it, waits too: under 10,000 one-alert requests/s those
-- merges were the tail of the latency (issue #3). A small list is merged
-- often and quickly, at no measured cost in throughput; label searches,
-- which scan the whole pending list, get cheaper too.
ALTER INDEX alerts_labels_idx SET (gin_pending_list_limit = 64);
