// The SDK in headless Chromium (Debian's, via playwright-core) against the real local
// collector: batching by size and by timer, the payload, ids, and the demo page flow
// through to /v1/stats.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Collector, waitFor, launchChromium, loadSdk } from './harness.mjs';


let collector;
let browser;
before(async () => {
  collector = await Collector.start();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

/** A blank same-origin page with the SDK loaded, and a log of what it POSTs to /v1/events. */
async function sdkPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const posts = [];
  page.on('request', (req) => {
    if (req.url().includes('/v1/events') && req.method() === 'POST') posts.push(JSON.parse(req.postData()));
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${collector.url}/healthz`);
  await loadSdk(page);
  return { page, posts, errors, context };
}

describe('SDK batching', () => {
  test('batches by size; the rest waits for flush()', async () => {
    const { page, posts, errors, context } = await sdkPage();
    const endpoint = collector.url;
    const key = collector.ingestKey;
    await page.evaluate(({ endpoint, key }) => {
      window.tt = new window.Telltale({ endpoint, key, flushAt: 5, flushIntervalMs: 3_600_000 });
      for (let i = 0; i < 12; i++) window.tt.track('size_batch', { i });
    }, { endpoint, key });
    await waitFor(() => posts.length === 2, { what: 'two size-triggered batches' });
    assert.deepEqual(posts.map((p) => p.events.length), [5, 5]);
    // A batch counts as queued until the collector answers it: wait for the answers.
    await waitFor(async () => (await page.evaluate(() => window.tt.queueLength)) === 2, { what: 'the two batches answered, two events left' });
    const sent = await page.evaluate(() => window.tt.flush());
    assert.equal(sent, 2);
    assert.deepEqual(posts.map((p) => p.events.length), [5, 5, 2]);
    const order = posts.flatMap((p) => p.events.map((e) => e.props.i));
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    await collector.waitForCount('demo', 'size_batch', 12);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('batches by timer', async () => {
    const { page, posts, context } = await sdkPage();
    await page.evaluate(({ endpoint, key }) => {
      window.tt = new window.Telltale({ endpoint, key, flushAt: 100, flushIntervalMs: 200 });
      for (let i = 0; i < 3; i++) window.tt.track('timer_batch', {});
    }, { endpoint: collector.url, key: collector.ingestKey });
    assert.equal(posts.length, 0, 'nothing is sent on the track() call path');
    await waitFor(() => posts.length === 1, { what: 'a timer-triggered batch' });
    assert.equal(posts[0].events.length, 3);
    await collector.waitForCount('demo', 'timer_batch', 3);
    await page.evaluate(() => window.tt.shutdown());
    await context.close();
  });

  test('shutdown() sends what is queued, then cancels every timer: nothing more goes out', async () => {
    const { page, context } = await sdkPage();
    const requests = [];
    page.on('request', (r) => { if (r.url().includes('/v1/')) requests.push(r.url()); });
    const sent = await page.evaluate(async ({ endpoint, key }) => {
      // Short periods, so live timers would show within the wait below.
      const tt = new window.Telltale({ endpoint, key, flushAt: 100, flushIntervalMs: 100, flagRefreshMs: 200 });
      tt.track('before_shutdown', {});
      const delivered = await tt.shutdown();
      tt.track('after_shutdown', {});
      return { delivered, queued: tt.queueLength };
    }, { endpoint: collector.url, key: collector.ingestKey });
    assert.deepEqual(sent, { delivered: 1, queued: 0 });
    const settled = requests.length;
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(requests.length, settled, `requests after shutdown: ${requests.slice(settled).join(', ')}`);
    await collector.waitForCount('demo', 'before_shutdown', 1);
    assert.equal(await collector.count('demo', 'after_shutdown'), null);
    await context.close();
  });

  test('odd but valid input: a prop named __proto__, Date.now patched to fractions or before 1970', async () => {
    const { page, posts, errors, context } = await sdkPage();
    await page.evaluate(async ({ endpoint, key }) => {
      const tt = new window.Telltale({ endpoint, key, flushAt: 500, flushIntervalMs: 3_600_000 });
      tt.track('proto', JSON.parse('{"__proto__":"p","ok":1}'));
      const realNow = Date.now;
      Date.now = () => realNow() + 0.5;
      tt.track('fraction', {});
      Date.now = () => -5;
      tt.track('before_1970', {});
      // In one hand-over a time goes in only when it changed: repeated, forward, back,
      // past what JS dates reach, and back again.
      const base = realNow();
      for (const [i, t] of [base, base, base + 7, base + 7, base - 3, Infinity, 1e21, base].entries()) {
        Date.now = () => t;
        tt.track('clock', { i });
      }
      Date.now = realNow;
      await tt.flush();
    }, { endpoint: collector.url, key: collector.ingestKey });
    const events = posts.flatMap((p) => p.events);
    assert.deepEqual(events.map((e) => e.name), ['proto', 'fraction', 'before_1970', ...Array(8).fill('clock')], 'one batch of valid JSON, none lost');
    assert.deepEqual(Object.entries(events[0].props), [['__proto__', 'p'], ['ok', 1]]);
    assert.ok(Number.isInteger(events[1].ts));
    assert.equal(events[2].ts, 0);
    const base = events[3].ts;
    assert.deepEqual(events.slice(3).map((e) => [e.props.i, e.ts]),
      [base, base, base + 7, base + 7, base - 3, 8.64e15, 8.64e15, base].map((t, i) => [i, t]), 'each event keeps the time of its call');
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('props are sent as they were when tracked, whatever object carries them', async () => {
    const { page, posts, errors, context } = await sdkPage();
    await page.evaluate(async ({ endpoint, key }) => {
      const tt = new window.Telltale({ endpoint, key, flushAt: 500, flushIntervalMs: 3_600_000 });
      // An object literal is copied: changed after track(), the event is not.
      const literal = { n: 1, s: 'a' };
      tt.track('literal', literal);
      literal.n = 2;
      literal.nested = { x: 1 };
      // A class instance with toJSON on its prototype, and an object without a prototype, are
      // copied: their own props are the event's, toJSON is not asked.
      class Props { constructor() { this.plan = 'pro'; } toJSON() { return { plan: 'forged', nested: [1] }; } }
      tt.track('instance', new Props());
      const bare = Object.create(null);
      bare.k = true;
      tt.track('bare', bare);
      bare.k = false;
      // A hidden toJSON of the literal's own is not asked either (it would give a number here,
      // which is no event at all).
      const hidden = { h: 1 };
      Object.defineProperty(hidden, 'toJSON', { value: () => 5, enumerable: false });
      tt.track('hidden_tojson', hidden);
      // An inherited enumerable prop (a polluted prototype) is not the event's.
      Object.prototype.polluted = 'x';
      try { tt.track('inherited', { own: 1 }); } finally { delete Object.prototype.polluted; }
      await tt.flush();
    }, { endpoint: collector.url, key: collector.ingestKey });
    const events = posts.flatMap((p) => p.events);
    assert.deepEqual(events.map((e) => [e.name, e.props]), [
      ['literal', { n: 1, s: 'a' }],
      ['instance', { plan: 'pro' }],
      ['bare', { k: true }],
      ['hidden_tojson', { h: 1 }],
      ['inherited', { own: 1 }],
    ]);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('payload shape and ids', async () => {
    const { page, posts, context } = await sdkPage();
    const before = Date.now();
    await page.evaluate(async ({ endpoint, key }) => {
      const tt = new window.Telltale({ endpoint, key, flushAt: 500, flushIntervalMs: 3_600_000 });
      tt.identify('user-7', { plan: 'pro' });
      for (let i = 0; i < 300; i++) tt.track('shape', { n: i, s: 'x', b: true, z: null });
      tt.page();
      await tt.flush();
    }, { endpoint: collector.url, key: collector.ingestKey });
    const after = Date.now();
    assert.equal(posts.length, 1);
    const [body] = posts;
    assert.ok(body.sent_at >= before && body.sent_at <= after);
    assert.match(body.batch_id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(body.events.length, 302);
    const ids = new Set(body.events.map((e) => e.id));
    assert.equal(ids.size, 302, 'ids are unique');
    for (const e of body.events) {
      assert.match(e.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'UUIDv7');
      assert.ok(e.ts >= before && e.ts <= after);
      assert.equal(e.user_id, 'user-7');
      assert.equal(typeof e.anonymous_id, 'string');
      assert.match(e.url, /^http:\/\/127\.0\.0\.1/);
    }
    const sorted = [...body.events].map((e) => e.id);
    assert.deepEqual(sorted, [...sorted].sort(), 'UUIDv7 ids sort in creation order');
    assert.deepEqual(body.events[0], { ...body.events[0], type: 'identify', name: '$identify', props: { plan: 'pro' } });
    assert.deepEqual(body.events[1].props, { n: 0, s: 'x', b: true, z: null });
    assert.equal(body.events[301].type, 'page');
    assert.equal(body.events[301].props.path, '/healthz');
    await collector.waitForCount('demo', 'shape', 300);
    await context.close();
  });

  test('bad options throw at construction; bad props go to onError, never throw', async () => {
    const { page, context } = await sdkPage();
    const result = await page.evaluate(({ endpoint, key }) => {
      const thrown = [];
      for (const opts of [undefined, { endpoint }, { endpoint, key, flushAfter: 3 }, { endpoint: 'ftp://x', key }, { endpoint, key, flushAt: 0 }]) {
        try { new window.Telltale(opts); thrown.push(null); } catch (e) { thrown.push(e.message); }
      }
      const reported = [];
      const tt = new window.Telltale({ endpoint, key, onError: (e) => reported.push(e.message) });
      tt.track('nested', { deep: { a: 1 } });
      tt.track('', {});
      tt.track('list', [1, 2]);
      return { thrown, reported, queued: tt.queueLength };
    }, { endpoint: collector.url, key: collector.ingestKey });
    assert.ok(result.thrown.every((m) => typeof m === 'string' && m.startsWith('telltale:')), JSON.stringify(result.thrown));
    assert.match(result.thrown[2], /unknown option `flushAfter`/);
    assert.equal(result.reported.length, 3);
    assert.match(result.reported[0], /prop `deep`/);
    assert.equal(result.queued, 0);
    await context.close();
  });
});

describe('demo page', () => {
  test('views, a search, clicks and a page close all reach /v1/stats', async () => {
    const viewsBefore = (await collector.count('demo', '$pageview')) ?? 0;
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${collector.url}/`);
    await page.waitForFunction(() => window.telltale);
    await page.fill('#search', 'rust');
    await page.waitForFunction(() => document.querySelector('#log').textContent.includes('track search'));
    await page.click('article:has-text("Rust from scratch") h3 a'); // autocaptured [data-track] click
    await page.click('article:has-text("Rust from scratch") button'); // explicit track('enroll')
    await page.click('a[data-route="/about"]'); // SPA route change -> page view
    assert.equal(await page.evaluate(() => location.pathname), '/about');
    // Close right away: what is queued must leave with the page (sendBeacon on pagehide).
    await page.close({ runBeforeUnload: true });
    await collector.waitForCount('demo', 'search', 1);
    await collector.waitForCount('demo', 'course_click', 1);
    await collector.waitForCount('demo', 'enroll', 1);
    await collector.waitForCount('demo', '$pageview', viewsBefore + 2); // first view + SPA route
    const top = await collector.stats({ app: 'demo', event: 'course_click', by: 'course' });
    assert.deepEqual(top.json.top, [{ value: 'rust-101', count: 1 }]);
    const search = await collector.stats({ app: 'demo', event: 'search', by: 'query' });
    assert.deepEqual(search.json.top, [{ value: 'rust', count: 1 }]);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('the console shows the counts (the old dashboard link leads there)', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${collector.url}/dashboard.html#key=${collector.adminKey}`);
    await page.waitForSelector('#app-picker');
    await page.selectOption('#app-picker', 'demo');
    await page.evaluate(() => { location.hash = '#/events'; });
    await page.waitForSelector('#event');
    await page.selectOption('#event', 'enroll');
    await page.waitForFunction(() => /^1 enroll/.test(document.getElementById('event-total')?.textContent || ''));
    await context.close();
  });
});
