// The cold tier (#15) through a real collector: raw events past their app's retention move
// from the local D1 into the local R2 bucket `ARCHIVE`, exactly once, across crashes injected
// at every step; the aggregates keep the whole history; DuckDB reads the exported objects and
// agrees with /v1/stats; the daily config backup restores into another app.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { Collector, makeEvent, waitFor } from './harness.mjs';

const DAY = 86_400_000;
const COLUMNS = ['app', 'id', 'type', 'name', 'ts', 'client_ts', 'received_at', 'anonymous_id', 'user_id', 'user_key', 'props', 'url', 'batch_id'];

let collector;
before(async () => { collector = await Collector.start(); });
after(async () => { await collector?.stop(); });

const today = () => Date.now() - (Date.now() % DAY);

/** A fresh app whose raw events stay one day. */
async function appWithRetention(prefix, days = 1) {
  const app = await collector.newApp(prefix);
  const res = await collector.admin('PATCH', `/v1/admin/apps/${app.id}`, { retention_days: days });
  assert.equal(res.status, 200, res.text);
  return app;
}

/** Sends events (in batches of 50) with the app's key; returns them. */
async function send(app, events) {
  for (let i = 0; i < events.length; i += 50) {
    const res = await collector.ingest({ sent_at: Date.now(), events: events.slice(i, i + 50) }, { key: app.ingest_key });
    assert.equal(res.status, 202, res.text);
  }
  return events;
}

/** `perDay` events on each of `days` days ago (midday), alternating two names and five users. */
function oldEvents(days, perDay) {
  return days.flatMap((ago) => Array.from({ length: perDay }, (_, i) => makeEvent({
    name: i % 3 === 0 ? 'purchase' : 'signup',
    anonymous_id: `user-${i % 5}`,
    ts: today() - ago * DAY + 12 * 3_600_000 + i,
    props: { plan: i % 2 ? 'pro' : 'free' },
  })));
}

async function rawCount(app) {
  const res = await collector.stats({ app: app.id, event: 'signup', source: 'raw', interval: 'day', from: today() - 6 * DAY });
  const purchase = await collector.stats({ app: app.id, event: 'purchase', source: 'raw', interval: 'day', from: today() - 6 * DAY });
  const sum = (r) => (r.status === 404 ? 0 : r.json.series.reduce((s, p) => s + p.count, 0));
  return sum(res) + sum(purchase);
}

/** The ids of the app's events still in D1 (every test app has at most 100). */
async function d1Ids(app) {
  const res = await collector.admin('GET', `/v1/events/recent?app=${app.id}&limit=100`);
  assert.equal(res.status, 200, res.text);
  assert.ok(res.json.events.length < 100, 'the whole app fits in one page');
  return res.json.events.map((e) => e.id);
}

/** Every object under a prefix, from R2's own listing (all pages). */
async function listObjects(prefix) {
  const objects = [];
  let cursor;
  do {
    const query = new URLSearchParams({ prefix, ...(cursor ? { cursor } : {}) });
    const res = await collector.admin('GET', `/v1/admin/archive/objects?${query}`);
    assert.equal(res.status, 200, res.text);
    objects.push(...res.json.objects);
    cursor = res.json.cursor;
  } while (cursor);
  return objects;
}

async function download(key) {
  const res = await collector.request('GET', `/v1/admin/archive/object?key=${encodeURIComponent(key)}`,
    { headers: { Authorization: `Bearer ${collector.adminKey}` }, raw: true });
  assert.equal(res.status, 200, key);
  return Buffer.from(await res.arrayBuffer());
}

/** Every line in the app's archived objects. */
async function archivedLines(app) {
  const lines = [];
  for (const object of await listObjects(`events/app=${app.id}/`)) {
    const text = gunzipSync(await download(object.key)).toString('utf8');
    assert.ok(text.endsWith('\n'), 'NDJSON ends each line');
    lines.push(...text.trimEnd().split('\n').map((l) => JSON.parse(l)));
  }
  return lines;
}

async function runArchive() {
  return collector.admin('POST', '/v1/admin/archive/run');
}

async function waitStored(app, expected) {
  await waitFor(async () => (await rawCount(app)) === expected, { what: `${expected} events stored for ${app.id}` });
}

async function aggregateSeries(app, event) {
  const res = await collector.stats({ app: app.id, event, interval: 'day', from: today() - 6 * DAY });
  assert.equal(res.status, 200, res.text);
  return res.json.series;
}

