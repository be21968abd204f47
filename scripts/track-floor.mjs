// The floor under track() in Chromium on this machine: what an idealized capture path
// costs per event when it does only the unavoidable work (a timestamp, an id from a block,
// the props checked and serialized, the event as a JSON line built from cached parts, one
// join and one native UTF-8 encode for the hand-over) and nothing else: no wasm queue, no
// persistence, no error guard. If this floor is above the 1 µs goal, no rework of the
// SDK's JS reaches it while events are JSON text built per call (#13, README Known gaps).
// Run: node scripts/track-floor.mjs (Node 22; Debian's Chromium). Prints the median of 7
// bursts of 19,000 calls, like BENCH_ONLY=track.
import { PATHS, ensureBrowsers } from './toolchain.mjs';

ensureBrowsers();
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: PATHS.chromium, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
try {
  const page = await browser.newPage();
  await page.goto('data:text/html,<title>track floor</title>');
  const figures = await page.evaluate(() => {
    const ids = '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b'.repeat(32);
    const anonymous = JSON.stringify('0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c');
    const url = JSON.stringify('https://example.com/courses?x=1');
    let at = 0;
    let lastName;
    let lastNameJson;
    const pending = [];
    const flat = (props) => {
      const out = {};
      for (const k in props) {
        const v = props[k];
        const t = typeof v;
        if (t === 'string' || t === 'number' || t === 'boolean' || v === null) out[k] = v; else return null;
      }
      return out;
    };
    const track = (name, props) => {
      const ts = Date.now();
      if (at >= ids.length) at = 0;
      const id = ids.slice(at, (at += 36));
      if (name !== lastName) { lastName = name; lastNameJson = JSON.stringify(name); }
      pending.push(`{"id":"${id}","type":"track","name":${lastNameJson},"ts":${ts},"anonymous_id":${anonymous},"props":${JSON.stringify(flat(props))},"url":${url}}`);
    };
    const encoder = new TextEncoder();
    const buffer = new Uint8Array(8 << 20);
    const n = 19_000;
    const rounds = { calls: [], handover: [], total: [] };
    for (let r = 0; r < 7; r++) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) track('bench_track', { i, plan: 'pro' });
      const t1 = performance.now();
      encoder.encodeInto(pending.join('\n'), buffer);
      pending.length = 0;
      const t2 = performance.now();
      rounds.calls.push(((t1 - t0) * 1000) / n);
      rounds.handover.push(((t2 - t1) * 1000) / n);
      rounds.total.push(((t2 - t0) * 1000) / n);
    }
    const median = (xs) => +[...xs].sort((a, b) => a - b)[3].toFixed(2);
    return Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, median(v)]));
  });
  console.log(`track() floor in Chromium, µs per event (median of 7 bursts of 19,000): calls ${figures.calls}, hand-over ${figures.handover}, total ${figures.total} (goal 1)`);
} finally {
  await browser.close();
}
