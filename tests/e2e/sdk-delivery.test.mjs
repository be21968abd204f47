// The SDK's delivery guarantees in headless Chromium against the real local collector:
// offline and reload, server errors with Retry-After, a retry after the server already
// stored a batch, page close without sendBeacon, the back/forward cache, storage limits
// and disabled storage, two tabs, consent and sampling.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Collector, holdsFor, waitFor, launchChromium, loadSdk } from './harness.mjs';


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

// A switch for "the network is down" that survives reloads of the tab: navigator.onLine
// and fetch/sendBeacon to the collector fail while it is on. The collector stays real.
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

async function open(context, initScripts = []) {
  const page = await context.newPage();
  for (const script of initScripts) await page.addInitScript(script);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${collector.url}/healthz`);
  await loadSdk(page);
  return { page, errors };
}


async function appFor(id) {
  return collector.createApp(id, [collector.url]);
}

function start(page, options) {
  return page.evaluate((o) => {
    window.errors = [];
    window.tt = new window.Telltale({ flagMode: 'off', onError: (e) => window.errors.push(e.message), ...o });
    return window.tt.anonymousId;
  }, options);
}

describe('nothing lost', () => {
  test('offline, 200 events, reload, online: exactly 200 arrive', async () => {
    const app = await appFor('offline');
    const context = await browser.newContext();
    const { page, errors } = await open(context, [OFFLINE_SWITCH]);
    await page.evaluate(() => window.goOffline());
    await start(page, { endpoint: collector.url, key: app.ingest_key, flushAt: 50, flushIntervalMs: 200 });
    await page.evaluate(() => { for (let i = 0; i < 200; i++) window.tt.track('offline_event', { i }); });
    // Timers fire while offline (every 200 ms); nothing can leave.
    await holdsFor(async () => (await collector.count('offline', 'offline_event')) === null, { forMs: 600, what: 'nothing arriving while offline' });
    await page.reload();
    await loadSdk(page);
    const restored = await page.evaluate((o) => {
      window.tt = new window.Telltale({ flagMode: 'off', ...o });
      return window.tt.queueLength;
    }, { endpoint: collector.url, key: app.ingest_key, flushAt: 50, flushIntervalMs: 200 });
    assert.equal(restored, 200, 'the queue survived the reload');
    await page.evaluate(() => window.goOnline());
    await collector.waitForCount('offline', 'offline_event', 200);
    await holdsFor(async () => (await collector.count('offline', 'offline_event')) === 200, { forMs: 1500, what: 'exactly 200, nothing sent twice' });
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('500, then 429 with Retry-After: events arrive after the wait, once, with one batch id', async () => {
    const app = await appFor('errors');
    assert.equal((await collector.admin('PUT', '/v1/admin/faults', { ingest: [500, 429] })).status, 200);
    const context = await browser.newContext();
    const { page } = await open(context);
    const posts = [];
    page.on('request', (r) => { if (r.url().includes('/v1/events') && r.method() === 'POST') posts.push({ at: Date.now(), body: JSON.parse(r.postData()) }); });
    await start(page, { endpoint: collector.url, key: app.ingest_key, flushAt: 10, flushIntervalMs: 3_600_000 });
    await page.evaluate(() => { for (let i = 0; i < 10; i++) window.tt.track('flaky', { i }); });
    await collector.waitForCount('errors', 'flaky', 10);
    assert.equal(posts.length, 3, JSON.stringify(posts.map((p) => p.body.batch_id)));
    assert.equal(new Set(posts.map((p) => p.body.batch_id)).size, 1, 'a retry keeps its batch id');
    assert.ok(posts[2].at - posts[1].at >= 950, `Retry-After honoured (${posts[2].at - posts[1].at} ms)`);
    assert.ok(await page.evaluate(() => window.errors.some((e) => /answered 429/.test(e))));
    await holdsFor(async () => (await collector.count('errors', 'flaky')) === 10, { what: 'exactly 10 after the retries' });
    await context.close();
  });

  test('Retry-After as an HTTP date (from a proxy in front of the collector) is honoured; an unreadable one backs off as usual', async () => {
    // A local stand-in for a CDN or proxy (a third party): it answers the first POST of
    // each round with 429 and the given Retry-After, then 202.
    const rounds = [];
    let answer;
    const proxy = createServer((req, res) => {
      const cors = { 'Access-Control-Allow-Origin': req.headers.origin || '*', 'Access-Control-Allow-Headers': 'Authorization, Content-Type', 'Access-Control-Expose-Headers': 'Retry-After' };
      if (req.method === 'OPTIONS') { res.writeHead(204, cors); return res.end(); }
      req.resume();
      req.on('end', () => {
        rounds.at(-1).push(Date.now());
        const retryAfter = answer;
        answer = undefined;
        if (retryAfter !== undefined) { res.writeHead(429, { ...cors, 'Retry-After': retryAfter }); return res.end('{}'); }
        res.writeHead(202, { ...cors, 'Content-Type': 'application/json' });
        res.end('{"accepted":1,"duplicates":0,"rejected":[]}');
      });
    });
    await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${proxy.address().port}`;
      const context = await browser.newContext();
      const { page } = await open(context);
      await start(page, { endpoint, key: 'k', flushAt: 1, flushIntervalMs: 3_600_000 });
      const round = async (retryAfter) => {
        rounds.push([]);
        answer = retryAfter;
        await page.evaluate(() => window.tt.track('through_a_proxy', {}));
        await waitFor(() => rounds.at(-1).length === 2, { what: 'the retry', timeoutMs: 15_000 });
        const [first, second] = rounds.at(-1);
        return second - first;
      };
      // Four seconds ahead, to the second: the retry waits at least three.
      const date = new Date(Math.floor(Date.now() / 1000) * 1000 + 4000).toUTCString();
      assert.match(date, /^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/);
      const waitedForDate = await round(date);
      assert.ok(waitedForDate >= 2_900, `the date was honoured: ${waitedForDate} ms`);
      // The first backoff is 0.5 to 1 s: for what is not a delay or an exact HTTP date (a
      // lenient date parser would read 31 February as 3 March), and for 0 too.
      for (const unreadable of ['soon', 'Thu, 31 Feb 2099 00:00:10 GMT', '0']) {
        const waited = await round(unreadable);
        assert.ok(waited >= 450 && waited < 2_000, `Retry-After ${unreadable}: the usual backoff, not at once (${waited} ms)`);
      }
      const waitedForSeconds = await round('2');
      assert.ok(waitedForSeconds >= 1_950 && waitedForSeconds < 3_500, `delay seconds: ${waitedForSeconds} ms`);
      await context.close();
    } finally {
      proxy.close();
    }
  });

  test('a retry after the server already stored the batch counts once', async () => {
    const app = await appFor('stored');
    assert.equal((await collector.admin('PUT', '/v1/admin/faults', { ingest: ['store_then_500'] })).status, 200);
    const context = await browser.newContext();
    const { page } = await open(context);
    const posts = [];
    page.on('request', (r) => { if (r.url().includes('/v1/events') && r.method() === 'POST') posts.push(JSON.parse(r.postData())); });
    await start(page, { endpoint: collector.url, key: app.ingest_key, flushAt: 5, flushIntervalMs: 3_600_000 });
    await page.evaluate(() => { for (let i = 0; i < 5; i++) window.tt.track('twice', {}); });
    await waitFor(() => posts.length >= 2, { what: 'the retry' });
    assert.equal(posts[0].batch_id, posts[1].batch_id);
    await collector.waitForCount('stored', 'twice', 5);
    await holdsFor(async () => (await collector.count('stored', 'twice', { source: 'raw' })) === 5, { forMs: 1500, what: 'the resend absorbed' });
    assert.equal(await collector.count('stored', 'twice', { source: 'raw' }), 5);
    assert.equal(await collector.count('stored', 'twice'), 5);
    await context.close();
  });

  test('two tabs each track 100: exactly 200 arrive', async () => {
    const app = await appFor('tabs');
    const context = await browser.newContext();
    const tabs = [await open(context), await open(context)];
    const options = { endpoint: collector.url, key: app.ingest_key, flushAt: 20, flushIntervalMs: 300 };
    await Promise.all(tabs.map(({ page }) => start(page, options)));
    await Promise.all(tabs.map(({ page }, t) => page.evaluate((t) => { for (let i = 0; i < 100; i++) window.tt.track('tab_event', { t }); }, t)));
    await collector.waitForCount('tabs', 'tab_event', 200);
    await holdsFor(async () => (await collector.count('tabs', 'tab_event')) === 200, { forMs: 1500, what: 'exactly 200 from two tabs' });
    const byTab = await collector.stats({ app: 'tabs', event: 'tab_event', by: 't' });
    assert.deepEqual(byTab.json.top, [{ value: '0', count: 100 }, { value: '1', count: 100 }]);
    await context.close();
  });
});