describe('retention per app', () => {
  test('defaults to 30 days, is set through the admin API, and its bounds are enforced', async () => {
    const app = await collector.newApp('keep');
    assert.equal(app.retention_days, 30);
    for (const bad of [0, -3, 3651, 1.5, '7', null]) {
      const res = await collector.admin('PATCH', `/v1/admin/apps/${app.id}`, { retention_days: bad, name: 'renamed' });
      assert.equal(res.status, 400, `${bad}: ${res.text}`);
      assert.equal(res.json.error.field, 'retention_days');
    }
    assert.equal((await collector.admin('GET', `/v1/admin/apps/${app.id}`)).json.name, app.id, 'a refused change changes nothing');
    const created = await collector.admin('POST', '/v1/admin/apps', { id: `short-${Date.now().toString(36)}`, retention_days: 0 });
    assert.equal(created.status, 400);
    const set = await collector.admin('PATCH', `/v1/admin/apps/${app.id}`, { retention_days: 1 });
    assert.equal(set.status, 200);
    assert.equal((await collector.admin('GET', `/v1/admin/apps/${app.id}`)).json.retention_days, 1);
    const status = await collector.admin('GET', `/v1/admin/archive?app=${app.id}`);
    assert.equal(status.json.apps[0].retention_days, 1);
    assert.equal((await collector.admin('GET', '/v1/admin/archive?app=nope')).status, 404);
    assert.equal((await collector.request('POST', '/v1/admin/archive/run')).status, 401);
    assert.equal((await collector.request('GET', '/v1/admin/archive/objects', { headers: { Authorization: `Bearer ${app.ingest_key}` } })).status, 401,
      'an ingest key opens no archive');
  });
});

