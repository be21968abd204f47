-- Aggregates are folded once per queue batch by the consumer (worker/src/store_events.sql),
-- not once per event by triggers: one upsert per (app, event, granularity, bucket) and per
-- property value, for the rows that batch really inserted.
DROP TRIGGER events_fold;
DROP TRIGGER agg_users_fold;

-- Every event paid a row here for a lookup only the `source=raw` audit makes; that audit
-- now reads the app's events through the primary key instead.
DROP INDEX events_by_name_time;

-- What the write path has done, for `GET /v1/admin/pipeline` and the cost figures. One row,
-- updated inside each consumer transaction, so it is exactly as durable as the events.
CREATE TABLE pipeline_totals (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  -- The largest `events.rowid` already folded into the aggregates: every row above it is
  -- folded by the next consumer transaction, whoever inserted it (events are never
  -- deleted, so rowids only grow). No default: a transaction that finds this row missing
  -- fails (see `begin`) instead of folding nothing or everything.
  fold_from       INTEGER NOT NULL,
  transactions    INTEGER NOT NULL DEFAULT 0,
  messages        INTEGER NOT NULL DEFAULT 0,
  events_offered  INTEGER NOT NULL DEFAULT 0, -- events in the stored messages
  events_stored   INTEGER NOT NULL DEFAULT 0, -- of those, new rows (the rest were duplicates)
  retries         INTEGER NOT NULL DEFAULT 0, -- deliveries sent back to the queue after a failed write
  rows_written    INTEGER NOT NULL DEFAULT 0  -- D1 rows written by the consumer transactions
);
-- Everything stored so far was folded by the triggers dropped above.
INSERT INTO pipeline_totals (id, fold_from) VALUES (1, (SELECT coalesce(max(rowid), 0) FROM events));
CREATE TRIGGER pipeline_totals_kept BEFORE DELETE ON pipeline_totals
BEGIN SELECT RAISE(ABORT, 'pipeline_totals holds the fold mark and is never deleted'); END;

-- Messages that went the long way: through the dead-letter queue, or through the KV spool.
-- Recorded in the transaction that finally stores them, once each.
CREATE TABLE pipeline_incidents (
  app      TEXT    NOT NULL,
  batch_id TEXT    NOT NULL,
  part     INTEGER NOT NULL,
  kind     TEXT    NOT NULL CHECK (kind IN ('dead_letter', 'spool')),
  events   INTEGER NOT NULL,
  at       INTEGER NOT NULL,
  PRIMARY KEY (app, batch_id, part, kind)
) WITHOUT ROWID;
