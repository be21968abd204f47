-- Per-app tenancy: every app has its own versioned config (stage, commits, refs,
-- publications, audit) and its own probes (results, states, transitions). Revisions stay
-- shared: they are content-addressed and immutable, and an app reaches only those its own
-- commits name. What existed before belonged to the one global config, which becomes the
-- demo app's.
PRAGMA defer_foreign_keys = true;

CREATE TABLE commits_v2 (
  app        TEXT NOT NULL,
  id         TEXT NOT NULL, -- SHA-256 of the canonical commit content
  parent     TEXT,
  author     TEXT NOT NULL,
  message    TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  snapshot   TEXT NOT NULL, -- {"flags": {key: revision}, "segments": {...}, "probes": {...}}
  PRIMARY KEY (app, id)
);
INSERT INTO commits_v2 (app, id, parent, author, message, created_at, snapshot)
  SELECT 'demo', id, parent, author, message, created_at, snapshot FROM commits;

CREATE TABLE stage_v2 (
  app        TEXT NOT NULL,
  kind       TEXT NOT NULL,
  key        TEXT NOT NULL,
  revision   TEXT REFERENCES revisions (id),
  updated_at INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  PRIMARY KEY (app, kind, key)
);
INSERT INTO stage_v2 (app, kind, key, revision, updated_at, updated_by)
  SELECT 'demo', kind, key, revision, updated_at, updated_by FROM stage;

CREATE TABLE refs_v2 (
  app        TEXT NOT NULL,
  name       TEXT NOT NULL CHECK (name IN ('head', 'published')),
  commit_id  TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (app, name),
  FOREIGN KEY (app, commit_id) REFERENCES commits_v2 (app, id)
);
INSERT INTO refs_v2 (app, name, commit_id, updated_at)
  SELECT 'demo', name, commit_id, updated_at FROM refs;

CREATE TABLE publications_v2 (
  seq       INTEGER PRIMARY KEY AUTOINCREMENT,
  app       TEXT NOT NULL,
  commit_id TEXT NOT NULL,
  action    TEXT NOT NULL CHECK (action IN ('publish', 'rollback')),
  actor     TEXT NOT NULL,
  at        INTEGER NOT NULL,
  FOREIGN KEY (app, commit_id) REFERENCES commits_v2 (app, id)
);
INSERT INTO publications_v2 (seq, app, commit_id, action, actor, at)
  SELECT seq, 'demo', commit_id, action, actor, at FROM publications;

CREATE TABLE audit_v2 (
  seq    INTEGER PRIMARY KEY AUTOINCREMENT,
  app    TEXT NOT NULL, -- the app whose config, probes or registration changed
  at     INTEGER NOT NULL,
  actor  TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  before TEXT,
  after  TEXT
);
INSERT INTO audit_v2 (seq, app, at, actor, action, target, before, after)
  SELECT seq, 'demo', at, actor, action, target, before, after FROM audit;

CREATE TABLE probe_results_v2 (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  app        TEXT    NOT NULL,
  probe      TEXT    NOT NULL,
  started_at INTEGER NOT NULL, -- UTC ms
  ended_at   INTEGER NOT NULL, -- UTC ms
  ok         INTEGER NOT NULL CHECK (ok IN (0, 1)),
  status     INTEGER,
  latency_ms INTEGER NOT NULL,
  error      TEXT,
  source     TEXT    NOT NULL -- 'cron' or 'push'
);
INSERT INTO probe_results_v2 (id, app, probe, started_at, ended_at, ok, status, latency_ms, error, source)
  SELECT id, 'demo', probe, started_at, ended_at, ok, status, latency_ms, error, source FROM probe_results;

CREATE TABLE probe_states_v2 (
  app             TEXT NOT NULL,
  probe           TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('unknown', 'up', 'down')),
  since           INTEGER NOT NULL,
  override        TEXT NOT NULL DEFAULT 'auto' CHECK (override IN ('auto', 'force_up', 'force_down')),
  override_by     TEXT,
  override_reason TEXT,
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (app, probe)
);
INSERT INTO probe_states_v2 (app, probe, state, since, override, override_by, override_reason, updated_at)
  SELECT 'demo', probe, state, since, override, override_by, override_reason, updated_at FROM probe_states;

CREATE TABLE probe_transitions_v2 (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  app          TEXT    NOT NULL,
  probe        TEXT    NOT NULL,
  from_state   TEXT    NOT NULL,
  to_state     TEXT    NOT NULL,
  at           INTEGER NOT NULL,
  reason       TEXT    NOT NULL,
  disable_rate REAL,
  enable_rate  REAL
);
INSERT INTO probe_transitions_v2 (seq, app, probe, from_state, to_state, at, reason, disable_rate, enable_rate)
  SELECT seq, 'demo', probe, from_state, to_state, at, reason, disable_rate, enable_rate FROM probe_transitions;

DROP TABLE publications;
DROP TABLE refs;
DROP TABLE stage;
DROP TABLE commits;
DROP TABLE audit;
DROP TABLE probe_results;
DROP TABLE probe_states;
DROP TABLE probe_transitions;

ALTER TABLE commits_v2 RENAME TO commits;
ALTER TABLE stage_v2 RENAME TO stage;
ALTER TABLE refs_v2 RENAME TO refs;
ALTER TABLE publications_v2 RENAME TO publications;
ALTER TABLE audit_v2 RENAME TO audit;
ALTER TABLE probe_results_v2 RENAME TO probe_results;
ALTER TABLE probe_states_v2 RENAME TO probe_states;
ALTER TABLE probe_transitions_v2 RENAME TO probe_transitions;

CREATE INDEX commits_by_time ON commits (app, created_at);
CREATE TRIGGER commits_immutable BEFORE UPDATE ON commits
BEGIN SELECT RAISE(ABORT, 'commits are immutable'); END;
CREATE TRIGGER commits_kept BEFORE DELETE ON commits
BEGIN SELECT RAISE(ABORT, 'commits are never deleted'); END;

CREATE INDEX audit_by_app ON audit (app, seq);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Decisions and history read results by (app, probe, end time).
CREATE INDEX probe_results_by_probe_end ON probe_results (app, probe, ended_at);
CREATE INDEX probe_transitions_by_probe_at ON probe_transitions (app, probe, at);