describe('the archive', () => {
  test('moves old events to R2 once; stats keep the whole history; DuckDB agrees with /v1/stats', async () => {
    const app = await appWithRetention('cold');
    const old = await send(app, oldEvents([4, 3, 2], 20));
    const recent = await send(app, Array.from({ length: 10 }, (_, i) => makeEvent({ name: 'signup', anonymous_id: `user-${i}` })));
    await waitStored(app, 70);
    const signupsBefore = await aggregateSeries(app, 'signup');
    const purchasesBefore = await aggregateSeries(app, 'purchase');

    const run = await runArchive();
    assert.equal(run.status, 200, run.text);
    assert.ok(run.json.events >= 60, `this app's 60 old events at least: ${run.text}`);

    // D1 keeps the recent events only; the aggregates still count everything.
    assert.deepEqual(new Set(await d1Ids(app)), new Set(recent.map((e) => e.id)));
    assert.deepEqual(await aggregateSeries(app, 'signup'), signupsBefore);
    assert.deepEqual(await aggregateSeries(app, 'purchase'), purchasesBefore);
    const raw = await collector.stats({ app: app.id, event: 'signup', source: 'raw', interval: 'day', from: today() - 6 * DAY });
    assert.equal(raw.json.raw_range.archived_events, 60);
    assert.equal(raw.json.raw_range.complete_from, new Date(today() - 1 * DAY).toISOString().replace('.000Z', 'Z'),
      'raw counts are whole from the day after the newest archived day');
    assert.equal(raw.json.series.reduce((s, p) => s + p.count, 0), 10);

    // One object per day, keyed by app, date and rowids, one line per event with the raw fields.
    const objects = await listObjects(`events/app=${app.id}/`);
    assert.equal(objects.length, 3);
    for (const [i, ago] of [4, 3, 2].entries()) {
      const date = new Date(today() - ago * DAY).toISOString().slice(0, 10);
      assert.match(objects[i].key, new RegExp(`^events/app=${app.id}/date=${date}/\\d{12}-\\d{12}\\.ndjson\\.gz$`));
    }
    const lines = await archivedLines(app);
    assert.equal(lines.length, 60);
    assert.deepEqual(new Set(lines.map((l) => l.id)), new Set(old.map((e) => e.id)));
    for (const line of lines) assert.deepEqual(Object.keys(line), COLUMNS);
    const sent = old.find((e) => e.id === lines[0].id);
    assert.deepEqual(lines[0].props, sent.props);
    assert.equal(lines[0].client_ts, sent.ts, 'the client clock as sent (ts is skew-corrected)');

    // The status says what the archive holds.
    const status = (await collector.admin('GET', `/v1/admin/archive?app=${app.id}`)).json.apps[0];
    assert.equal(status.objects, 3);
    assert.equal(status.events, 60);
    assert.equal(status.bytes, objects.reduce((s, o) => s + o.size, 0));
    assert.equal(status.unfinished, 0);
    assert.equal(status.last_error, null);
    assert.ok(status.last_run_at);

    // A second run moves nothing more; the archived events sent again are absorbed as duplicates.
    const again = await runArchive();
    assert.equal(again.status, 200, again.text);
    await send(app, old.slice(0, 30));
    const marker = await send(app, [makeEvent({ name: 'purchase', anonymous_id: 'user-1' })]);
    await waitStored(app, 11);
    assert.deepEqual(new Set(await d1Ids(app)), new Set([...recent, ...marker].map((e) => e.id)));
    assert.equal((await listObjects(`events/app=${app.id}/`)).length, 3);
    assert.deepEqual(await aggregateSeries(app, 'signup'), signupsBefore);

    // DuckDB over a local copy of the objects, as the README's recipe reads them.
    const dir = mkdtempSync(join(tmpdir(), 'telltale-archive-'));
    try {
      for (const object of objects) {
        const file = join(dir, object.key);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, await download(object.key));
      }
      const duck = await (await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false' })).connect();
      const source = `read_json('${dir}/events/app=${app.id}/*/*.ndjson.gz', format = 'newline_delimited')`;
      const perDay = (await duck.runAndReadAll(
        `SELECT name, strftime(make_timestamp(ts * 1000), '%Y-%m-%d') AS day, count(*) AS events, count(DISTINCT user_key) AS users
         FROM ${source} GROUP BY ALL ORDER BY name, day`)).getRowObjects();
      assert.equal(perDay.length, 6);
      for (const row of perDay) {
        const series = row.name === 'signup' ? signupsBefore : purchasesBefore;
        const point = series.find((p) => p.t.slice(0, 10) === row.day);
        assert.ok(point, `a /v1/stats bucket for ${row.day}`);
        assert.equal(Number(row.events), point.count, `${row.name} on ${row.day}`);
        assert.equal(Number(row.users), point.users, `${row.name} users on ${row.day}`);
      }
      // The README's funnel: signup, then purchase, per user.
      const funnel = (await duck.runAndReadAll(
        `WITH s AS (SELECT user_key, min(ts) AS at FROM ${source} WHERE name = 'signup' GROUP BY user_key),
              p AS (SELECT user_key, min(ts) AS at FROM ${source} WHERE name = 'purchase' GROUP BY user_key)
         SELECT count(*) AS signed_up, count(p.user_key) FILTER (WHERE p.at > s.at) AS then_purchased
         FROM s LEFT JOIN p USING (user_key)`)).getRowObjects()[0];
      assert.equal(Number(funnel.signed_up), 5);
      assert.ok(Number(funnel.then_purchased) <= 5);
      duck.closeSync();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const step of ['after_plan', 'after_write', 'after_verify', 'in_delete']) {
    test(`a crash ${step.replace('_', ' ')} leaves each event in D1, R2 or both; the next run ends it without a duplicate`, async () => {
      const app = await appWithRetention(`crash-${step.replace('_', '-')}`);
      const old = await send(app, oldEvents([3, 2], 15));
      const recent = await send(app, Array.from({ length: 5 }, () => makeEvent({ name: 'signup' })));
      await waitStored(app, 35);
      const aggregates = await aggregateSeries(app, 'signup');
      const faults = await collector.admin('PUT', '/v1/admin/faults', { archive: step });
      assert.equal(faults.status, 200, faults.text);

      const crashed = await runArchive();
      if (step === 'in_delete') {
        // A failing statement in the delete transaction: D1 rolls it back whole, and the run
        // reports it for this app and goes on with the others.
        assert.equal(crashed.status, 200, crashed.text);
        assert.equal(crashed.json.errors.length, 1, crashed.text);
        assert.match(crashed.json.errors[0], new RegExp(`^${app.id}: .*deleting archived events`));
      } else {
        assert.equal(crashed.status, 500, crashed.text);
        assert.equal(crashed.json.error.code, 'fault_injected');
      }
      const inD1 = new Set(await d1Ids(app));
      const lines = await archivedLines(app);
      const inR2 = new Set(lines.map((l) => l.id));
      assert.equal(inR2.size, lines.length, 'no line twice in R2');
      for (const event of [...old, ...recent]) assert.ok(inD1.has(event.id) || inR2.has(event.id), `${event.id} is somewhere`);
      const written = await listObjects(`events/app=${app.id}/`);
      if (step === 'after_plan') assert.equal(written.length, 0);
      else assert.ok(written.length >= 1);
      const unfinished = (await collector.admin('GET', `/v1/admin/archive?app=${app.id}`)).json.apps[0].unfinished;
      assert.ok(unfinished >= 1, 'the stopped run left an unfinished object');

      const resumed = await runArchive();
      assert.equal(resumed.status, 200, resumed.text);
      assert.deepEqual(new Set(await d1Ids(app)), new Set(recent.map((e) => e.id)));
      const after = await archivedLines(app);
      assert.equal(after.length, 30, 'each old event once');
      assert.deepEqual(new Set(after.map((l) => l.id)), new Set(old.map((e) => e.id)));
      const objects = await listObjects(`events/app=${app.id}/`);
      assert.equal(objects.length, 2, 'one object per day, none written twice');
      // The object written before the crash was not overwritten by the resumed run.
      for (const object of written) {
        assert.equal(objects.find((o) => o.key === object.key)?.uploaded, object.uploaded, `${object.key} kept`);
      }
      assert.equal((await collector.admin('GET', `/v1/admin/archive?app=${app.id}`)).json.apps[0].unfinished, 0);
      assert.deepEqual(await aggregateSeries(app, 'signup'), aggregates);
      const log = await collector.config(app.id, 'GET', '/audit');
      const moves = log.json.entries.filter((e) => e.action === 'events.archive');
      assert.equal(moves.length, 2, 'one audit line per object');
    });
  }

  test('a span of large events is cut by size: every event still moves, once', async () => {
    const app = await appWithRetention('large');
    // 140 events of about 61 KB (60 props of 1,000 characters): over 8 MB, the most one
    // scan takes, so the archive needs more than one scan and cuts between them.
    const big = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`p${i}`, `${i}`.padEnd(1_000, 'x')]));
    const events = Array.from({ length: 140 }, (_, i) => makeEvent({
      name: 'signup', anonymous_id: `user-${i % 5}`, ts: today() - 2 * DAY + i, props: big,
    }));
    for (let i = 0; i < events.length; i += 7) {
      const res = await collector.ingest({ sent_at: Date.now(), events: events.slice(i, i + 7) }, { key: app.ingest_key });
      assert.equal(res.status, 202, res.text);
    }
    await send(app, [makeEvent({ name: 'signup' })]);
    await waitStored(app, 141);
    const run = await runArchive();
    assert.equal(run.status, 200, run.text);
    assert.deepEqual(run.json.errors, []);
    const objects = await listObjects(`events/app=${app.id}/`);
    assert.ok(objects.length >= 2, `more than one object: ${objects.length}`);
    const lines = await archivedLines(app);
    assert.equal(lines.length, 140);
    assert.equal(new Set(lines.map((l) => l.id)).size, 140);
    assert.equal((await d1Ids(app)).length, 1);
  });

  test('the daily config backup restores into another app', async () => {
    const app = await appWithRetention('backup', 30);
    await collector.publishConfig(app.id, [['flags', 'checkout', { variants: [{ key: 'on', value: true }, { key: 'off', value: false }], default_variant: 'off' }]]);
    const run = await runArchive();
    assert.equal(run.status, 200, run.text);
    const date = new Date().toISOString().slice(0, 10);
    const key = `config/${date}/app=${app.id}.json`;
    assert.ok((await listObjects(`config/${date}/`)).some((o) => o.key === key), key);
    const bundle = JSON.parse((await download(key)).toString('utf8'));
    const restored = await collector.newApp('restored');
    const imported = await collector.config(restored.id, 'POST', '/import', bundle);
    assert.equal(imported.status, 201, imported.text);
    const a = (await collector.config(app.id, 'GET', '/commits/head')).json;
    const b = (await collector.config(restored.id, 'GET', '/commits/head')).json;
    assert.deepEqual(b.snapshot, a.snapshot);
    // Once a day: the next run writes no second backup.
    const again = await runArchive();
    assert.equal((await listObjects(`config/${date}/`)).filter((o) => o.key === key).length, 1);
    assert.equal(again.status, 200);
  });

  test('object reads and listings take archive keys only', async () => {
    const get = (key) => collector.admin('GET', `/v1/admin/archive/object?key=${encodeURIComponent(key)}`);
    for (const bad of ['../secrets', 'events/../x', 'other/key', '', 'events/a b']) {
      const res = await get(bad);
      assert.equal(res.status, 400, `${bad}: ${res.text}`);
      assert.equal(res.json.error.field, 'key');
    }
    assert.equal((await get('events/app=none/date=2020-01-01/000000000001-000000000002.ndjson.gz')).status, 404);
    assert.equal((await collector.admin('GET', '/v1/admin/archive/objects?prefix=x/')).status, 400);
    assert.equal((await collector.admin('GET', '/v1/admin/archive/objects?prefix=events/&color=red')).status, 400);
    const fault = await collector.admin('PUT', '/v1/admin/faults', { archive: 'later' });
    assert.equal(fault.status, 400);
    assert.equal(fault.json.error.field, 'archive');
  });
});
