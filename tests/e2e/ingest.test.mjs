// Ingest and stats, end to end through `wrangler dev` (real local D1, KV, Queue and
// rate limiter), with fresh state.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Collector, makeEvent, uuidv7, waitFor } from './harness.mjs';

let collector;
before(async () => { collector = await Collector.start(); });
after(async () => { await collector?.stop(); });

describe('ingest then stats', () => {
  test('counts are exact, per bucket, with distinct users and top values', async () => {
    const app = await collector.createApp('shop');
    const now = Date.now();
    const hourAgo = now - 3_600_000;
    const events = [
      ...['rust', 'rust', 'wasm', 'rust', 'sql'].map((query, i) => makeEvent({ name: 'search', anonymous_id: `a${i % 3}`, props: { query } })),
      makeEvent({ name: 'search', anonymous_id: 'a9', ts: hourAgo, props: { query: 'go' } }),
      makeEvent({ name: 'enroll', anonymous_id: 'a1', user_id: 'u1', props: { course: 'rust-101' } }),
    ];
    const res = await collector.ingest({ sent_at: now, events }, { key: app.ingest_key });
    assert.equal(res.status, 202, res.text);
    assert.deepEqual(res.json.rejected, []);
    assert.equal(res.json.accepted, 7);
    await collector.waitForCount('shop', 'search', 6);
    const stats = await collector.stats({ app: 'shop', event: 'search', by: 'query' });
    assert.equal(stats.status, 200);
    const nonZero = stats.json.series.filter((p) => p.count > 0);
    const bucket = (ms) => new Date(ms - (ms % 3_600_000)).toISOString().replace('.000Z', 'Z');
    assert.deepEqual(nonZero, [
      { t: bucket(hourAgo), count: 1, users: 1 },
      { t: bucket(now), count: 5, users: 3 },
    ].sort((a, b) => a.t.localeCompare(b.t)));
    assert.deepEqual(stats.json.top, [
      { value: 'rust', count: 3 }, { value: 'go', count: 1 }, { value: 'sql', count: 1 }, { value: 'wasm', count: 1 },
    ]);
    assert.match(stats.json.from, /Z$/);
    assert.equal(await collector.count('shop', 'enroll'), 1);
  });

  test('aggregates equal what the raw event store implies', async () => {
    for (const interval of ['hour', 'day']) {
      const q = { app: 'shop', event: 'search', interval, by: 'query' };
      const agg = await collector.stats(q);
      const raw = await collector.stats({ ...q, source: 'raw' });
      assert.equal(raw.json.source, 'raw');
      assert.deepEqual(agg.json.series, raw.json.series, interval);
      assert.deepEqual(agg.json.top, raw.json.top, interval);
    }
  });

  test('CSV by parameter and by Accept header', async () => {
    const csv = await collector.admin('GET', '/v1/stats?app=shop&event=search&format=csv');
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get('content-type'), /^text\/csv/);
    const lines = csv.text.trim().split('\n');
    assert.equal(lines[0], 't,count,users');
    assert.equal(lines.slice(1).reduce((s, l) => s + Number(l.split(',')[1]), 0), 6);
    const top = await collector.request('GET', '/v1/stats?app=shop&event=search&by=query',
      { headers: { Authorization: `Bearer ${collector.adminKey}`, Accept: 'text/csv' } });
    assert.equal(top.text.split('\n')[1], 'rust,3');
  });
});

