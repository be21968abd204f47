// The consumer's storage statements (worker/src/store_events.sql) on SQLite itself, the
// engine under D1: the per-batch fold must give exactly what the per-event triggers it
// replaced gave (migration 0001 still defines them, so they are the reference), under
// redelivery, overlapping resends and duplicates inside one statement; and no statement
// may read the whole events table.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DatabaseSync } from 'node:sqlite';
import { FOLD_STATEMENTS, sqlSections, storeEventsSql } from '../../scripts/store-sql.mjs';
import { ROOT } from '../../scripts/toolchain.mjs';

const migration = (file) => readFileSync(join(ROOT, 'worker/migrations', file), 'utf8');
function folded() {
  const db = new DatabaseSync(':memory:');
  db.exec(migration('0001_events.sql'));
  db.exec(migration('0006_fold_per_batch.sql'));
  db.exec(migration('0007_archive.sql'));
  db.exec(migration('0009_exposures.sql'));
  const sql = storeEventsSql();
  const st = Object.fromEntries(Object.entries(sql).map(([k, v]) => [k, db.prepare(v)]));
  return {
    db,
    /** One consumer transaction over `chunks` (each a list of rows, one insert statement),
     * with props sent as objects, as the Worker sends them. */
    transaction(chunks) {
      db.exec('BEGIN');
      st.begin.run(1, chunks.flat().length, 0);
      for (const rows of chunks) st.insert_events.run(JSON.stringify(rows.map((r) => r.with(10, JSON.parse(r[10])))));
      for (const f of FOLD_STATEMENTS) st[f].run();
      db.exec('COMMIT');
    },
  };
}

function reference() {
  const db = new DatabaseSync(':memory:');
  db.exec(migration('0001_events.sql'));
  const insert = db.prepare('INSERT INTO events (app, id, type, name, ts, client_ts, received_at, anonymous_id, user_id, user_key, props, url, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app, id) DO NOTHING');
  return { db, transaction(chunks) { db.exec('BEGIN'); for (const row of chunks.flat()) insert.run(...row); db.exec('COMMIT'); } };
}

const TABLES = {
  events: 'SELECT * FROM events ORDER BY app, id',
  agg_counts: 'SELECT app, event, granularity, bucket, count, users FROM agg_counts ORDER BY 1, 2, 3, 4',
  agg_users: 'SELECT * FROM agg_users ORDER BY 1, 2, 3, 4, 5',
  agg_props: 'SELECT * FROM agg_props ORDER BY 1, 2, 3, 4, 5',
  event_names: 'SELECT app, name FROM event_names ORDER BY 1, 2',
  event_props: 'SELECT * FROM event_props ORDER BY 1, 2, 3',
};
const snapshot = (db) => Object.fromEntries(Object.entries(TABLES).map(([t, q]) => [t, db.prepare(q).all().map((r) => ({ ...r }))]));

/** A deterministic generator, so a failure replays. */
function random(seed) {
  let s = seed >>> 0;
  return (n) => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % n; };
}