describe('page close', () => {
  // Requests made while a page goes away are not reported to Playwright, so the page logs
  // the event ids it hands to sendBeacon or fetch itself (the log survives a restore from
  // the back/forward cache, as all of the page's state does).
  const LOG_SENDS = () => {
    window.sentIds = [];
    const log = (body) => { try { window.sentIds.push(...JSON.parse(body).events.map((e) => e.id)); } catch { /* not a batch */ } };
    const realBeacon = Navigator.prototype.sendBeacon;
    Navigator.prototype.sendBeacon = function (url, body) { log(body); return realBeacon.call(this, url, body); };
    const realFetch = window.fetch;
    window.fetch = function (input, init) { if (String(input).includes('/v1/events')) log(init?.body); return realFetch.call(this, input, init); };
  };

  test('a webview without sendBeacon or IndexedDB: a closed page still delivers, by keepalive fetch', async () => {
    const app = await appFor('webview');
    const context = await browser.newContext();
    const { page, errors } = await open(context, [() => {
      delete Navigator.prototype.sendBeacon;
      Object.defineProperty(window, 'indexedDB', { value: undefined });
    }]);
    await start(page, { endpoint: collector.url, key: app.ingest_key, flushAt: 100, flushIntervalMs: 3_600_000 });
    const apis = await page.evaluate(() => {
      for (let i = 0; i < 3; i++) window.tt.track('closing', { i });
      return [typeof navigator.sendBeacon, typeof window.indexedDB];
    });
    assert.deepEqual(apis, ['undefined', 'undefined']);
    assert.deepEqual(errors, []);
    // No timer or size trigger is due: only the page-hide path (keepalive fetch) can send.
    await page.close({ runBeforeUnload: true });
    await collector.waitForCount('webview', 'closing', 3);
    await context.close();
  });

  test('a page restored from the back/forward cache does not send its page-hide events again', async () => {
    const app = await appFor('bfcache');
    // Playwright turns the cache off by default; this browser keeps it on.
    const cachingBrowser = await launchChromium({ backForwardCache: true });
    try {
      const page = await cachingBrowser.newPage();
      await page.addInitScript(LOG_SENDS);
      await page.goto(`${collector.url}/healthz`);
      await loadSdk(page);
      await start(page, { endpoint: collector.url, key: app.ingest_key, flushAt: 100, flushIntervalMs: 3_600_000 });
      await page.evaluate(() => { for (let i = 0; i < 5; i++) window.tt.track('before_leaving', { i }); });
      await page.goto(`${collector.url}/healthz?elsewhere`); // pagehide: the 5 leave by beacon
      await page.goBack({ waitUntil: 'commit' }); // a restore fires no load event
      const restored = await waitFor(
        () => page.evaluate(() => window.tt && { queued: window.tt.queueLength }).catch(() => undefined),
        { what: 'the page restored from the back/forward cache, its client alive' },
      );
      assert.deepEqual(restored, { queued: 0 }, 'nothing left to send after the restore');
      await page.evaluate(() => { window.tt.track('after_return', {}); return window.tt.flush(); });
      await collector.waitForCount('bfcache', 'before_leaving', 5);
      await collector.waitForCount('bfcache', 'after_return', 1);
      const ids = await page.evaluate(() => window.sentIds);
      assert.equal(ids.length, 6, JSON.stringify(ids));
      assert.equal(new Set(ids).size, 6, 'every event was sent exactly once');
    } finally {
      await cachingBrowser.close();
    }
  });
});

