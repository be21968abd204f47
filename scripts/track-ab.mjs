// Compares builds of the SDK on track() in Chromium, alternately, in one browser: on this
// 2-core VM the same build varies by up to 2x between page loads, so one build's figure
// against another's from a different run says little. Each round loads every build in
// turn in a fresh page and times the bursts BENCH_ONLY=track times (track-bursts.mjs: 5
// bursts of 19,000 calls with the hand-over into wasm, the median burst); the figure per
// build is the median page.
// Usage: copy a build's www/sdk to a directory, change the SDK, `npm start` or
// `npm test` rebuilds www/sdk, then
//   node scripts/track-ab.mjs /tmp/sdk-before www/sdk        (ROUNDS=8 by default)
// The page's events go to a local sink on 127.0.0.1 (flushes are an hour apart: none
// happen during the timing).
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { PATHS, ensureBrowsers } from './toolchain.mjs';
import { trackBursts } from './track-bursts.mjs';

const builds = process.argv.slice(2).map((dir) => resolve(dir));
if (builds.length < 1) throw new Error('usage: node scripts/track-ab.mjs <sdk dir> [<sdk dir> ...]');
const rounds = Number(process.env.ROUNDS || 8);
const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm' };

const server = createServer((req, res) => {
  const [, index, ...rest] = req.url.split('?')[0].split('/');
  if (req.method !== 'GET') {
    req.resume();
    req.on('end', () => { res.writeHead(202, { 'Content-Type': 'application/json' }); res.end('{"accepted":0,"duplicates":0,"rejected":[]}'); });
    return;
  }
  const dir = builds[Number(index)];
  if (!dir) { res.writeHead(404); return res.end(); }
  if (rest.join('/') === '') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    return res.end(`<!doctype html><title>track A/B</title><script type=module>import init, { Telltale } from './telltale.js'; await init(); window.Telltale = Telltale; window.ready = true;</script>`);
  }
  try {
    const body = readFileSync(join(dir, ...rest));
    res.writeHead(200, { 'Content-Type': TYPES[extname(rest.at(-1))] || 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((done) => server.listen(0, '127.0.0.1', done));
const origin = `http://127.0.0.1:${server.address().port}`;

ensureBrowsers();
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: PATHS.chromium, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
const figures = builds.map(() => ({ total: [], calls: [], full: [] }));
try {
  for (let round = 0; round < rounds; round++) {
    for (let b = 0; b < builds.length; b++) {
      const page = await browser.newPage();
      await page.goto(`${origin}/${b}/`);
      await page.waitForFunction(() => window.ready);
      const r = await page.evaluate(trackBursts, { endpoint: origin, key: 'k' });
      figures[b].total.push(r.us_per_call);
      figures[b].calls.push(r.calls_only_us);
      figures[b].full.push(r.full_queue_us_per_call);
      await page.evaluate(() => localStorage.clear());
      await page.close();
    }
  }
} finally {
  await browser.close();
  server.close();
}
const median = (xs) => +[...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)].toFixed(2);
builds.forEach((dir, b) => {
  console.log(`${dir}: µs per track() with the hand-over ${median(figures[b].total)} (calls alone ${median(figures[b].calls)}; with a full queue ${median(figures[b].full)}); pages: ${figures[b].total.map((x) => x.toFixed(2)).join(' ')}`);
});