describe('the per-batch fold', () => {
  test('equals the per-event triggers under redelivery, resends and duplicates', () => {
    const pick = random(20261123);
    const base = 1_790_000_000_000;
    const known = new Map(); // the same id always carries the same event, as from one client
    const row = () => {
      const app = ['a', 'b'][pick(2)];
      const id = `e${pick(900)}`;
      const key = `${app}/${id}`;
      if (!known.has(key)) {
        const ts = base + pick(3) * 13 * 3_600_000 + pick(3_600_000);
        const anonymous = `anon-${pick(25)}`;
        const user = pick(4) === 0 ? `user-${pick(5)}` : null;
        const odd = ['x,y', 'say "hi"', 'a/b\\c', 'naïve ✓ 🚀', 'tab\tnew\nline\u0001', '=1+1'];
        // Keys as ingest allows them: any printable text, JSON path syntax included.
        const oddKeys = ['say "hi"', 'a.b', '$[0]', 'naïve ✓', 'back\\slash'];
        const props = { plan: ['free', 'pro', null, true, 1.5, -0, 12345678901, odd[pick(odd.length)]][pick(8)], ...(pick(2) ? { page: `/p/${pick(4)}` } : {}), ...(pick(3) ? {} : { [oddKeys[pick(oddKeys.length)]]: pick(2) }) };
        known.set(key, [app, id, 'track', ['view', 'click', 'buy'][pick(3)], ts, ts - 5, ts + 9, anonymous, user, user ?? anonymous, JSON.stringify(props), null, `batch-${pick(50)}`]);
      }
      return known.get(key);
    };
    const ours = folded();
    const theirs = reference();
    const delivered = [];
    for (let t = 0; t < 120; t++) {
      let chunks;
      const kind = pick(4);
      if (kind === 0 && delivered.length) {
        chunks = delivered[pick(delivered.length)]; // a redelivered message
      } else if (kind === 1 && delivered.length) {
        const earlier = delivered[pick(delivered.length)].flat(); // half of it written before
        chunks = [[...earlier.slice(0, Math.ceil(earlier.length / 2)), ...Array.from({ length: 5 }, row)]];
      } else {
        chunks = Array.from({ length: 1 + pick(3) }, () => Array.from({ length: 1 + pick(30) }, row));
        if (pick(3) === 0) chunks[0].push(chunks[0][0]); // one id twice in one statement
      }
      delivered.push(chunks);
      ours.transaction(chunks);
      theirs.transaction(chunks);
      assert.deepEqual(snapshot(ours.db), snapshot(theirs.db), `after transaction ${t}`);
    }
    const totals = ours.db.prepare('SELECT events_stored, events_offered FROM pipeline_totals').get();
    const stored = ours.db.prepare('SELECT COUNT(*) AS n FROM events').get().n;
    assert.equal(totals.events_stored, stored);
    assert.ok(totals.events_offered > stored, 'the run offered duplicates');
    assert.ok(snapshot(ours.db).agg_counts.some((r) => r.users > 1));
  });

  test('a message stored twice changes nothing the second time', () => {
    const ours = folded();
    const rows = Array.from({ length: 10 }, (_, i) => ['a', `id-${i}`, 'track', 'view', 1_790_000_000_000 + i, 0, 0, `u${i % 3}`, null, `u${i % 3}`, '{"k":"v"}', null, 'b']);
    ours.transaction([rows]);
    const once = snapshot(ours.db);
    ours.transaction([rows]);
    assert.deepEqual(snapshot(ours.db), once);
    assert.equal(ours.db.prepare('SELECT events_stored FROM pipeline_totals').get().events_stored, 10);
  });

  test('rows another writer inserted (an old Worker during the migration) are folded by the next transaction', () => {
    const ours = folded();
    const theirs = reference();
    const row = (i) => ['a', `old-${i}`, 'track', 'view', 1_790_000_000_000 + i, 0, 0, `u${i}`, null, `u${i}`, '{"k":"v"}', null, 'b'];
    const plain = ours.db.prepare('INSERT INTO events (app, id, type, name, ts, client_ts, received_at, anonymous_id, user_id, user_key, props, url, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    for (let i = 0; i < 3; i++) plain.run(...row(i));
    ours.transaction([[row(3)]]);
    theirs.transaction([[0, 1, 2, 3].map(row)]);
    assert.deepEqual(snapshot(ours.db), snapshot(theirs.db));
    assert.equal(ours.db.prepare('SELECT events_stored FROM pipeline_totals').get().events_stored, 4);
  });

  test('without its totals row a transaction fails instead of storing what it would never fold', () => {
    const { db, transaction } = folded();
    assert.throws(() => db.exec('DELETE FROM pipeline_totals'), /never deleted/);
    db.exec('DROP TRIGGER pipeline_totals_kept; DELETE FROM pipeline_totals');
    const row = ['a', 'x', 'track', 'view', 1_790_000_000_000, 0, 0, 'u', null, 'u', '{}', null, 'b'];
    assert.throws(() => transaction([[row]]), /NOT NULL constraint failed: pipeline_totals.fold_from/);
  });

  test('no statement reads the whole events table', () => {
    const { db } = folded();
    for (const [name, text] of Object.entries(storeEventsSql())) {
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${text}`).all().map((r) => r.detail);
      const scans = plan.filter((d) => /^SCAN (events|n)\b/.test(d));
      assert.deepEqual(scans, [], `${name}: ${plan.join(' | ')}`);
    }
  });
});

// The archive's guards (migration 0007) on SQLite itself: the one way a raw row leaves.
describe('the archive move', () => {
  const DAY = 86_400_000;
  const day0 = 1_790_000_000_000 - (1_790_000_000_000 % DAY);
  const row = (i, ts = day0 + i) => ['a', `id-${i}`, 'track', 'view', ts, 0, 0, 'u', null, 'u', '{"k":"v"}', null, 'b'];
  const plan = (db, key, first, last, day = day0) => db.prepare(
    "INSERT INTO archive_objects (key, app, day, first_rowid, last_rowid, events, content_bytes, content_sha256, state, planned_at) VALUES (?, 'a', ?, ?, ?, 1, 1, 'x', 'planned', 0)",
  ).run(key, day, first, last);
  const verify = (db, key) => db.prepare("UPDATE archive_objects SET state = 'verified', bytes = 1, sha256 = 'y' WHERE key = ?").run(key);
  const archiveSql = sqlSections('worker/src/archive.sql');

  test('a raw row is deleted only while a verified object holds it, and never updated', () => {
    const { db, transaction } = folded();
    transaction([[row(1), row(2), row(3, day0 + DAY)]]);
    const remove = (rowid) => db.prepare('DELETE FROM events WHERE rowid = ?').run(rowid);
    assert.throws(() => remove(1), /append-only/, 'no object');
    plan(db, 'k1', 1, 3);
    assert.throws(() => remove(1), /append-only/, 'a planned object is not enough');
    verify(db, 'k1');
    assert.throws(() => remove(3), /append-only/, 'the object holds one day only');
    assert.equal(remove(1).changes, 1);
    assert.throws(() => db.exec("UPDATE events SET name = 'x'"), /append-only/);
    db.prepare("UPDATE archive_objects SET state = 'done' WHERE key = 'k1'").run();
    assert.throws(() => remove(2), /append-only/, 'a done object opens nothing more');
  });

  test("an object's plan is fixed, its state moves forward only, and it is never forgotten", () => {
    const { db } = folded();
    plan(db, 'k1', 1, 3);
    for (const change of ["state = 'done'", 'last_rowid = 9', "content_sha256 = 'y'", 'events = 2', "state = 'verified'"]) {
      assert.throws(() => db.exec(`UPDATE archive_objects SET ${change} WHERE key = 'k1'`), /plan is fixed/, change);
    }
    verify(db, 'k1');
    assert.throws(() => db.exec("UPDATE archive_objects SET state = 'planned' WHERE key = 'k1'"), /plan is fixed/);
    assert.throws(() => db.exec("UPDATE archive_objects SET state = 'done', sha256 = 'z' WHERE key = 'k1'"), /plan is fixed/);
    assert.throws(() => db.exec("DELETE FROM archive_objects"), /never forgotten/);
    assert.throws(() => plan(db, 'k1', 5, 6), /UNIQUE/, 'a key is planned once');
    assert.throws(() => plan(db, 'k2', 3, 9), /already holds some of these rows/, 'overlapping rows are refused');
    plan(db, 'k3', 4, 9);
    plan(db, 'k4', 1, 3, day0 + DAY);
  });

  test("the archive's statements walk rowid ranges, never the app's whole key range", () => {
    const { db } = folded();
    for (const [name, text] of Object.entries(archiveSql)) {
      if (!/\bevents\b/.test(text.replace(/^--.*$/gm, '').replace(/'[^']*'/g, ''))) continue;
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${text}`).all().map((r) => r.detail);
      const onEvents = plan.filter((d) => /\bevents\b/.test(d) && !/archived_ids|archive_objects/.test(d));
      // A rowid range, or `max(rowid)` (a plain SEARCH: one step down the rowid tree).
      for (const step of onEvents) {
        assert.match(step, /USING INTEGER PRIMARY KEY \(rowid|^SEARCH events$/, `${name}: ${plan.join(' | ')}`);
      }
      assert.ok(!plan.some((d) => /sqlite_autoindex_events_1/.test(d)), `${name}: ${plan.join(' | ')}`);
    }
  });

  test('one run holds the lease; a moved mark or changed rows fail their transaction', () => {
    const { db, transaction } = folded();
    const take = db.prepare(archiveSql.lease_take);
    assert.equal(take.run('a', 1_000, 10).changes, 1);
    assert.equal(take.run('b', 1_000, 20).changes, 0, 'held until 1,000');
    assert.equal(take.run('b', 5_000, 2_000).changes, 1, 'expired');
    db.prepare(archiveSql.lease_give_back).run('a');
    assert.equal(take.run('c', 9_000, 3_000).changes, 0, 'only the holder gives it back');
    db.prepare(archiveSql.move_mark).run('a', 5);
    assert.throws(() => db.prepare(archiveSql.plan_guard).run('a', 0), /NOT NULL/);
    db.prepare(archiveSql.plan_guard).run('a', 5);
    transaction([[row(1), row(2)]]);
    const guard = db.prepare(archiveSql.delete_guard);
    const rows = ['a', 1, 2, day0, day0 + DAY];
    guard.run(...rows, 2);
    assert.throws(() => guard.run(...rows, 3), /NOT NULL/, 'a count that is not the plan\'s');
  });

  test('an archived id is absorbed like a duplicate when it arrives again', () => {
    const { db, transaction } = folded();
    db.prepare("INSERT INTO archived_ids (app, id, keep_until) VALUES ('a', 'id-1', ?)").run(day0);
    transaction([[row(1), row(2)]]);
    assert.deepEqual(db.prepare('SELECT id FROM events ORDER BY id').all().map((r) => r.id), ['id-2']);
    assert.equal(db.prepare('SELECT events_stored FROM pipeline_totals').get().events_stored, 1);
  });
});

describe('experiments', () => {
  const exposure = (id, user, variant, ts, reason = 'SPLIT') =>
    ['a', id, 'track', '$exposure', ts, 0, 0, user, null, user, JSON.stringify({ flag: 'f', variant, version: `v${ts}`, reason }), null, 'b'];
  const event = (id, user, name, ts, props = {}) => ['a', id, 'track', name, ts, 0, 0, user, null, user, JSON.stringify(props), null, 'b'];
  const experimentsSql = sqlSections('worker/src/experiments.sql');
  const variants = (db) => db.prepare('SELECT user_key, variant, first_ts, version FROM exposure_variants ORDER BY user_key, variant').all()
    .map((r) => `${r.user_key} ${r.variant} ${r.first_ts} ${r.version}`);
  /** The results' view of exposures: per variant and mixed, users (days summed). */
  const exposed = (db, start, end) => {
    const out = {};
    for (const r of db.prepare(experimentsSql.exposures).all('a', 'f', start, end)) {
      const key = `${r.variant}${r.mixed ? ' mixed' : ''}`;
      out[key] = (out[key] || 0) + r.users;
    }
    return out;
  };

  test('exposures are folded from new rows only: the earliest per variant, only splits; mixed means two variants before the end', () => {
    const { db, transaction } = folded();
    transaction([[exposure('e1', 'u1', 'control', 10), exposure('e2', 'u2', 'control', 10), exposure('e3', 'u3', 'control', 10, 'DISABLED'),
      exposure('e4', 'u4', 'control', 10), exposure('e5', 'u4', 'treatment', 11)]]);
    assert.deepEqual(variants(db), ['u1 control 10 v10', 'u2 control 10 v10', 'u4 control 10 v10', 'u4 treatment 11 v11']);
    // A redelivery (same ids) folds nothing; an earlier exposure moves the first one back
    // (with its version); a later one changes nothing.
    transaction([[exposure('e1', 'u1', 'treatment', 1), exposure('e6', 'u1', 'control', 5), exposure('e7', 'u2', 'treatment', 20), exposure('e8', 'u2', 'control', 30)]]);
    assert.deepEqual(variants(db), ['u1 control 5 v5', 'u2 control 10 v10', 'u2 treatment 20 v20', 'u4 control 10 v10', 'u4 treatment 11 v11']);
    // An experiment ending at 100: u2 and u4 saw both variants before it ended.
    assert.deepEqual(exposed(db, 0, 100), { control: 1, 'control mixed': 2 });
    // One ending at 15 (the winner rolled out to u2 at 20, after it): u2 counts in control.
    assert.deepEqual(exposed(db, 0, 15), { control: 2, 'control mixed': 1 });
    // One starting at 8: u1 was first exposed before it, so is not in it.
    assert.deepEqual(exposed(db, 8, 100), { 'control mixed': 2 });
  });

  test('measured events: new ones follow the registration, stored ones are copied in rowid chunks, each once', () => {
    const { db, transaction } = folded();
    transaction([[event('p1', 'u1', 'purchase', 1, { amount: 3 }), event('c1', 'u1', 'click', 1), event('p0', 'u2', 'purchase', 1)]]);
    transaction([[event('x1', 'u9', 'purchase', 1)].map((r) => r.with(0, 'other-app'))]);
    const copies = () => db.prepare('SELECT id FROM experiment_events ORDER BY id').all().map((r) => r.id);
    assert.deepEqual(copies(), [], 'nothing is measured yet');
    db.prepare(experimentsSql.register_name).run('a', 'purchase', 100);
    const pending = () => db.prepare(experimentsSql.registered_names).all('a').map((r) => [r.name, r.pending]);
    assert.deepEqual(pending(), [['purchase', 4]], 'the four rows stored so far wait');
    transaction([[event('p2', 'u1', 'purchase', 2), event('c2', 'u1', 'click', 2), event('p1', 'u1', 'purchase', 1)]]);
    assert.deepEqual(copies(), ['p2'], 'new measured events follow at once; a redelivery adds nothing');
    const chunk = () => {
      db.exec('BEGIN');
      db.prepare(experimentsSql.copy_chunk).run('a', 'purchase', 2);
      db.prepare(experimentsSql.copy_advance).run('a', 'purchase', 2);
      db.exec('COMMIT');
    };
    chunk();
    assert.deepEqual(copies(), ['p1', 'p2'], 'rowids 1-2: p1 (c1 is not measured)');
    assert.deepEqual(pending(), [['purchase', 2]]);
    chunk();
    assert.deepEqual(copies(), ['p0', 'p1', 'p2'], "rowids 3-4: p0 (x1 is another app's)");
    assert.deepEqual(pending(), [['purchase', 0]]);
    assert.deepEqual(db.prepare(experimentsSql.pending_copies).all(), []);
    chunk();
    assert.deepEqual(copies(), ['p0', 'p1', 'p2'], 'a finished copy copies nothing more');
    db.prepare(experimentsSql.register_name).run('a', 'purchase', 200);
    assert.deepEqual(pending(), [['purchase', 0]], 'registering again changes nothing');
  });

  test('the archive copies measured events before it deletes their raw rows', () => {
    const { db, transaction } = folded();
    transaction([[event('p1', 'u1', 'purchase', 1), event('c1', 'u1', 'click', 1), event('p2', 'u2', 'purchase', 1)]]);
    db.prepare(experimentsSql.register_name).run('a', 'purchase', 100);
    const archiveSql = sqlSections('worker/src/archive.sql');
    db.prepare(archiveSql.keep_measured).run('a', 1, 2, 0, 86_400_000);
    assert.deepEqual(db.prepare('SELECT id FROM experiment_events ORDER BY id').all().map((r) => r.id), ['p1'], 'the object\'s rows only, measured names only');
  });

  test('results read exposures and measured events by primary key only', () => {
    const { db } = folded();
    for (const [name, text] of Object.entries(experimentsSql)) {
      if (!/^\s*(SELECT|WITH)/m.test(text.replace(/^--.*$/gm, ''))) continue;
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${text}`).all().map((r) => r.detail);
      // Tables are searched by primary key from the app on; only the CTE's rows are scanned.
      // (experiment_event_names, one row per app and measured name, is read whole by
      // pending_copies; `SEARCH events` alone is max(rowid), one step down the tree.)
      for (const step of plan.filter((d) => /^(SCAN|SEARCH) (e|exposure_variants|experiment_events|events)\b/.test(d))) {
        assert.match(step, /^SEARCH \w+ USING PRIMARY KEY \(app=\?|^SEARCH e USING INTEGER PRIMARY KEY \(rowid>\? AND rowid<\?\)$|^SEARCH events$/, `${name}: ${plan.join(' | ')}`);
      }
    }
    const metric = db.prepare(`EXPLAIN QUERY PLAN ${experimentsSql.metric}`).all().map((r) => r.detail);
    assert.ok(metric.includes('SEARCH e USING PRIMARY KEY (app=? AND name=? AND user_key=? AND ts>? AND ts<?)'), metric.join(' | '));
  });
});

describe('migrations', () => {
  test('apply in order over existing data: staged edits, revisions and exposures survive 0008 and 0009', () => {
    const db = new DatabaseSync(':memory:', { enableForeignKeyConstraints: true });
    const files = readdirSync(join(ROOT, 'worker/migrations')).filter((f) => f.endsWith('.sql')).sort();
    for (const file of files) {
      if (file.startsWith('0008')) {
        // A deployment with a pending staged edit and a deletion staged, and stored exposures.
        db.exec(`INSERT INTO revisions (id, kind, key, body, created_at) VALUES ('r1', 'flags', 'f', '{"key":"f"}', 1)`);
        db.exec(`INSERT INTO stage (app, kind, key, revision, updated_at, updated_by) VALUES ('demo', 'flags', 'f', 'r1', 1, 'x'), ('demo', 'flags', 'g', NULL, 1, 'x')`);
        db.exec(`INSERT INTO events (app, id, type, name, ts, client_ts, received_at, anonymous_id, user_id, user_key, props, url, batch_id) VALUES
          ('demo', 'e1', 'track', '$exposure', 5, 0, 0, 'u', NULL, 'u', '{"flag":"f","variant":"a","version":"v","reason":"SPLIT"}', NULL, 'b'),
          ('demo', 'e2', 'track', '$exposure', 3, 0, 0, 'u', NULL, 'u', '{"flag":"f","variant":"a","version":"w","reason":"SPLIT"}', NULL, 'b')`);
      }
      db.exec('BEGIN');
      try {
        db.exec(readFileSync(join(ROOT, 'worker/migrations', file), 'utf8'));
        db.exec('COMMIT');
      } catch (e) {
        db.exec('ROLLBACK');
        throw new Error(`${file}: ${e.message}`);
      }
    }
    assert.deepEqual(db.prepare('PRAGMA foreign_key_check').all(), []);
    assert.deepEqual(db.prepare('SELECT key, revision FROM stage ORDER BY key').all().map((r) => [r.key, r.revision]), [['f', 'r1'], ['g', null]]);
    db.exec(`INSERT INTO revisions (id, kind, key, body, created_at) VALUES ('r2', 'experiments', 'x', '{}', 2)`);
    assert.throws(() => db.exec(`INSERT INTO stage (app, kind, key, revision, updated_at, updated_by) VALUES ('demo', 'flags', 'h', 'nope', 1, 'x')`), /FOREIGN KEY/);
    assert.throws(() => db.exec(`DELETE FROM revisions WHERE id = 'r1'`), /never deleted/, 'the rebuilt table keeps its triggers');
    assert.equal(db.prepare('SELECT count(*) AS n FROM exposure_variants').get().n, 1, 'stored exposures are folded by 0009');
  });
});
