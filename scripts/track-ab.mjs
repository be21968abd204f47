// Compares builds of the SDK on track() in Chromium, interleaved in one page: on this 2-core
// VM the same build varies by up to 2x between page loads and from one minute to the next,
// so figures from different pages or runs say little about a change. Every build is loaded
// into the same page (each its own module and wasm instance), and the rounds alternate
// between them, each build's client timing one burst of 19,000 calls with the hand-over
// into wasm (reading droppedCount forces it inside the timed span), then emptied outside
// it (optOut + optIn), as delivered batches empty a queue. The order rotates every round.
// The figure per build is the median burst over every round of every page.
// `BENCH_ONLY=track` times one build with scripts/track-bursts.mjs, in fresh pages; use
// this script to compare builds. With FRESH=1 it runs that same trackBursts instead, each
// page a new browser context loading one build, the builds alternating page by page: the
// figure the bench reports, a page's first (cold) burst included, compared build by build
// (PAGES=8 by default there).
// Usage: copy a build's www/sdk to a directory, change the SDK, `npm start` or
// `npm test` rebuilds www/sdk, then
//   node scripts/track-ab.mjs /tmp/sdk-before www/sdk        (PAGES=3 ROUNDS=12 by default)
// The page's events go to a local sink on 127.0.0.1 (flushes are an hour apart: none
// happen during the timing).
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { PATHS, ensureBrowsers } from './toolchain.mjs';
import { trackBursts } from './track-bursts.mjs';

const builds = process.argv.slice(2).map((dir) => resolve(dir));
if (builds.length < 1) throw new Error('usage: node scripts/track-ab.mjs <sdk dir> [<sdk dir> ...]');
const fresh = Boolean(process.env.FRESH);
const pages = Number(process.env.PAGES || (fresh ? 8 : 3));
const rounds = Number(process.env.ROUNDS || 12);
const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm' };

const server = createServer((req, res) => {
  const [, index, ...rest] = req.url.split('?')[0].split('/');
  if (req.method !== 'GET') {
    req.resume();
    req.on('end', () => { res.writeHead(202, { 'Content-Type': 'application/json' }); res.end('{"accepted":0,"duplicates":0,"rejected":[]}'); });
    return;
  }
  if (index === '') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    return res.end('<!doctype html><title>track A/B</title>');
  }
  try {
    const body = readFileSync(join(builds[Number(index)], ...rest));
    res.writeHead(200, { 'Content-Type': TYPES[extname(rest.at(-1))] || 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((done) => server.listen(0, '127.0.0.1', done));
const origin = `http://127.0.0.1:${server.address().port}`;

/** Runs in the page: every build's client, bursts interleaved. µs per call per burst. */
async function interleaved({ origin, count, rounds }) {
  const clients = [];
  for (let b = 0; b < count; b++) {
    const sdk = await import(`${origin}/${b}/telltale.js`);
    await sdk.default();
    const tt = new sdk.Telltale({ endpoint: origin, key: `k${b}`, flagMode: 'off', flushAt: 500, flushIntervalMs: 3600000, maxQueue: 100000, maxStorageBytes: 50000000 });
    for (let i = 0; i < 2000; i++) tt.track('warmup', { i });
    void tt.droppedCount;
    clients.push(tt);
  }
  const n = 19000;
  const figures = clients.map(() => ({ total: [], calls: [] }));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < count; k++) {
      const b = (k + round) % count;
      const tt = clients[b];
      const t0 = performance.now();
      for (let i = 0; i < n; i++) tt.track('bench_track', { i, plan: 'pro' });
      const t1 = performance.now();
      if (tt.droppedCount !== 0) throw new Error('the A/B queue dropped events');
      const t2 = performance.now();
      figures[b].total.push(((t2 - t0) * 1000) / n);
      figures[b].calls.push(((t1 - t0) * 1000) / n);
      tt.optOut();
      tt.optIn();
    }
  }
  return figures;
}

ensureBrowsers();
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: PATHS.chromium, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
/** Runs in the page: loads build `b` as `window.Telltale`, for trackBursts. */
async function loadBuild({ origin, b }) {
  const sdk = await import(`${origin}/${b}/telltale.js`);
  await sdk.default();
  window.Telltale = sdk.Telltale;
}

const figures = builds.map(() => ({ total: [], calls: [], bursts: [] }));
try {
  for (let p = 0; p < pages; p++) {
    if (fresh) {
      for (let k = 0; k < builds.length; k++) {
        const b = (k + p) % builds.length;
        const context = await browser.newContext();
        const page = await context.newPage();
        await page.goto(`${origin}/`);
        await page.evaluate(loadBuild, { origin, b });
        figures[b].bursts.push(await page.evaluate(trackBursts, { endpoint: origin, key: `k${b}` }));
        await context.close();
      }
      continue;
    }
    const page = await browser.newPage();
    await page.goto(`${origin}/`);
    const r = await page.evaluate(interleaved, { origin, count: builds.length, rounds });
    r.forEach((f, b) => { figures[b].total.push(...f.total); figures[b].calls.push(...f.calls); });
    await page.evaluate(() => localStorage.clear());
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
const quantile = (xs, q) => +[...xs].sort((x, y) => x - y)[Math.floor(xs.length * q)].toFixed(2);
builds.forEach((dir, b) => {
  if (fresh) {
    const runs = figures[b].bursts;
    const median = (key) => quantile(runs.map((r) => r[key]), 0.5);
    console.log(`${dir}: µs per track(), medians over ${runs.length} fresh pages: amortised ${median('amortised_us_per_call')} `
      + `(each page: ${runs.map((r) => r.amortised_us_per_call).join(', ')}), first burst ${median('first_burst_us_per_call')}, `
      + `the 15 after it ${median('us_per_call')}, into a full queue ${median('full_queue_us_per_call')}`);
    return;
  }
  const { total, calls } = figures[b];
  console.log(`${dir}: µs per track() with the hand-over: median ${quantile(total, 0.5)} (quartiles ${quantile(total, 0.25)}–${quantile(total, 0.75)}); `
    + `calls alone ${quantile(calls, 0.5)}; ${total.length} bursts`);
});
