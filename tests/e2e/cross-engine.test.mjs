// The SDK's essential guarantees in the three engines that browsers and mobile webviews
// run: Chromium, Gecko (Firefox ESR) and WebKit (WebKitGTK, the engine of iOS's
// WKWebView). One body per test, run in each engine through tests/e2e/engines.mjs,
// against the real local collector: batching and the payload, page-close delivery (by
// beacon, and by keepalive fetch without one), offline -> reload -> online, storage
// disabled or throwing, flags (remote with bootstrap and the cache; local through the
// engine module, on the shared vectors) and probe state.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Collector, holdsFor, waitFor } from './harness.mjs';
import { ENGINES, launchEngine } from './engines.mjs';
import { PATHS } from '../../scripts/toolchain.mjs';

const BOOL = [{ key: 'on', value: true }, { key: 'off', value: false }];
const FLAGS = [
  ['flags', 'checkout', { variants: BOOL, default_variant: 'off', rules: [{ id: 'teachers', conditions: [{ attribute: 'role', op: 'eq', value: 'teacher' }], serve: { variant: 'on' } }] }],
  ['flags', 'layout', { variants: [{ key: 'grid', value: 'grid' }, { key: 'list', value: 'list' }], default_variant: 'grid',
    rules: [{ id: 'ab', serve: { split: [{ variant: 'grid', weight: 50 }, { variant: 'list', weight: 50 }] } }] }],
  // Probed nowhere: the tests switch it by override, and no cron runs it.
  ['probes', 'partner-api', { url: 'http://127.0.0.1:9/health', timeout_ms: 1000, interval_s: 60 }],
  ['flags', 'partner-deals', { variants: BOOL, default_variant: 'on', off_variant: 'off', requires_probe: 'partner-api' }],
];
const VECTORS = JSON.parse(readFileSync(new URL('../spec/flags/cases.json', import.meta.url), 'utf8'));

// The network switch of the delivery tests: navigator.onLine, fetch and sendBeacon to the
// collector fail while it is on. Kept in sessionStorage, so it survives a reload.
const OFFLINE_SWITCH = () => {
  const offline = () => sessionStorage.getItem('test:offline') === '1';
  Object.defineProperty(Navigator.prototype, 'onLine', { get: () => !offline(), configurable: true });
  const realFetch = window.fetch.bind(window);
  const toCollector = (input) => /\/v1\//.test(String(input && input.url ? input.url : input));
  window.fetch = (input, init) => (offline() && toCollector(input) ? Promise.reject(new TypeError('Failed to fetch (test offline)')) : realFetch(input, init));
  const realBeacon = Navigator.prototype.sendBeacon;
  Navigator.prototype.sendBeacon = function (url, data) { return offline() ? false : realBeacon.call(this, url, data); };
  window.goOnline = () => { sessionStorage.removeItem('test:offline'); window.dispatchEvent(new Event('online')); };
  window.goOffline = () => { sessionStorage.setItem('test:offline', '1'); window.dispatchEvent(new Event('offline')); };
};

// Each batch the SDK sends, with the API that sent it, logged in sessionStorage (it
// survives the page going away; requests made while a page unloads are not reported to
// every driver).
const LOG_SENDS = () => {
  const log = (via, body, keepalive, accepted) => {
    try {
      const sent = JSON.parse(sessionStorage.getItem('test:sent') || '[]');
      sent.push({ via, keepalive: !!keepalive, accepted, bytes: body.length, at: Date.now(), body: JSON.parse(body) });
      sessionStorage.setItem('test:sent', JSON.stringify(sent));
    } catch { /* not a batch */ }
  };
  if (Navigator.prototype.sendBeacon) {
    const realBeacon = Navigator.prototype.sendBeacon;
    Navigator.prototype.sendBeacon = function (url, body) {
      const accepted = realBeacon.call(this, url, body);
      if (String(url).includes('/v1/events')) log('beacon', body, false, accepted);
      return accepted;
    };
  }
  const realFetch = window.fetch;
  window.fetch = function (input, init) {
    if (String(input).includes('/v1/events')) log('fetch', init?.body, init?.keepalive, null);
    return realFetch.call(this, input, init);
  };
  window.sentBatches = () => JSON.parse(sessionStorage.getItem('test:sent') || '[]');
};

const NO_BEACON = () => { delete Navigator.prototype.sendBeacon; };

