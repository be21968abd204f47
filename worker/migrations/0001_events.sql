-- Raw events: append-only. One row per client-generated event id per app; a retried
-- batch or a redelivered queue message inserts nothing new ("ON CONFLICT DO NOTHING").
CREATE TABLE events (
  app          TEXT    NOT NULL,
  id           TEXT    NOT NULL,
  type         TEXT    NOT NULL,
  name         TEXT    NOT NULL,
  ts           INTEGER NOT NULL, -- server-corrected UTC ms
  client_ts    INTEGER NOT NULL, -- as the client's clock said
  received_at  INTEGER NOT NULL,
  anonymous_id TEXT    NOT NULL,
  user_id      TEXT,
  user_key     TEXT    NOT NULL, -- user_id, else anonymous_id: who counts as one user
  props        TEXT    NOT NULL DEFAULT '{}',
  url          TEXT,
  batch_id     TEXT    NOT NULL,
  PRIMARY KEY (app, id)
);
CREATE INDEX events_by_name_time ON events (app, name, ts);

-- Don't change the past.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

-- Aggregates per app, event and UTC bucket ('hour' or 'day'). Folded in incrementally by
-- the trigger below, inside the same transaction as the raw insert, so they always equal
-- what the raw events imply.
CREATE TABLE agg_counts (
  app         TEXT    NOT NULL,
  event       TEXT    NOT NULL,
  granularity TEXT    NOT NULL CHECK (granularity IN ('hour', 'day')),
  bucket      INTEGER NOT NULL,
  count       INTEGER NOT NULL DEFAULT 0,
  users       INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (app, event, granularity, bucket)
);

-- Which users were seen per bucket: the basis of the exact distinct-user counts.
CREATE TABLE agg_users (
  app         TEXT    NOT NULL,
  event       TEXT    NOT NULL,
  granularity TEXT    NOT NULL,
  bucket      INTEGER NOT NULL,
  user_key    TEXT    NOT NULL,
  PRIMARY KEY (app, event, granularity, bucket, user_key)
) WITHOUT ROWID;

-- Per-property value counts per hour (summed for days and ranges).
CREATE TABLE agg_props (
  app    TEXT    NOT NULL,
  event  TEXT    NOT NULL,
  bucket INTEGER NOT NULL,
  prop   TEXT    NOT NULL,
  value  TEXT    NOT NULL,
  count  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (app, event, prop, bucket, value)
) WITHOUT ROWID;

-- The catalogue of known event names and properties: a query naming anything else is a 404.
CREATE TABLE event_names (
  app        TEXT    NOT NULL,
  name       TEXT    NOT NULL,
  first_seen INTEGER NOT NULL,
  PRIMARY KEY (app, name)
) WITHOUT ROWID;
CREATE TABLE event_props (
  app   TEXT NOT NULL,
  event TEXT NOT NULL,
  prop  TEXT NOT NULL,
  PRIMARY KEY (app, event, prop)
) WITHOUT ROWID;

-- Events the clients report they had to drop (storage full, ...), once per batch.
CREATE TABLE client_drops (
  app         TEXT    NOT NULL,
  batch_id    TEXT    NOT NULL,
  dropped     INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (app, batch_id)
) WITHOUT ROWID;

CREATE TRIGGER events_fold AFTER INSERT ON events
BEGIN
  INSERT INTO agg_counts (app, event, granularity, bucket, count, users)
  VALUES (NEW.app, NEW.name, 'hour', NEW.ts - NEW.ts % 3600000, 1, 0),
         (NEW.app, NEW.name, 'day', NEW.ts - NEW.ts % 86400000, 1, 0)
  ON CONFLICT (app, event, granularity, bucket) DO UPDATE SET count = count + 1;

  INSERT INTO agg_users (app, event, granularity, bucket, user_key)
  VALUES (NEW.app, NEW.name, 'hour', NEW.ts - NEW.ts % 3600000, NEW.user_key),
         (NEW.app, NEW.name, 'day', NEW.ts - NEW.ts % 86400000, NEW.user_key)
  ON CONFLICT DO NOTHING;

  INSERT INTO agg_props (app, event, bucket, prop, value, count)
  SELECT NEW.app, NEW.name, NEW.ts - NEW.ts % 3600000, p.key,
         CASE p.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null'
                     ELSE CAST(p.value AS TEXT) END,
         1
  FROM json_each(NEW.props) AS p WHERE true
  ON CONFLICT (app, event, prop, bucket, value) DO UPDATE SET count = count + 1;

  INSERT INTO event_names (app, name, first_seen) VALUES (NEW.app, NEW.name, NEW.ts)
  ON CONFLICT DO NOTHING;
  INSERT INTO event_props (app, event, prop)
  SELECT NEW.app, NEW.name, p.key FROM json_each(NEW.props) AS p WHERE true
  ON CONFLICT DO NOTHING;
END;

-- A user is counted once per bucket: only a first sighting bumps `users`.
CREATE TRIGGER agg_users_fold AFTER INSERT ON agg_users
BEGIN
  UPDATE agg_counts SET users = users + 1
  WHERE app = NEW.app AND event = NEW.event AND granularity = NEW.granularity AND bucket = NEW.bucket;
END;