describe('storage limits never break the page', () => {
  test('a full storage quota: no exception, events still delivered, the problem reported', async () => {
    const app = await appFor('quota');
    const context = await browser.newContext();
    const { page, errors } = await open(context, [() => {
      const real = Storage.prototype.setItem;
      Storage.prototype.setItem = function (k, v) {
        if (String(k).startsWith('telltale:q')) throw new DOMException('quota', 'QuotaExceededError');
        return real.call(this, k, v);
      };
    }]);
    await start(page, { endpoint: collector.url, key: app.ingest_key, flushAt: 100, flushIntervalMs: 1000 });
    await page.evaluate(() => { for (let i = 0; i < 10; i++) window.tt.track('quota_event', {}); });
    await page.waitForFunction(() => window.errors.some((e) => /storage is full or blocked/.test(e)));
    await collector.waitForCount('quota', 'quota_event', 10);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('storage disabled (a locked-down webview): no exception, memory-only delivery', async () => {
    const app = await appFor('nostorage');
    const context = await browser.newContext();
    const { page, errors } = await open(context, [() => {
      Object.defineProperty(window, 'localStorage', { get() { throw new DOMException('denied', 'SecurityError'); } });
      Object.defineProperty(window, 'sessionStorage', { get() { throw new DOMException('denied', 'SecurityError'); } });
    }]);
    await start(page, { endpoint: collector.url, key: app.ingest_key, flushAt: 5, flushIntervalMs: 200 });
    await page.evaluate(() => { for (let i = 0; i < 5; i++) window.tt.track('memory_only', {}); });
    await collector.waitForCount('nostorage', 'memory_only', 5);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('over the byte budget the oldest are evicted, counted, and the count reaches the collector', async () => {
    const app = await appFor('budget');
    const context = await browser.newContext();
    const { page } = await open(context, [OFFLINE_SWITCH]);
    await page.evaluate(() => window.goOffline());
    await start(page, { endpoint: collector.url, key: app.ingest_key, flushAt: 500, flushIntervalMs: 200, maxStorageBytes: 5000 });
    await page.evaluate(() => { for (let i = 0; i < 100; i++) window.tt.track('budget_event', { pad: 'x'.repeat(100) }); });
    const { queued, dropped } = await page.evaluate(() => ({ queued: window.tt.queueLength, dropped: window.tt.droppedCount }));
    assert.equal(queued + dropped, 100);
    assert.ok(dropped > 0 && queued > 0);
    await page.evaluate(() => window.goOnline());
    await collector.waitForCount('budget', 'budget_event', queued);
    await waitFor(async () => (await collector.admin('GET', '/v1/admin/pipeline')).json.client_dropped.budget === dropped, { what: 'the drop report' });
    await context.close();
  });
});

describe('consent and privacy', () => {
  test('optOut stops storing and sending, persists, and optIn resumes', async () => {
    const app = await appFor('consent');
    const context = await browser.newContext();
    const { page } = await open(context);
    const posts = [];
    page.on('request', (r) => { if (r.url().includes('/v1/events') && r.method() === 'POST') posts.push(JSON.parse(r.postData())); });
    const options = { endpoint: collector.url, key: app.ingest_key, flushAt: 1, flushIntervalMs: 200 };
    await start(page, options);
    const state = await page.evaluate(async () => {
      window.tt.optOut();
      for (let i = 0; i < 5; i++) window.tt.track('should_not_exist', {});
      await window.tt.flush();
      await new Promise((r) => setTimeout(r, 300));
      const stored = Object.keys(localStorage).filter((k) => k.startsWith('telltale:q'));
      return { queued: window.tt.queueLength, stored, optedOut: window.tt.optedOut };
    });
    assert.deepEqual(state, { queued: 0, stored: [], optedOut: true });
    const again = await start(page, options).then(() => page.evaluate(() => window.tt.optedOut));
    assert.equal(again, true, 'the choice persists');
    await page.evaluate(() => { window.tt.optIn(); window.tt.track('after_opt_in', {}); });
    await collector.waitForCount('consent', 'after_opt_in', 1);
    // All in one task, the same name before and after: what was tracked before opting out
    // is forgotten, and the event after opting in again still carries its name, type,
    // anonymous id and URL (the parts it shares with the forgotten one).
    const anonymousId = await page.evaluate(() => {
      window.tt.track('same_task_opt_in', { before: true });
      window.tt.optOut();
      window.tt.optIn();
      window.tt.track('same_task_opt_in', { after: true });
      return window.tt.anonymousId;
    });
    await collector.waitForCount('consent', 'same_task_opt_in', 1);
    const sameTask = posts.flatMap((p) => p.events).filter((e) => e.name === 'same_task_opt_in');
    assert.equal(sameTask.length, 1, JSON.stringify(sameTask));
    assert.deepEqual(sameTask[0].props, { after: true });
    assert.equal(sameTask[0].type, 'track');
    assert.equal(sameTask[0].anonymous_id, anonymousId);
    assert.match(sameTask[0].url, /^http:\/\/127\.0\.0\.1/);
    assert.ok(posts.every((p) => p.events.every((e) => e.name !== 'should_not_exist')));
    assert.equal(await page.evaluate(() => document.cookie), '', 'no cookies');
    await context.close();
  });

  test('Global Privacy Control is respected by default, and configurable', async () => {
    const context = await browser.newContext();
    const { page } = await open(context, [() => { Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }); }]);
    const result = await page.evaluate((endpoint) => {
      const stored = () => [...Object.keys(localStorage), ...Object.keys(sessionStorage)].filter((k) => k.startsWith('telltale'));
      const client = new window.Telltale({ endpoint, key: 'k', flagMode: 'off' });
      client.track('not_collected', {});
      const respected = client.optedOut;
      const storedWhileOptedOut = stored();
      const overridden = new window.Telltale({ endpoint, key: 'k', flagMode: 'off', respectDoNotTrack: false }).optedOut;
      return { respected, storedWhileOptedOut, overridden, storedOnceCollecting: stored().length > 0 };
    }, collector.url);
    assert.deepEqual(result, { respected: true, storedWhileOptedOut: [], overridden: false, storedOnceCollecting: true });
    await context.close();
  });

  test('sampleRate 0.5 over 1,000 anonymous ids keeps about half, with every event of each kept id', async () => {
    const context = await browser.newContext();
    const { page } = await open(context);
    const result = await page.evaluate((endpoint) => {
      const tt = new window.Telltale({ endpoint, key: 'k', flagMode: 'off', sampleRate: 0.5, flushAt: 500, maxQueue: 100000, flushIntervalMs: 3_600_000 });
      let kept = 0; let partial = 0;
      for (let i = 0; i < 1000; i++) {
        tt.reset();
        const before = tt.queueLength;
        for (let j = 0; j < 3; j++) tt.track('sampled', {});
        const added = tt.queueLength - before;
        if (added === 3) kept++; else if (added !== 0) partial++;
      }
      return { kept, partial };
    }, collector.url);
    assert.equal(result.partial, 0);
    // The ids are random, so the count is Binomial(1000, 0.5): sd 15.8. ±5.5 sd (413..587) fails
    // by chance about once in 25 million runs, yet fails a rate of 0.35 or 0.65 and a stuck 0 or 1. The exact
    // decision per id is pinned by core's unit test over fixed ids (delivery::sampled).
    assert.ok(result.kept >= 413 && result.kept <= 587, `kept ${result.kept}`);
    await context.close();
  });

  test('beforeSend edits or drops events', async () => {
    const app = await appFor('hooks');
    const context = await browser.newContext();
    const { page } = await open(context);
    await page.evaluate((o) => {
      window.tt = new window.Telltale({ ...o, flagMode: 'off', beforeSend: (e) => (e.name === 'secret' ? null : { ...e, props: { ...e.props, edited: true } }) });
      window.tt.track('secret', {});
      window.tt.track('public', { a: 1 });
      return window.tt.flush();
    }, { endpoint: collector.url, key: app.ingest_key, flushAt: 10, flushIntervalMs: 3_600_000 });
    await collector.waitForCount('hooks', 'public', 1);
    const top = await collector.stats({ app: 'hooks', event: 'public', by: 'edited' });
    assert.deepEqual(top.json.top, [{ value: 'true', count: 1 }]);
    assert.equal(await collector.count('hooks', 'secret'), null);
    await context.close();
  });

  test('an event is what it was when tracked, though it is serialized at the end of the task', async () => {
    const app = await appFor('snapshot');
    const context = await browser.newContext();
    const { page } = await open(context);
    const queued = await page.evaluate((o) => {
      const shared = { name: 'hooked', type: 'track', props: { v: 'at-return' } };
      window.tt = new window.Telltale({ ...o, flagMode: 'off', beforeSend: (e) => (e.name === 'hooked' ? Object.assign(shared, { id: e.id, ts: e.ts, anonymous_id: e.anonymous_id }) : e) });
      const props = { v: 'at-track' };
      window.tt.track('plain', props);
      props.v = 'changed-later';
      window.tt.track('hooked', {});
      shared.props.v = 'changed-later';
      history.pushState({}, '', '/moved'); // the URL read for the next event is the new one
      window.tt.track('after_move', {});
      history.replaceState({}, '', '/replaced');
      window.tt.track('after_replace', {});
      location.hash = 'h';
      window.tt.track('after_hash', {});
      const length = window.tt.queueLength; // counted while still waiting in JS
      return window.tt.flush().then(() => length);
    }, { endpoint: collector.url, key: app.ingest_key, flushAt: 10, flushIntervalMs: 3_600_000 });
    assert.equal(queued, 5);
    await collector.waitForCount('snapshot', 'after_hash', 1);
    for (const [event, value] of [['plain', 'at-track'], ['hooked', 'at-return']]) {
      const top = await collector.stats({ app: 'snapshot', event, by: 'v' });
      assert.deepEqual(top.json.top, [{ value, count: 1 }], event);
    }
    const recent = await collector.admin('GET', '/v1/events/recent?app=snapshot&limit=10');
    const urlOf = (name) => recent.json.events.find((e) => e.name === name).url;
    assert.match(urlOf('after_move'), /\/moved$/);
    assert.match(urlOf('after_replace'), /\/replaced$/);
    assert.match(urlOf('after_hash'), /\/replaced#h$/);
    await context.close();
  });

  test('page code run inside track() (getters, beforeSend, onError, optOut, Array.prototype.toJSON) loses no event and changes none', async () => {
    const app = await appFor('reentry');
    const context = await browser.newContext();
    const { page } = await open(context);
    const result = await page.evaluate(async (o) => {
      const errors = [];
      let tt;
      // onError and beforeSend read queueLength and droppedCount, which hand the events over
      // while track() is still recording one.
      const hooked = new window.Telltale({ ...o, flagMode: 'off', onError: (e) => { errors.push(e.message); void hooked.queueLength; },
        beforeSend: (e) => {
          void hooked.queueLength; void hooked.droppedCount;
          // A prop whose value is undefined is not in the props the hook sees (JSON has none).
          if (e.name === 'throws' || 'gone' in e.props) throw new Error('x');
          e.props.seen = true;
          return e;
        } });
      for (const name of ['h1', 'throws', 'h2', 'h3']) hooked.track(name, { k: name, gone: undefined });
      tt = new window.Telltale({ ...o, flagMode: 'off', onError: (e) => errors.push(e.message) });
      // Opted out by a getter of its own props: the event is forgotten with the rest.
      tt.track('opted_out_inside', { get k() { tt.optOut(); return 'x'; } });
      tt.optIn();
      let reads = 0;
      const getters = {
        // Read once, into the copy: a second read would give what JSON cannot hold.
        get once() { reads += 1; return reads === 1 ? 'first' : 10n; },
        // Page code mid-track(): a hand-over and an event of its own.
        get nested() { void tt.queueLength; tt.track('inner', { k: 'inner' }); return 'outer-prop'; },
      };
      tt.track('outer', getters);
      tt.track('after', { k: 'after' });
      // An old library's Array.prototype.toJSON would turn the hand-over into a string.
      Array.prototype.toJSON = function () { return 'not an array'; };
      try {
        tt.track('with_array_tojson', { k: 'x' });
        tt.track('with_array_tojson_2', { k: 'y' });
        void tt.queueLength; // the hand-over, while Array.prototype.toJSON is there
      } finally {
        delete Array.prototype.toJSON;
      }
      const delivered = await hooked.flush() + await tt.flush();
      return { errors, reads, delivered, dropped: hooked.droppedCount + tt.droppedCount };
    }, { endpoint: collector.url, key: app.ingest_key, flushAt: 50, flushIntervalMs: 3_600_000 });
    assert.equal(result.reads, 1, 'a getter is read once');
    assert.deepEqual(result.errors, ['telltale: beforeSend threw; the event is kept as it was'], 'only the hook that throws on purpose');
    assert.equal(result.dropped, 0);
    assert.equal(result.delivered, 9, JSON.stringify(result));
    await collector.waitForCount('reentry', 'with_array_tojson_2', 1);
    const recent = await collector.admin('GET', '/v1/events/recent?app=reentry&limit=20');
    const byName = Object.fromEntries(recent.json.events.map((e) => [e.name, e]));
    assert.deepEqual(Object.keys(byName).sort(), ['after', 'h1', 'h2', 'h3', 'inner', 'outer', 'throws', 'with_array_tojson', 'with_array_tojson_2']);
    assert.deepEqual(byName.outer.props, { once: 'first', nested: 'outer-prop' }, 'the outer event keeps its own name and props');
    assert.deepEqual(byName.inner.props, { k: 'inner' });
    assert.deepEqual(byName.h2.props, { k: 'h2', seen: true });
    assert.deepEqual(byName.throws.props, { k: 'throws' });
    assert.deepEqual(byName.with_array_tojson_2.props, { k: 'y' });
    await context.close();
  });

  test('an event JSON cannot hold is dropped with a report, and the events after it are delivered', async () => {
    const app = await appFor('unjson');
    const context = await browser.newContext();
    const { page } = await open(context);
    const errors = await page.evaluate(async (o) => {
      const errors = [];
      const tt = new window.Telltale({ ...o, flagMode: 'off', onError: (e) => errors.push(e.message),
        beforeSend: (e) => {
          if (e.name === 'big') e.props.n = 10n;
          // Not an object once serialized: queued, it would have made the batch invalid JSON.
          if (e.name === 'number') return { toJSON: () => 5 };
          return e;
        } });
      tt.track('big', {});
      tt.track('number', {});
      tt.track('fine', {});
      await new Promise((r) => setTimeout(r, 50)); // the end-of-task hand-over
      tt.track('later', {});
      await tt.flush();
      return errors;
    }, { endpoint: collector.url, key: app.ingest_key, flushAt: 10, flushIntervalMs: 3_600_000 });
    assert.equal(errors.length, 2, errors.join('; '));
    assert.ok(errors.every((e) => /JSON cannot hold/.test(e)), errors.join('; '));
    await collector.waitForCount('unjson', 'later', 1);
    assert.equal(await collector.count('unjson', 'fine'), 1);
    assert.equal(await collector.count('unjson', 'big'), null);
    await context.close();
  });
});
