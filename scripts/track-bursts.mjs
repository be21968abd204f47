// The in-page measurement of track() that `npm run bench` (each engine) and
// scripts/track-ab.mjs (builds side by side) share. It runs in the page (passed to
// page.evaluate, so it must use nothing from this module): a client with no flush due for
// an hour, 2,000 warm-up calls, then 5 bursts of 19,000 calls, each timed with the
// hand-over into wasm (reading droppedCount forces it inside the timed span); then the same
// bursts into a client whose queue (19,000 events) is full. Returns the median burst, µs per call, with and
// without the hand-over, and with a full queue.
export function trackBursts({ endpoint, key }) {
  const tt = new window.Telltale({ endpoint, key, flagMode: 'off', flushAt: 500, flushIntervalMs: 3600000, maxQueue: 100000, maxStorageBytes: 50000000 });
  for (let i = 0; i < 2000; i++) tt.track('warmup', { i });
  void tt.droppedCount;
  const n = 19000; // 5 bursts and the warm-up stay within maxQueue: no send in between
  const totals = [], calls = [];
  for (let burst = 0; burst < 5; burst++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) tt.track('bench_track', { i, plan: 'pro' });
    const t1 = performance.now();
    if (tt.droppedCount !== 0) throw new Error('the bench queue dropped events');
    totals.push(((performance.now() - t0) * 1000) / n);
    calls.push(((t1 - t0) * 1000) / n);
  }
  const median = (xs) => +xs.sort((a, b) => a - b)[2].toFixed(2);
  // A full queue, as when the collector cannot be reached for a while: each event evicts
  // the oldest (this was as slow as the queue is long; ~1,000 per hand-over cross at once).
  const full = new window.Telltale({ endpoint, key, flagMode: 'off', flushAt: 500, flushIntervalMs: 3600000, maxQueue: n, maxStorageBytes: 50000000 });
  for (let i = 0; i < n; i++) full.track('warmup', { i });
  void full.droppedCount;
  const fullTotals = [];
  for (let burst = 0; burst < 5; burst++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) full.track('bench_track', { i, plan: 'pro' });
    void full.droppedCount;
    fullTotals.push(((performance.now() - t0) * 1000) / n);
  }
  if (full.queueLength !== n) throw new Error(`the full queue holds ${full.queueLength} events`);
  return { calls_per_round: n, us_per_call: median(totals), calls_only_us: median(calls), full_queue_us_per_call: median(fullTotals), user_agent: navigator.userAgent };
}
