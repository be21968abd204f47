-- Versioned flag configuration (git-like). See core/src/config.rs.

-- Content-addressed bodies of flags and segments. Immutable.
CREATE TABLE revisions (
  id         TEXT PRIMARY KEY, -- SHA-256 of the canonical JSON body
  kind       TEXT NOT NULL CHECK (kind IN ('flags', 'segments', 'probes')),
  key        TEXT NOT NULL,
  body       TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TRIGGER revisions_immutable BEFORE UPDATE ON revisions
BEGIN SELECT RAISE(ABORT, 'revisions are immutable'); END;
CREATE TRIGGER revisions_kept BEFORE DELETE ON revisions
BEGIN SELECT RAISE(ABORT, 'revisions are never deleted'); END;

-- The working set: changes against the head commit. revision NULL stages a deletion.
CREATE TABLE stage (
  kind       TEXT NOT NULL,
  key        TEXT NOT NULL,
  revision   TEXT REFERENCES revisions (id),
  updated_at INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  PRIMARY KEY (kind, key)
);

-- Immutable snapshots.
CREATE TABLE commits (
  id         TEXT PRIMARY KEY, -- SHA-256 of the canonical commit content
  parent     TEXT,
  author     TEXT NOT NULL,
  message    TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  snapshot   TEXT NOT NULL -- {"flags": {key: revision}, "segments": {key: revision}}
);
CREATE INDEX commits_by_time ON commits (created_at);
CREATE TRIGGER commits_immutable BEFORE UPDATE ON commits
BEGIN SELECT RAISE(ABORT, 'commits are immutable'); END;
CREATE TRIGGER commits_kept BEFORE DELETE ON commits
BEGIN SELECT RAISE(ABORT, 'commits are never deleted'); END;

-- Named pointers: 'head' (latest commit) and 'published' (what readers get).
CREATE TABLE refs (
  name       TEXT PRIMARY KEY CHECK (name IN ('head', 'published')),
  commit_id  TEXT NOT NULL REFERENCES commits (id),
  updated_at INTEGER NOT NULL
);

-- Every publish and rollback, in order.
CREATE TABLE publications (
  seq       INTEGER PRIMARY KEY AUTOINCREMENT,
  commit_id TEXT NOT NULL REFERENCES commits (id),
  action    TEXT NOT NULL CHECK (action IN ('publish', 'rollback')),
  actor     TEXT NOT NULL,
  at        INTEGER NOT NULL
);

-- Who did what, when (UTC ms), with the state before and after. Append-only.
CREATE TABLE audit (
  seq    INTEGER PRIMARY KEY AUTOINCREMENT,
  at     INTEGER NOT NULL,
  actor  TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  before TEXT,
  after  TEXT
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