describe('exactly once', () => {
  const pipeline = async () => (await collector.admin('GET', '/v1/admin/pipeline')).json;
  /** Stats by `by` from the aggregates and from a raw recount, which must agree. */
  const bothWays = async (event, by) => {
    const q = { app: 'demo', event, interval: 'hour', by };
    const [agg, raw] = [(await collector.stats(q)).json, (await collector.stats({ ...q, source: 'raw' })).json];
    assert.deepEqual(agg.series, raw.series, 'series');
    assert.deepEqual(agg.top, raw.top, 'top values');
    return agg;
  };

  test('a batch sent twice is counted once, absorbed downstream by the event id', async () => {
    const before = (await pipeline()).stored;
    const events = Array.from({ length: 5 }, () => makeEvent({ name: 'retry_probe' }));
    const batch = { sent_at: Date.now(), batch_id: uuidv7(), events };
    const first = await collector.ingest(batch);
    const second = await collector.ingest(batch);
    // The edge keeps no memory of batches (no KV write per request): a resend is
    // accepted again, and D1's (app, id) key absorbs it.
    assert.deepEqual([first.status, first.json.accepted, first.json.duplicates], [202, 5, 0]);
    assert.deepEqual([second.status, second.json.accepted, second.json.duplicates], [202, 5, 0]);
    const third = await collector.ingest({ ...batch, batch_id: uuidv7() });
    assert.equal(third.json.accepted, 5);
    await waitFor(async () => (await pipeline()).stored.duplicates_absorbed >= before.duplicates_absorbed + 10,
      { what: 'both resends absorbed' });
    const after = (await pipeline()).stored;
    assert.equal(after.events - before.events, 5);
    assert.equal(await collector.count('demo', 'retry_probe'), 5);
    assert.equal(await collector.count('demo', 'retry_probe', { source: 'raw' }), 5);
    assert.ok(after.rows_written > before.rows_written && after.rows_written_per_event > 0, JSON.stringify(after));
  });

  test('a redelivered half-written batch folds only its new half: counts, users and values stay exact', async () => {
    const ts = Date.now() - 60_000;
    const event = (i) => makeEvent({ name: 'half_probe', ts, anonymous_id: `half-user-${i % 4}`, props: { n: `v${i % 3}` } });
    const all = Array.from({ length: 12 }, (_, i) => event(i));
    // The first half is stored first, as if a delivery had got that far.
    await collector.ingest({ batch_id: uuidv7(), events: all.slice(0, 6) });
    await collector.waitForCount('demo', 'half_probe', 6);
    // Then the whole batch comes again, and once more in the same moment.
    const whole = { batch_id: uuidv7(), events: all };
    await Promise.all([collector.ingest(whole), collector.ingest(whole)]);
    await collector.waitForCount('demo', 'half_probe', 12);
    await waitFor(async () => (await collector.count('demo', 'half_probe', { source: 'raw' })) === 12);
    const agg = await bothWays('half_probe', 'n');
    assert.deepEqual(agg.series.filter((p) => p.count > 0).map((p) => [p.count, p.users]), [[12, 4]]);
    assert.deepEqual(Object.fromEntries(agg.top.map((t) => [t.value, t.count])), { v0: 4, v1: 4, v2: 4 });
  });

  test('duplicate ids inside one batch count once', async () => {
    const e = makeEvent({ name: 'dup_in_batch' });
    const res = await collector.ingest({ events: [e, e, makeEvent({ name: 'dup_in_batch' })] });
    assert.deepEqual([res.json.accepted, res.json.duplicates], [2, 1]);
    await collector.waitForCount('demo', 'dup_in_batch', 2);
  });
});

