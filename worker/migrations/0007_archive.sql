-- The cold tier: raw events older than their app's retention move to R2 (worker/src/archive.rs).
-- One D1 database holds at most 10 GB; aggregates stay here forever, raw rows do not.
--
-- The move is the only way a raw row can leave D1, and it is exactly once across the tiers:
-- 1. plan:   an `archive_objects` row (state 'planned') names the object's key and the rows it
--            holds: the app's events of one UTC day whose rowid lies in [first_rowid,
--            last_rowid]. Rowids only grow (the archive never deletes the newest row), so the
--            set is fixed once planned. The app's scan mark moves past the range in the same
--            transaction.
-- 2. write:  the object is put only if its key is free (R2 refuses a second write), then read
--            back; its content's size and SHA-256 must equal the plan's (state 'verified',
--            with the stored gzip's size and SHA-256 recorded).
-- 3. delete: one transaction checks the rows are still exactly the plan's, deletes them,
--            remembers their ids (`archived_ids`, so a late redelivery of the same event is
--            not stored twice), marks the object 'done' and writes the audit line.
-- A crash between steps leaves every event in D1, in R2, or in both; the next run resumes the
-- unfinished objects first, and "both" ends in step 3 without a second object.

CREATE TABLE archive_objects (
  key            TEXT    PRIMARY KEY, -- events/app=<app>/date=<YYYY-MM-DD>/<first>-<last>.ndjson.gz
  app            TEXT    NOT NULL,
  day            INTEGER NOT NULL, -- UTC ms of the day's start
  first_rowid    INTEGER NOT NULL,
  last_rowid     INTEGER NOT NULL,
  events         INTEGER NOT NULL,
  -- The object's content, fixed at planning: the NDJSON's length and SHA-256 (hex). The gzip
  -- around it may differ between builds; what was stored is recorded when it is read back.
  content_bytes  INTEGER NOT NULL,
  content_sha256 TEXT    NOT NULL,
  bytes          INTEGER, -- the stored gzip's size and SHA-256, once verified
  sha256         TEXT,
  state          TEXT    NOT NULL CHECK (state IN ('planned', 'verified', 'done')),
  planned_at     INTEGER NOT NULL,
  verified_at    INTEGER,
  done_at        INTEGER
);
CREATE INDEX archive_objects_by_app ON archive_objects (app, state, first_rowid);

-- A plan never changes: only its state moves forward, planned -> verified -> done, and the
-- stored size and checksum are written once, by the move to verified.
CREATE TRIGGER archive_objects_forward BEFORE UPDATE ON archive_objects
WHEN NEW.key IS NOT OLD.key OR NEW.app IS NOT OLD.app OR NEW.day IS NOT OLD.day
  OR NEW.first_rowid IS NOT OLD.first_rowid OR NEW.last_rowid IS NOT OLD.last_rowid
  OR NEW.events IS NOT OLD.events OR NEW.content_bytes IS NOT OLD.content_bytes
  OR NEW.content_sha256 IS NOT OLD.content_sha256
  OR NOT ((OLD.state = 'planned' AND NEW.state = 'verified' AND NEW.bytes IS NOT NULL AND NEW.sha256 IS NOT NULL)
       OR (OLD.state = 'verified' AND NEW.state = 'done' AND NEW.bytes IS OLD.bytes AND NEW.sha256 IS OLD.sha256))
BEGIN SELECT RAISE(ABORT, 'an archive object''s plan is fixed and its state only moves forward'); END;
CREATE TRIGGER archive_objects_kept BEFORE DELETE ON archive_objects
BEGIN SELECT RAISE(ABORT, 'archive objects are never forgotten'); END;
-- No two objects hold the same row: a plan whose rows overlap another's (two runs that raced
-- past the run lease) is refused whole.
CREATE TRIGGER archive_objects_disjoint BEFORE INSERT ON archive_objects
WHEN EXISTS (SELECT 1 FROM archive_objects AS o
             WHERE o.app = NEW.app AND o.day = NEW.day
               AND o.first_rowid <= NEW.last_rowid AND o.last_rowid >= NEW.first_rowid)
BEGIN SELECT RAISE(ABORT, 'an archive object already holds some of these rows'); END;

-- One archive run at a time: a run takes the lease until a time, and gives it back at its
-- end; a run that died leaves it to expire.
CREATE TABLE archive_lease (
  id     INTEGER PRIMARY KEY CHECK (id = 1),
  holder TEXT,
  until  INTEGER NOT NULL
);
INSERT INTO archive_lease (id, holder, until) VALUES (1, NULL, 0);

-- Raw rows still refuse UPDATE, and DELETE unless a verified object holds the row.
DROP TRIGGER events_no_delete;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
WHEN NOT EXISTS (
  SELECT 1 FROM archive_objects AS o
  WHERE o.app = OLD.app AND o.state = 'verified'
    AND OLD.rowid BETWEEN o.first_rowid AND o.last_rowid
    AND OLD.ts >= o.day AND OLD.ts < o.day + 86400000)
BEGIN SELECT RAISE(ABORT, 'events are append-only: only the archive move deletes, and only rows a verified archive object holds'); END;

-- Ids of archived events whose time ingest could still accept (it refuses events more than 30
-- days old): the consumer stores no event whose id is here, so a retry or redelivery of an
-- archived event is absorbed as a duplicate would be. An id is kept until both its event's
-- time and its archiving are more than 31 days past (so a redelivery from the queue or the
-- KV spool within that time is absorbed too).
CREATE TABLE archived_ids (
  app         TEXT    NOT NULL,
  id          TEXT    NOT NULL,
  keep_until  INTEGER NOT NULL,
  PRIMARY KEY (app, id)
) WITHOUT ROWID;
CREATE INDEX archived_ids_by_time ON archived_ids (keep_until);

-- Per app: how far the archive has looked, and its last run.
CREATE TABLE archive_state (
  app              TEXT    PRIMARY KEY,
  -- Every row of the app with rowid <= scanned_to is covered by an archive object.
  scanned_to       INTEGER NOT NULL DEFAULT 0,
  last_run_at      INTEGER,
  last_error       TEXT,
  last_config_day  INTEGER -- UTC day of the newest config backup written
);
