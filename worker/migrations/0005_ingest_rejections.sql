-- Events the collector refused at ingest, counted per app, UTC day and error code, so the
-- console can show what clients send wrong.
CREATE TABLE ingest_rejections (
  app   TEXT    NOT NULL,
  day   INTEGER NOT NULL, -- UTC ms at the start of the day
  code  TEXT    NOT NULL,
  count INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (app, day, code)
) WITHOUT ROWID;

-- One row per batch whose rejections were counted ({code: n} in `codes`): the counts are
-- folded in by the trigger only when the row is new, so a redelivered message or a
-- retried batch never counts twice.
CREATE TABLE ingest_rejection_batches (
  app      TEXT    NOT NULL,
  batch_id TEXT    NOT NULL,
  day      INTEGER NOT NULL,
  codes    TEXT    NOT NULL,
  PRIMARY KEY (app, batch_id)
) WITHOUT ROWID;

CREATE TRIGGER ingest_rejections_fold AFTER INSERT ON ingest_rejection_batches
BEGIN
  INSERT INTO ingest_rejections (app, day, code, count)
  SELECT NEW.app, NEW.day, j.key, j.value FROM json_each(NEW.codes) AS j WHERE true
  ON CONFLICT (app, day, code) DO UPDATE SET count = count + excluded.count;
END;