describe('authentication and origins', () => {
  const body = () => ({ events: [makeEvent()] });

  test('a missing or wrong ingest key is a 401', async () => {
    const none = await collector.request('POST', '/v1/events', { body: body() });
    assert.deepEqual([none.status, none.json.error.code], [401, 'missing_key']);
    const wrong = await collector.ingest(body(), { key: 'tt_ik_not_a_real_key' });
    assert.deepEqual([wrong.status, wrong.json.error.code], [401, 'invalid_key']);
  });

  test('the key may ride in ?key= for beacons, as text/plain', async () => {
    const res = await collector.request('POST', `/v1/events?key=${collector.ingestKey}`,
      { body: JSON.stringify({ events: [makeEvent({ name: 'beacon_probe' })] }), headers: { 'Content-Type': 'text/plain;charset=UTF-8' } });
    assert.equal(res.status, 202, res.text);
    await collector.waitForCount('demo', 'beacon_probe', 1);
  });

  test('origins are bound to the app; preflight is answered', async () => {
    const app = await collector.createApp('site', ['https://site.example']);
    const ok = await collector.ingest(body(), { key: app.ingest_key, headers: { Origin: 'https://site.example' } });
    assert.equal(ok.status, 202);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://site.example');
    const bad = await collector.ingest(body(), { key: app.ingest_key, headers: { Origin: 'https://evil.example' } });
    assert.deepEqual([bad.status, bad.json.error.code, bad.json.error.field], [403, 'origin_not_allowed', 'Origin']);
    assert.equal(bad.headers.get('access-control-allow-origin'), null);
    const pre = await collector.request('OPTIONS', '/v1/events', {
      headers: { Origin: 'https://site.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
    });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get('access-control-allow-headers'), /Authorization/);
    assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
  });

  test('admin endpoints need the admin key', async () => {
    const none = await collector.request('GET', '/v1/stats?app=demo&event=search');
    assert.deepEqual([none.status, none.json.error.code], [401, 'missing_admin_key']);
    const wrong = await collector.request('GET', '/v1/admin/apps', { headers: { Authorization: 'Bearer nope' } });
    assert.deepEqual([wrong.status, wrong.json.error.code], [401, 'invalid_admin_key']);
    const ingestKeyAsAdmin = await collector.request('GET', '/v1/admin/apps', { headers: { Authorization: `Bearer ${collector.ingestKey}` } });
    assert.equal(ingestKeyAsAdmin.status, 401, 'ingest keys are write-only');
  });

  test('apps are created, listed and validated', async () => {
    const mine = await collector.newApp('listed');
    const list = await collector.admin('GET', '/v1/admin/apps');
    assert.ok(['demo', mine.id].every((id) => list.json.apps.some((a) => a.id === id)));
    const dup = await collector.admin('POST', '/v1/admin/apps', { id: mine.id });
    assert.deepEqual([dup.status, dup.json.error.code], [409, 'app_exists']);
    const badOrigin = await collector.admin('POST', '/v1/admin/apps', { id: 'x1', allowed_origins: ['https://a.example/path'] });
    assert.deepEqual([badOrigin.status, badOrigin.json.error.field], [400, 'allowed_origins[0]']);
    const badId = await collector.admin('POST', '/v1/admin/apps', { id: 'Bad Id' });
    assert.deepEqual([badId.status, badId.json.error.field], [400, 'id']);
    const unknownField = await collector.admin('POST', '/v1/admin/apps', { id: 'x2', origins: [] });
    assert.equal(unknownField.status, 400);
    const missing = await collector.admin('GET', '/v1/admin/apps/nope');
    assert.deepEqual([missing.status, missing.json.error.code], [404, 'unknown_app']);
  });
});