// Whether each page load was a restore from the back/forward cache.
const RECORD_PAGESHOW = () => {
  addEventListener('pageshow', (e) => {
    const shows = JSON.parse(sessionStorage.getItem('test:pageshow') || '[]');
    shows.push(e.persisted);
    sessionStorage.setItem('test:pageshow', JSON.stringify(shows));
  });
};

/** What the engine under test says it is, by its user agent. */
const ENGINE_OF_UA = (ua) => (/Firefox\//.test(ua) ? 'firefox' : /Chrome\//.test(ua) ? 'chromium' : /AppleWebKit\//.test(ua) ? 'webkit' : ua);

const STORAGE_DISABLED = () => {
  for (const name of ['localStorage', 'sessionStorage']) {
    Object.defineProperty(window, name, { configurable: true, get() { throw new DOMException('denied', 'SecurityError'); } });
  }
};

const STORAGE_THROWING = () => {
  // WebKit's old private mode: storage is there, and every write throws.
  Storage.prototype.setItem = function () { throw new DOMException('quota', 'QuotaExceededError'); };
};

let collector;
let app;
before(async () => {
  collector = await Collector.start();
  app = await collector.newApp('engines', [collector.url]);
  await collector.publishConfig(app.id, FLAGS, 'cross-engine config');
});
after(async () => {
  await collector?.stop();
});

/** A page of `engine` on the collector's origin, the SDK loaded, `setups` run first. */
async function sdkPage(engine, setups = []) {
  const page = await engine.newPage();
  await page.open(`${collector.url}/healthz`, setups);
  return page;
}

/** A client in the page as `window.tt`, its reports in `window.reports`. */
function start(page, options) {
  return page.evaluate((o) => {
    window.reports = [];
    window.tt = new window.Telltale({ flagMode: 'off', onError: (e) => window.reports.push(e.message), ...o });
    return window.tt.anonymousId;
  }, options);
}

describe('engines that cannot start', () => {
  test('a missing engine fails naming the Debian packages to install, and is never skipped', async () => {
    const saved = { firefox: PATHS.firefox, xvfb: PATHS.xvfb };
    try {
      PATHS.firefox = '/nonexistent/firefox-esr';
      PATHS.xvfb = '/nonexistent/Xvfb';
      await assert.rejects(launchEngine('firefox'), /firefox cannot start: install the Debian packages firefox-esr/);
      await assert.rejects(launchEngine('webkit'), /webkit cannot start: install the Debian packages xvfb/);
      await assert.rejects(launchEngine('netscape'), /unknown engine netscape; known: chromium, firefox, webkit/);
    } finally {
      Object.assign(PATHS, saved);
    }
  });
});

for (const name of ENGINES) {
  describe(name, () => {
    let engine;
    // Each test has its own app, so that counts are its own.
    let appCount = 0;
    const ownApp = () => collector.createApp(`${name}-${++appCount}-${Date.now().toString(36)}`, [collector.url]);
    before(async () => { engine = await launchEngine(name); });
    after(async () => { await engine?.close(); });

    test('batches by size and by timer; the payload has the documented shape', async () => {
      const own = await ownApp();
      const page = await sdkPage(engine, [LOG_SENDS]);
      assert.equal(ENGINE_OF_UA(await page.evaluate(() => navigator.userAgent)), name, 'the page runs in the engine under test');
      // By size: no timer is due for an hour, so only a full batch can leave.
      const anon = await start(page, { endpoint: collector.url, key: own.ingest_key, flushAt: 5, flushIntervalMs: 3_600_000 });
      await page.evaluate(() => { for (let i = 0; i < 4; i++) window.tt.track('sized', { i, plan: 'pro' }); });
      await holdsFor(() => page.evaluate(() => window.sentBatches().length === 0), { forMs: 600, what: 'four events waiting for the fifth' });
      await page.evaluate(() => window.tt.track('sized', { i: 4, plan: 'pro' }));
      const first = await waitFor(() => page.evaluate(() => window.sentBatches()).then((s) => s.length >= 1 && s), { timeoutMs: 5000, what: 'the full batch' });
      assert.equal(first[0].body.events.length, 5, 'a full batch leaves at once');
      // By timer: a client (the same device) whose batches never fill.
      await page.evaluate(async (o) => {
        await window.tt.shutdown();
        window.tt = new window.Telltale({ flagMode: 'off', ...o });
        window.tt.track('timed', { n: 1 });
        window.tt.track('timed', { n: 2 });
      }, { endpoint: collector.url, key: own.ingest_key, flushAt: 100, flushIntervalMs: 400 });
      const second = await waitFor(() => page.evaluate(() => window.sentBatches()).then((s) => s.length >= 2 && s), { what: 'the timer batch' });
      assert.deepEqual(second[1].body.events.map((e) => e.name), ['timed', 'timed']);
      const { body } = first[0];
      assert.deepEqual(Object.keys(body).sort(), ['batch_id', 'events', 'sent_at']);
      assert.match(body.batch_id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const event = body.events[0];
      assert.deepEqual(Object.keys(event).sort(), ['anonymous_id', 'id', 'name', 'props', 'ts', 'type', 'url']);
      assert.deepEqual([event.type, event.name, event.props, event.anonymous_id], ['track', 'sized', { i: 0, plan: 'pro' }, anon]);
      assert.match(event.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7/);
      assert.equal(new Set(body.events.map((e) => e.id)).size, 5);
      assert.ok(Math.abs(body.sent_at - Date.now()) < 60_000 && event.ts <= body.sent_at);
      assert.match(event.url, /\/healthz$/);
      await collector.waitForCount(own.id, 'sized', 5);
      await collector.waitForCount(own.id, 'timed', 2);
      assert.deepEqual(await page.errors(), []);
      await page.close();
    });

    test('each event carries the URL of its moment: pushState, replaceState, a hash change, back, and in the page\'s own navigation listeners', async () => {
      const own = await ownApp();
      const page = await sdkPage(engine, [LOG_SENDS]);
      const { urls, navigationApi } = await page.evaluate(async (o) => {
        // Where the Navigation API is, the SDK reads the URL once per history entry; a page
        // listener added before the SDK's must still see the new URL.
        const navigationApi = !!window.navigation?.currentEntry;
        if (navigationApi) navigation.addEventListener('currententrychange', () => window.tt.track('nav'));
        window.tt = new window.Telltale({ flagMode: 'off', ...o });
        const seen = [];
        const step = (name) => { window.tt.track(name); seen.push(location.href); };
        step('u0');
        history.pushState({}, '', '/healthz?step=1');
        step('u1');
        history.replaceState({}, '', '/healthz?step=2');
        step('u2');
        location.hash = 'three';
        step('u3');
        history.pushState({}, '', '/healthz?step=4');
        step('u4');
        const back = new Promise((resolve) => addEventListener('popstate', resolve, { once: true }));
        history.back();
        await back;
        step('u5');
        await window.tt.flush();
        return { urls: seen, navigationApi };
      }, { endpoint: collector.url, key: own.ingest_key, flushAt: 100, flushIntervalMs: 3_600_000 });
      const events = (await page.evaluate(() => window.sentBatches())).flatMap((b) => b.body.events);
      const steps = events.filter((e) => e.name !== 'nav');
      assert.deepEqual(steps.map((e) => e.name), ['u0', 'u1', 'u2', 'u3', 'u4', 'u5']);
      assert.deepEqual(steps.map((e) => e.url), urls);
      assert.equal(new Set(urls).size, 5, `five distinct URLs, back returns to the fourth: ${urls}`);
      if (navigationApi) assert.deepEqual(events.filter((e) => e.name === 'nav').map((e) => e.url), urls.slice(1), 'the listener saw each new URL');
      console.log(`ℹ ${name}: Navigation API ${navigationApi ? 'present (URL read once per entry)' : 'absent (URL read per event)'}`);
      assert.deepEqual(await page.errors(), []);
      await page.close();
    });

    for (const [how, setups, via] of [['sendBeacon', [LOG_SENDS], 'beacon'], ['keepalive fetch (no sendBeacon)', [NO_BEACON, LOG_SENDS], 'fetch']]) {
      test(`page close delivers by ${how}`, async () => {
        const own = await ownApp();
        const page = await sdkPage(engine, setups);
        // No size or timer trigger is due: only the page-hide path can send.
        await start(page, { endpoint: collector.url, key: own.ingest_key, flushAt: 100, flushIntervalMs: 3_600_000 });
        await page.evaluate(() => { for (let i = 0; i < 3; i++) window.tt.track('closing', { i }); });
        await page.leave(`${collector.url}/healthz?elsewhere`);
        await collector.waitForCount(own.id, 'closing', 3);
        const sent = await page.evaluate(() => JSON.parse(sessionStorage.getItem('test:sent') || '[]'));
        assert.ok(sent.length >= 1 && sent.every((s) => s.via === via), JSON.stringify(sent.map((s) => s.via)));
        if (via === 'beacon') assert.equal(sent.length, 1, 'an accepted beacon leaves the queue: sent once');
        // A fetch's chunk stays queued (it may fail after the page is gone): pagehide and
        // visibilitychange may each send it, and the collector keeps one.
        else assert.ok(sent.every((s) => s.keepalive), 'the fetch outlives the page');
        await holdsFor(async () => (await collector.count(own.id, 'closing')) === 3, { forMs: 1000, what: 'exactly 3' });
        await page.close();
      });
    }

    for (const [how, setups] of [['', [LOG_SENDS]], [' (no sendBeacon)', [NO_BEACON, LOG_SENDS]]]) test(`page close with more than one keepalive budget queued${how}: every event arrives, on close or from the persisted queue`, async (t) => {
      const own = await ownApp();
      const page = await sdkPage(engine, setups);
      const options = { endpoint: collector.url, key: own.ingest_key, flushAt: 500, flushIntervalMs: 3_600_000 };
      await start(page, options);
      // About 170 KB of events: three page-hide chunks, over the 64 KiB that Chromium and
      // WebKit allow keepalive requests in flight at once.
      await page.evaluate(async () => {
        for (let i = 0; i < 400; i++) window.tt.track('big_close', { i, pad: 'x'.repeat(300) });
        await new Promise((r) => setTimeout(r, 100)); // the queue is persisted after the task
      });
      await page.leave(`${collector.url}/healthz?elsewhere`);
      const sent = await page.evaluate(() => JSON.parse(sessionStorage.getItem('test:sent') || '[]'));
      assert.ok(sent.every((s) => s.bytes <= 60 * 1024), JSON.stringify(sent.map((s) => s.bytes)));
      if (how) {
        // One keepalive fetch a page-hide: a second could only fail the shared budget.
        assert.ok(sent.length >= 1 && sent.every((s) => s.via === 'fetch' && s.keepalive), JSON.stringify(sent.map((s) => s.via)));
      } else {
        // Beacons until one is refused; never a fetch after a refusal (it shares the budget).
        assert.ok(sent.length >= 1 && sent.every((s) => s.via === 'beacon'), JSON.stringify(sent.map((s) => s.via)));
        assert.equal(sent[0].accepted, true);
        const accepted = sent.filter((s) => s.accepted).flatMap((s) => s.body.events.map((e) => e.id));
        assert.equal(new Set(accepted).size, accepted.length, 'no event handed over twice');
      }
      await waitFor(async () => (await collector.count(own.id, 'big_close')) !== null, { what: 'the first chunk' });
      await holdsFor(async () => true, { forMs: 1500 }); // what left on close has landed
      const onClose = await collector.count(own.id, 'big_close');
      t.diagnostic(`${name}${how}: on close ${onClose} of 400 arrived; sends ${JSON.stringify(sent.map((s) => [s.via, s.bytes, s.accepted]))}`);
      // The next page of the app (this tab, reloaded) sends what the close could not.
      await page.open(`${collector.url}/healthz`);
      await start(page, options);
      await collector.waitForCount(own.id, 'big_close', 400);
      await holdsFor(async () => (await collector.count(own.id, 'big_close')) === 400, { forMs: 1500, what: 'exactly 400' });
      assert.deepEqual(await page.errors(), []);
      await page.close();
    });

    test('back/forward cache after a close with more than one keepalive budget: nothing lost, nothing sent twice', async (t) => {
      const own = await ownApp();
      const page = await sdkPage(engine, [LOG_SENDS, RECORD_PAGESHOW]);
      const options = { endpoint: collector.url, key: own.ingest_key, flushAt: 500, flushIntervalMs: 3_600_000 };
      await start(page, options);
      await page.evaluate(async () => {
        for (let i = 0; i < 400; i++) window.tt.track('before_leaving', { i, pad: 'x'.repeat(300) });
        await new Promise((r) => setTimeout(r, 100));
      });
      await page.leave(`${collector.url}/healthz?elsewhere`); // pagehide: what the budget takes leaves
      await page.back();
      const state = await waitFor(() => page.evaluate(() => !location.search && document.readyState === 'complete' && {
        restored: !!window.tt, shows: JSON.parse(sessionStorage.getItem('test:pageshow') || '[]'),
      }).catch(() => undefined), { what: 'the page back' });
      // Each of the three engines restores this page (a failure here means an engine stopped
      // caching it, and the test no longer proves what it says).
      assert.deepEqual(state, { restored: true, shows: [true] }, 'restored from the back/forward cache');
      // The client lived on: it sends what the close could not, and keeps collecting.
      await page.evaluate(() => { window.tt.track('after_return', {}); return window.tt.flush(); });
      await collector.waitForCount(own.id, 'after_return', 1);
      const sent = await page.evaluate(() => window.sentBatches());
      const ids = sent.filter((s) => s.accepted !== false).flatMap((s) => s.body.events.map((e) => e.id));
      assert.equal(ids.length, 401, 'every event was handed to the browser exactly once');
      assert.equal(new Set(ids).size, 401);
      await collector.waitForCount(own.id, 'before_leaving', 400);
      await holdsFor(async () => (await collector.count(own.id, 'before_leaving')) === 400, { forMs: 1000, what: 'exactly 400' });
      assert.deepEqual(await page.errors(), []);
      await page.close();
    });

    test('visibilitychange to hidden sends the queue by beacon, and the page keeps working', async () => {
      const own = await ownApp();
      const page = await sdkPage(engine, [LOG_SENDS]);
      await start(page, { endpoint: collector.url, key: own.ingest_key, flushAt: 100, flushIntervalMs: 3_600_000 });
      await page.evaluate(async () => {
        for (let i = 0; i < 4; i++) window.tt.track('hidden', { i });
        await new Promise((r) => setTimeout(r, 100)); // the queue is persisted after the task
        // A tab switch, as a driver cannot hide a page in every engine: the state the
        // document reports, and the event that announces it.
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await collector.waitForCount(own.id, 'hidden', 4);
      const sent = await page.evaluate(() => window.sentBatches());
      assert.deepEqual(sent.map((s) => s.via), ['beacon']);
      // The beacon emptied the queue without rewriting storage: the next heartbeat (10 s)
      // removes the stale copy, so no other tab adopts it and sends it again.
      const queueKeys = () => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('telltale:q')));
      assert.equal((await queueKeys()).length, 1, 'the copy from before the hide is still there');
      await waitFor(async () => (await queueKeys()).length === 0, { timeoutMs: 15_000, what: 'the stale copy removed by the heartbeat' });
      await page.evaluate(() => { delete document.visibilityState; window.tt.track('visible_again', {}); return window.tt.flush(); });
      await collector.waitForCount(own.id, 'visible_again', 1);
      assert.deepEqual(await page.errors(), []);
      await page.close();
    });

    test('offline, 30 events, reload, online: exactly 30 arrive', async () => {
      const own = await ownApp();
      // The send log wraps the real fetch, the offline switch wraps both: attempts the
      // switch refuses never reach the log.
      const page = await sdkPage(engine, [LOG_SENDS, OFFLINE_SWITCH]);
      const options = { endpoint: collector.url, key: own.ingest_key, flushAt: 10, flushIntervalMs: 200 };
      await page.evaluate(() => window.goOffline());
      await start(page, options);
      await page.evaluate(() => { for (let i = 0; i < 30; i++) window.tt.track('offline_event', { i }); });
      await holdsFor(async () => (await collector.count(own.id, 'offline_event')) === null, { forMs: 600, what: 'nothing arriving while offline' });
      await page.reload();
      const restored = await page.evaluate((o) => {
        window.tt = new window.Telltale({ flagMode: 'off', ...o });
        return window.tt.queueLength;
      }, options);
      assert.equal(restored, 30, 'the queue survived the reload');
      await page.evaluate(() => window.goOnline());
      await collector.waitForCount(own.id, 'offline_event', 30);
      await holdsFor(async () => (await collector.count(own.id, 'offline_event')) === 30, { forMs: 1500, what: 'exactly 30' });
      const ids = (await page.evaluate(() => window.sentBatches())).flatMap((s) => s.body.events.map((e) => e.id));
      assert.deepEqual([ids.length, new Set(ids).size], [30, 30], 'each event sent once');
      assert.deepEqual(await page.errors(), []);
      await page.close();
    });

    for (const [how, setup, reported] of [['disabled (its getter throws)', STORAGE_DISABLED, false], ['throwing on every write', STORAGE_THROWING, true]]) {
      test(`storage ${how}: nothing thrown into the page, every event delivered`, async () => {
        const own = await ownApp();
        await collector.publishConfig(own.id, FLAGS, 'flags under locked storage');
        const page = await sdkPage(engine, [setup]);
        await start(page, { endpoint: collector.url, key: own.ingest_key, flushAt: 5, flushIntervalMs: 200, flagMode: 'remote', context: { role: 'teacher' } });
        const state = await page.evaluate(async () => {
          for (let i = 0; i < 12; i++) window.tt.track('memory_only', { i });
          window.tt.identify('user-7');
          window.tt.page();
          await window.tt.flush();
          const queued = window.tt.queueLength;
          await window.tt.refreshFlags();
          const d = window.tt.details('checkout'); // queues an $exposure
          return { queued, flag: [d.value, d.reason] };
        });
        assert.deepEqual(state, { queued: 0, flag: [true, 'TARGETING_MATCH'] });
        await collector.waitForCount(own.id, 'memory_only', 12);
        assert.deepEqual(await page.errors(), []);
        const reports = await page.evaluate(() => window.reports);
        if (reported) assert.ok(reports.some((r) => /storage is full or blocked/.test(r)), JSON.stringify(reports));
        await page.close();
      });
    }

    test('a queue beyond the engine\'s real storage quota: reported, kept in memory, all delivered', async (t) => {
      const own = await ownApp();
      const page = await sdkPage(engine, [OFFLINE_SWITCH]);
      await page.evaluate(() => window.goOffline());
      // About 12 MB queued, over every engine's localStorage quota (5 MiB or so per origin);
      // the SDK's own budget raised past it.
      const options = { endpoint: collector.url, key: own.ingest_key, flushAt: 500, flushIntervalMs: 200, maxQueue: 30000, maxStorageBytes: 20_000_000 };
      await start(page, options);
      const state = await page.evaluate(async () => {
        const pad = 'x'.repeat(450);
        for (let i = 0; i < 24000; i++) window.tt.track('over_quota', { i, pad });
        await new Promise((r) => setTimeout(r, 300)); // the persist after the task
        let stored = 0;
        for (let i = 0; i < localStorage.length; i++) stored += (localStorage.getItem(localStorage.key(i)) || '').length;
        return { queued: window.tt.queueLength, dropped: window.tt.droppedCount, stored, reports: window.reports };
      });
      t.diagnostic(`${name}: ${state.stored} characters stayed in localStorage`);
      assert.deepEqual([state.queued, state.dropped], [24000, 0]);
      assert.ok(state.reports.some((r) => /storage is full or blocked/.test(r)), JSON.stringify(state.reports));
      await page.evaluate(() => window.goOnline());
      await collector.waitForCount(own.id, 'over_quota', 24000, { timeoutMs: 90_000 });
      assert.deepEqual(await page.errors(), []);
      await page.close();
    });

    test('flags, remote: bootstrap before the first answer, then decisions; the cache serves the next load', async () => {
      const page = await sdkPage(engine);
      const options = { endpoint: collector.url, key: app.ingest_key, flushIntervalMs: 3_600_000 };
      const first = await page.evaluate(async (opts) => {
        const tt = new window.Telltale({ ...opts, context: { role: 'teacher', user_id: 't1' }, bootstrap: { checkout: false, banner: 'hi' } });
        const changes = [];
        tt.onChange((keys) => changes.push([...keys].sort()));
        const before = [tt.isEnabled('checkout', true), tt.details('banner').reason];
        await tt.refreshFlags();
        const after = [tt.isEnabled('checkout', false), tt.details('checkout').reason];
        await tt.setContext({ role: 'student', user_id: 't1' });
        return { before, after, student: tt.isEnabled('checkout', true), changes };
      }, options);
      assert.deepEqual(first.before, [false, 'BOOTSTRAP']);
      assert.deepEqual(first.after, [true, 'TARGETING_MATCH']);
      assert.equal(first.student, false);
      assert.deepEqual(first.changes.at(-1), ['checkout']);
      await page.reload();
      const cached = await page.evaluate((opts) => {
        // Synchronously after construction: no answer yet, the cache decides.
        const tt = new window.Telltale({ ...opts, context: { role: 'teacher', user_id: 't1' } });
        const d = tt.details('checkout');
        return [d.value, d.reason];
      }, options);
      assert.deepEqual(cached, [true, 'TARGETING_MATCH']);
      assert.deepEqual(await page.errors(), []);
      await page.close();
    });

    test('flags, local: the engine module decides the shared vectors as core does, and agrees with the collector', async () => {
      const page = await sdkPage(engine);
      // Compiled by the collector, as a published ruleset is: the module only decides.
      const compiled = await collector.admin('POST', '/v1/flags/compile', VECTORS.ruleset);
      assert.equal(compiled.status, 200, compiled.text);
      const results = await page.evaluate(async ({ doc, ruleset }) => {
        const engine = await window.sdk.loadFlagEngine();
        const fast = new engine.FlagEngine(ruleset);
        const tables = engine.readTables(fast);
        return doc.cases.map((c) => {
          const now = Date.parse(c.now || doc.now);
          fast.setContext(c.context, c.probes || {});
          const index = tables.keys.indexOf(c.flag);
          const at = index < 0 ? tables.keys.length : index;
          return {
            json: engine.evaluateRuleset(ruleset, c.flag, c.context, c.probes || {}, now),
            packed: engine.decodeDecision(tables, at, fast.decide(at, now)),
          };
        });
      }, { doc: VECTORS, ruleset: compiled.text });
      assert.equal(results.length, VECTORS.cases.length);
      VECTORS.cases.forEach((c, i) => {
        for (const way of ['json', 'packed']) {
          for (const key of ['value', 'variant', 'reason', 'rule', 'bucket', 'error_code', 'probe']) {
            assert.deepEqual(results[i][way][key] ?? null, c.expect[key] ?? null, `${c.name} (${way}): ${key}`);
          }
        }
      });
      const contexts = Array.from({ length: 12 }, (_, i) => ({ user_id: `u${i}`, role: i % 3 ? 'student' : 'teacher' }));
      const local = await page.evaluate(async ({ opts, contexts }) => {
        const tt = new window.Telltale({ ...opts, flagMode: 'local' });
        await tt.refreshFlags();
        const out = [];
        for (const ctx of contexts) {
          await tt.setContext(ctx);
          out.push(['checkout', 'layout'].map((k) => tt.details(k)).map((d) => [d.value, d.variant, d.reason]));
        }
        return out;
      }, { opts: { endpoint: collector.url, key: app.ingest_key, flushIntervalMs: 3_600_000 }, contexts });
      for (const [i, context] of contexts.entries()) {
        const remote = await collector.request('POST', '/v1/flags/evaluate', { body: { context }, headers: { Authorization: `Bearer ${app.ingest_key}` } });
        assert.deepEqual(local[i], ['checkout', 'layout'].map((k) => [remote.json.flags[k].value, remote.json.flags[k].variant, remote.json.flags[k].reason]), JSON.stringify(context));
      }
      assert.deepEqual(await page.errors(), []);
      await page.close();
    });

    test('probe state: probe() and onProbeChange follow the collector, and the flag that requires it', async () => {
      const own = await ownApp();
      await collector.publishConfig(own.id, FLAGS, 'probe config');
      const override = async (mode) => {
        const res = await collector.request('PUT', `/v1/apps/${own.id}/probes/partner-api/override`,
          { body: { mode, reason: 'cross-engine test' }, headers: { Authorization: `Bearer ${collector.adminKey}` } });
        assert.equal(res.status, 200, res.text);
      };
      await override('force_up');
      const page = await sdkPage(engine);
      const up = await page.evaluate(async (opts) => {
        window.probeChanges = [];
        window.tt = new window.Telltale({ ...opts, flushIntervalMs: 3_600_000 });
        window.tt.onProbeChange((name, state) => window.probeChanges.push([name, state]));
        await window.tt.refreshFlags();
        return [window.tt.probe('partner-api'), window.tt.isEnabled('partner-deals', false)];
      }, { endpoint: collector.url, key: own.ingest_key });
      assert.deepEqual(up, ['up', true]);
      await override('force_down');
      const down = await page.evaluate(async () => {
        await window.tt.refreshFlags();
        return { probe: window.tt.probe('partner-api'), deals: window.tt.details('partner-deals'), changes: window.probeChanges };
      });
      assert.deepEqual([down.probe, down.deals.value, down.deals.probe], ['down', false, 'partner-api']);
      assert.deepEqual(down.changes, [['partner-api', 'up'], ['partner-api', 'down']]);
      assert.deepEqual(await page.errors(), []);
      await page.close();
    });
  });
}
