// Segment-spec ingest (`/v1/batch`, `/v1/track`, ...) through `wrangler dev`, driven by
// the real libraries unchanged (@segment/analytics-node, @rudderstack/rudder-sdk-node),
// pointed at the collector by their host option, and attacked with raw requests.
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { Analytics as SegmentAnalytics } from '@segment/analytics-node';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';
import { Collector, makeEvent } from './harness.mjs';

let collector;
before(async () => { collector = await Collector.start(); });
after(async () => { await collector?.stop(); });

const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString('base64')}`;
const segmentPost = (path, body, headers = {}) => collector.request('POST', path, { body, headers });
const setFaults = async (faults) => {
  const res = await collector.admin('PUT', '/v1/admin/faults', faults);
  assert.equal(res.status, 200, res.text);
};

/** Counts of the named events, once they are all as expected (or the last seen). */
async function waitForCounts(app, expected) {
  for (const [event, count] of Object.entries(expected)) await collector.waitForCount(app, event, count);
}

describe('the libraries, unchanged, pointed at the collector', () => {
  test('@segment/analytics-node: every call kind lands once, props flattened, with the page URL', async () => {
    const app = await collector.newApp('segment');
    const analytics = new SegmentAnalytics({ writeKey: app.ingest_key, host: collector.url, flushAt: 4, flushInterval: 200 });
    const errors = [];
    analytics.on('error', (e) => errors.push(e));
    for (let i = 0; i < 6; i++) {
      analytics.track({ userId: `u${i % 3}`, event: 'Order Completed', properties: { plan: i % 2 ? 'pro' : 'free', cart: { total: 10 + i, items: ['a', 'b'] } },
        context: { page: { url: 'https://shop.example/checkout' } } });
    }
    analytics.page({ anonymousId: 'a1', name: 'Pricing', category: 'Marketing', properties: { path: '/pricing' } });
    analytics.screen({ userId: 'u1', name: 'Settings' });
    analytics.identify({ userId: 'u1', traits: { email: 'u1@example.com', company: { name: 'Acme' } } });
    analytics.group({ userId: 'u1', groupId: 'g1', traits: { size: 12 } });
    analytics.alias({ userId: 'u9', previousId: 'a1' });
    await analytics.closeAndFlush({ timeout: 20_000 });
    assert.deepEqual(errors, []);
    await waitForCounts(app.id, { 'Order Completed': 6, $pageview: 1, $screen: 1, $identify: 1, $group: 1, $alias: 1 });
    const byPlan = await collector.stats({ app: app.id, event: 'Order Completed', by: 'plan' });
    assert.deepEqual(byPlan.json.top, [{ value: 'free', count: 3 }, { value: 'pro', count: 3 }]);
    const byTotal = await collector.stats({ app: app.id, event: 'Order Completed', by: 'cart.total' });
    assert.equal(byTotal.json.top.length, 6, 'nested properties flattened with dots');
    const byItems = await collector.stats({ app: app.id, event: 'Order Completed', by: 'cart.items' });
    assert.deepEqual(byItems.json.top, [{ value: '["a","b"]', count: 6 }], 'arrays as their JSON text');
    const recent = await collector.admin('GET', `/v1/events/recent?app=${app.id}&limit=50`);
    assert.equal(recent.status, 200, recent.text);
    const order = recent.json.events.find((e) => e.name === 'Order Completed');
    assert.equal(order.url, 'https://shop.example/checkout');
    const pageview = recent.json.events.find((e) => e.name === '$pageview');
    assert.deepEqual([pageview.type, pageview.props.name, pageview.props.category], ['page', 'Pricing', 'Marketing']);
  });

  test('@rudderstack/rudder-sdk-node (gzip bodies by default) lands every call once', async () => {
    const app = await collector.newApp('rudder');
    const client = new RudderAnalytics(app.ingest_key, { dataPlaneUrl: collector.url, flushAt: 3, flushInterval: 200, logLevel: 'error' });
    for (let i = 0; i < 7; i++) client.track({ anonymousId: `anon-${i}`, event: 'Lesson Viewed', properties: { lesson: `l${i % 2}` } });
    client.page({ anonymousId: 'anon-1', name: 'Home' });
    client.identify({ userId: 'student-1', traits: { role: 'student' } });
    await client.flush();
    await waitForCounts(app.id, { 'Lesson Viewed': 7, $pageview: 1, $identify: 1 });
  });

  test('a library that retries after the collector stored the batch and answered 500 is counted once', async (t) => {
    const app = await collector.newApp('retry');
    t.after(() => setFaults({}));
    await setFaults({ ingest: ['store_then_500'] });
    const analytics = new SegmentAnalytics({ writeKey: app.ingest_key, host: collector.url, flushAt: 5, flushInterval: 200, maxRetries: 3 });
    for (let i = 0; i < 5; i++) analytics.track({ userId: 'u', event: 'Retried', properties: { i } });
    await analytics.closeAndFlush({ timeout: 20_000 });
    const rudder = new RudderAnalytics(app.ingest_key, { dataPlaneUrl: collector.url, flushAt: 4, logLevel: 'error' });
    await setFaults({ ingest: ['store_then_500'] });
    for (let i = 0; i < 4; i++) rudder.track({ userId: 'u', event: 'Retried Rudder', properties: { i } });
    await rudder.flush().catch(() => {});
    await waitForCounts(app.id, { Retried: 5, 'Retried Rudder': 4 });
    // Held, not just reached: nothing more arrives.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await collector.count(app.id, 'Retried'), 5);
    assert.equal(await collector.count(app.id, 'Retried Rudder'), 4);
  });
});

describe('the wire, as an attacker or a careless client would use it', () => {
  test('keys: Basic user, writeKey in the body, Bearer; missing or wrong keys are 401', async () => {
    const app = await collector.newApp('keys');
    const message = (event) => ({ event, userId: 'u', messageId: `${event}-1` });
    for (const [how, headers, body] of [
      ['basic', { Authorization: basic(app.ingest_key) }, message('ViaBasic')],
      ['writeKey', {}, { ...message('ViaWriteKey'), writeKey: app.ingest_key }],
      ['bearer', { Authorization: `Bearer ${app.ingest_key}` }, message('ViaBearer')],
    ]) {
      const res = await segmentPost('/v1/track', body, headers);
      assert.equal(res.status, 200, `${how}: ${res.text}`);
      assert.deepEqual(res.json, { success: true });
    }
    await waitForCounts(app.id, { ViaBasic: 1, ViaWriteKey: 1, ViaBearer: 1 });
    const none = await segmentPost('/v1/track', message('NoKey'));
    assert.equal(none.status, 401);
    assert.equal(none.json.error.code, 'missing_key');
    const wrong = await segmentPost('/v1/track', message('WrongKey'), { Authorization: basic('tt_ik_nope') });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error.code, 'invalid_key');
    const wrongBody = await segmentPost('/v1/track', { ...message('WrongKey'), writeKey: 'x'.repeat(500) });
    assert.equal(wrongBody.status, 401);
    // A malformed Authorization header is refused, as on /v1/events, even with a good writeKey.
    for (const header of ['Basic ###', 'Token abc', 'Basic Og==']) {
      const broken = await segmentPost('/v1/track', { ...message('Broken'), writeKey: app.ingest_key }, { Authorization: header });
      assert.equal(broken.status, 401, header);
    }
    // Without a key nothing is translated: a body that would be refused is a 401, not a 400.
    const unkeyed = await segmentPost('/v1/batch', { batch: [{ type: 'teleport' }] });
    assert.equal(unkeyed.status, 401);
    // A header key wins over the body's: the body cannot pick another app.
    const other = await collector.newApp('other');
    const mixed = await segmentPost('/v1/track', { ...message('Mixed'), writeKey: other.ingest_key }, { Authorization: basic(app.ingest_key) });
    assert.equal(mixed.status, 200, mixed.text);
    await collector.waitForCount(app.id, 'Mixed', 1);
    assert.equal(await collector.count(other.id, 'Mixed'), null);
  });

  test('one bad message refuses the whole request with the sender\'s field path; nothing is stored', async () => {
    const app = await collector.newApp('bad');
    const headers = { Authorization: basic(app.ingest_key) };
    const good = { type: 'track', event: 'Kept Out', userId: 'u' };
    const cases = [
      [{ batch: [good, { type: 'track', userId: 'u' }] }, 400, 'batch[1].event'],
      [{ batch: [good, { type: 'teleport', userId: 'u' }] }, 400, 'batch[1].type'],
      [{ batch: [good, { type: 'track', event: 'x', userId: 'u', properties: { ['k'.repeat(200)]: 1 } }] }, 400, `batch[1].properties.${'k'.repeat(200)}`],
      [{ batch: [good, { type: 'track', event: 'x', userId: 'u', properties: { v: 'v'.repeat(2000) } }] }, 400, 'batch[1].properties.v'],
      [{ batch: [good, { type: 'track', event: 'x', userId: 'u', timestamp: '2001-01-01T00:00:00Z' }] }, 400, 'batch[1].timestamp'],
      [{ batch: [good, { type: 'track', event: 'x\u0007', userId: 'u' }] }, 400, 'batch[1].event'],
      [{ batch: [good, { type: 'track', event: 'x', userId: 'u', properties: { big: 'x'.repeat(33_000) } }] }, 400, 'batch[1]'],
      [{ batch: 'nope' }, 400, 'batch'],
      [{ batch: Array.from({ length: 501 }, () => good) }, 413, 'events'],
    ];
    for (const [body, status, field] of cases) {
      const res = await segmentPost('/v1/batch', body, headers);
      assert.equal(res.status, status, `${field}: ${res.text}`);
      assert.equal(res.json.error.field, field, res.text);
    }
    const notJson = await collector.request('POST', '/v1/batch', { body: '{"batch": [', headers: { ...headers, 'Content-Type': 'application/json' } });
    assert.equal(notJson.status, 400);
    // The Content-Type is not trusted either way (RudderStack labels its JSON a form): a
    // form body is not JSON, so it is a 400.
    const form = await collector.request('POST', '/v1/batch', { body: 'a=1', headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 400);
    const huge = await segmentPost('/v1/batch', { batch: [good], pad: 'x'.repeat(520_000) }, headers);
    assert.equal(huge.status, 413);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await collector.count(app.id, 'Kept Out'), null, 'no partial writes');
  });

  test('gzip: inflated, bounded (a 20 MB bomb is 413), broken or unknown encodings refused', async () => {
    const app = await collector.newApp('gzip');
    const headers = { Authorization: basic(app.ingest_key), 'Content-Encoding': 'gzip', 'Content-Type': 'application/json' };
    const body = gzipSync(JSON.stringify({ batch: [{ type: 'track', event: 'Zipped', userId: 'u', messageId: 'z1' }] }));
    const ok = await collector.request('POST', '/v1/batch', { body: new Uint8Array(body), headers });
    assert.equal(ok.status, 200, ok.text);
    const bomb = gzipSync(Buffer.alloc(20_000_000, 32));
    assert.ok(bomb.length < 100_000);
    const boom = await collector.request('POST', '/v1/batch', { body: new Uint8Array(bomb), headers });
    assert.equal(boom.status, 413, boom.text);
    const broken = Buffer.from(body);
    broken[broken.length - 6] ^= 0xff;
    const bad = await collector.request('POST', '/v1/batch', { body: new Uint8Array(broken), headers });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json.error.code, 'invalid_encoding');
    const br = await collector.request('POST', '/v1/batch', { body: '{}', headers: { ...headers, 'Content-Encoding': 'br' } });
    assert.equal(br.status, 415);
    await collector.waitForCount(app.id, 'Zipped', 1);
  });

  test('a messageId that is a Telltale event id does not collide with it; a resent message is absorbed', async () => {
    const app = await collector.newApp('ids');
    const event = makeEvent({ name: 'Same Id', anonymous_id: 'a' });
    const native = await collector.ingest({ events: [event] }, { key: app.ingest_key });
    assert.equal(native.status, 202, native.text);
    const message = { event: 'Same Id', anonymousId: 'a', messageId: event.id };
    for (let i = 0; i < 3; i++) {
      const res = await segmentPost('/v1/track', message, { Authorization: basic(app.ingest_key) });
      assert.equal(res.status, 200, res.text);
    }
    await collector.waitForCount(app.id, 'Same Id', 2);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await collector.count(app.id, 'Same Id'), 2, 'one native event and one Segment message');
  });
});