describe('bad input gets a structured 4xx, never a 5xx', () => {
  test('malformed JSON, wrong envelope, content type, size and batch limits', async () => {
    const cases = [
      [{ body: '{"events": [', headers: {} }, 400, 'malformed_json'],
      [{ body: '[]', headers: {} }, 400, 'invalid_type'],
      [{ body: '{"events": {}}', headers: {} }, 400, 'invalid_type'],
      [{ body: '{"evnts": []}', headers: {} }, 400, 'unknown_field'],
      [{ body: '{"events": [], "sent_at": 1700000000}', headers: {} }, 400, 'invalid_value'],
      [{ body: '{"events": []}', headers: { 'Content-Type': 'application/xml' } }, 415, 'unsupported_media_type'],
      [{ body: JSON.stringify({ events: Array.from({ length: 501 }, () => makeEvent()) }), headers: {} }, 413, 'too_many_events'],
      [{ body: JSON.stringify({ events: [makeEvent({ props: { pad: 'x'.repeat(600_000) } })] }), headers: {} }, 413, 'body_too_large'],
    ];
    for (const [{ body, headers }, status, code] of cases) {
      const res = await collector.request('POST', '/v1/events',
        { body, headers: { Authorization: `Bearer ${collector.ingestKey}`, 'Content-Type': 'application/json', ...headers } });
      assert.equal(res.status, status, `${code}: ${res.text}`);
      assert.equal(res.json.error.code, code);
      assert.equal(typeof res.json.error.message, 'string');
      assert.ok('field' in res.json.error);
    }
  });

  test('valid events are accepted even when others in the batch are rejected', async () => {
    const res = await collector.ingest({ events: [makeEvent({ name: 'mixed' }), { id: 'bad' }, makeEvent({ name: 'mixed', props: { deep: { x: 1 } } })] });
    assert.equal(res.status, 202);
    assert.equal(res.json.accepted, 1);
    assert.deepEqual(res.json.rejected.map((r) => [r.index, r.field]), [[1, 'events[1].id'], [2, 'events[2].props.deep']]);
    await collector.waitForCount('demo', 'mixed', 1);
  });

  test('the shared validation vectors give the same verdicts over HTTP', async () => {
    const doc = JSON.parse(readFileSync(new URL('../spec/ingest/events.json', import.meta.url), 'utf8'));
    const materialize = (fields, now) => Object.fromEntries(Object.entries(fields)
      .map(([k, v]) => (k === 'ts_offset_ms' ? ['ts', now + v] : [k, v])));
    for (const c of doc.cases) {
      const now = Date.now();
      const event = { ...materialize(doc.base_event, now), ...materialize(c.patch || {}, now), id: uuidv7() };
      if (c.patch?.id) event.id = c.patch.id.toLowerCase() === c.patch.id ? c.patch.id : uuidv7().toUpperCase();
      for (const f of c.remove || []) delete event[f];
      const res = await collector.ingest({ sent_at: now, events: [event] });
      assert.equal(res.status, 202, `${c.name}: ${res.text}`);
      if (c.expect.accepted) {
        assert.equal(res.json.accepted + res.json.duplicates, 1, `${c.name}: ${res.text}`);
      } else {
        assert.deepEqual([res.json.rejected[0]?.code, res.json.rejected[0]?.field], [c.expect.code, c.expect.field], c.name);
      }
    }
  });

  test('1,000 random mutations of a valid batch never get a 5xx', async () => {
    // Two apps share the load so the rate limiter (1,000 per 10 s per app and client) stays out of the way.
    const apps = [await collector.createApp('fuzz-a'), await collector.createApp('fuzz-b')];
    let seed = 0x2545f491;
    const rand = () => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) / 4294967296; };
    const pick = (xs) => xs[Math.floor(rand() * xs.length)];
    const junk = () => pick([null, true, -1, 1e308, '', 'x'.repeat(2000), [], {}, { a: { b: 1 } }, '\u0000', 'é', 17.5, '2026-01-01']);
    const statuses = new Map();
    for (let i = 0; i < 1000; i++) {
      const batch = { sent_at: Date.now(), batch_id: uuidv7(), events: [makeEvent({ props: { q: 'x' } }), makeEvent()] };
      const target = pick(['envelope', 'event', 'props', 'text']);
      if (target === 'envelope') batch[pick(['sent_at', 'batch_id', 'events', 'dropped', 'extra'])] = junk();
      if (target === 'event') batch.events[0][pick(['id', 'type', 'name', 'ts', 'anonymous_id', 'user_id', 'props', 'url', 'new'])] = junk();
      if (target === 'props') batch.events[1].props[pick(['q', '', 'k'.repeat(200)])] = junk();
      let body = JSON.stringify(batch);
      if (target === 'text') {
        const at = Math.floor(rand() * body.length);
        body = body.slice(0, at) + pick(['', '"', '{', ']', '\\', ',', 'null']) + body.slice(at + 1);
      }
      const res = await collector.ingest(body, { key: apps[i % 2].ingest_key });
      statuses.set(res.status, (statuses.get(res.status) || 0) + 1);
      assert.ok(res.status < 500, `mutation ${i} got ${res.status}: ${body.slice(0, 300)} -> ${res.text}`);
      if (res.status >= 400) assert.ok(res.json?.error?.code, `mutation ${i}: unstructured error ${res.text}`);
    }
    assert.ok(statuses.get(202) > 100 && statuses.get(400) > 50, JSON.stringify([...statuses]));
  });
});

describe('unknown names are errors, never "everything"', () => {
  test('unknown app, event, property and parameter', async () => {
    const cases = [
      [{ app: 'nope', event: 'search' }, 404, 'unknown_app', 'app'],
      [{ app: 'shop', event: 'serch' }, 404, 'unknown_event', 'event'],
      [{ app: 'shop', event: 'search', by: 'qeury' }, 404, 'unknown_property', 'by'],
      [{ app: 'shop', event: 'search', evnt: 'x' }, 400, 'unknown_parameter', 'evnt'],
      [{ app: 'shop' }, 400, 'required', 'event'],
      [{ app: 'shop', event: 'search', from: 'last tuesday' }, 400, 'invalid_value', 'from'],
      [{ app: 'shop', event: 'search', interval: 'week' }, 400, 'invalid_value', 'interval'],
      [{ app: 'shop', event: 'search', from: '2001-01-01T00:00:00Z' }, 400, 'range_too_large', 'from'],
    ];
    for (const [query, status, code, field] of cases) {
      const res = await collector.stats(query);
      assert.deepEqual([res.status, res.json.error.code, res.json.error.field], [status, code, field], JSON.stringify(query));
      assert.match(res.json.error.message, new RegExp(field === 'by' ? 'qeury' : '.'));
    }
    const catalog = await collector.admin('GET', '/v1/catalog?app=nope');
    assert.deepEqual([catalog.status, catalog.json.error.code], [404, 'unknown_app']);
    const route = await collector.request('GET', '/v1/nothing');
    assert.deepEqual([route.status, route.json.error.code], [404, 'not_found']);
  });

  test('the catalogue lists known events and properties', async () => {
    const res = await collector.admin('GET', '/v1/catalog?app=shop');
    assert.deepEqual(res.json.events, [{ name: 'enroll', props: ['course'] }, { name: 'search', props: ['query'] }]);
  });
});

describe('rate limiting', () => {
  // Its own collector, with the limit at 50 per 10 s instead of wrangler.toml's 1,000: on a
  // busy 2-core VM the local collector answers about 100 requests a second, so a window of
  // 1,000 was not always filled (the limit itself is configuration; this tests the limiter).
  let limitedCollector;
  before(async () => { limitedCollector = await Collector.start({ ingestLimit: 50 }); });
  after(async () => { await limitedCollector?.stop(); });

  test('bursts past the limit get 429 with Retry-After', async () => {
    const app = await limitedCollector.createApp('burst');
    const body = JSON.stringify({ events: [] });
    const wave = () => Promise.all(Array.from({ length: 20 }, () => limitedCollector.ingest(body, { key: app.ingest_key })));
    const first = await wave();
    assert.deepEqual([...new Set(first.map((r) => r.status))], [202], 'under the limit: accepted');
    let limited;
    let sent = first.length;
    const started = Date.now();
    // A bounded loop: a window of 10 s holds at most 50, so a 429 comes within a few waves.
    while (!limited && Date.now() - started < 60_000) {
      const answers = await wave();
      sent += answers.length;
      limited = answers.find((r) => r.status === 429);
    }
    assert.ok(limited, `no 429 within ${sent} requests`);
    assert.equal(limited.json.error.code, 'rate_limited');
    assert.ok(Number(limited.headers.get('retry-after')) > 0);
  });
});
