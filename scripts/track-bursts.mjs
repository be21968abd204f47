// The in-page measurement of track() that `npm run bench` takes in each engine. It runs in
// the page (passed to page.evaluate, so it must use nothing from this module).
//
// A burst is 19,000 calls of one event, timed with the hand-over into wasm (reading
// droppedCount forces it inside the timed span). A client with no flush due for an hour:
// - its first burst, in a page that has not run track() yet: what the engine's compilers
//   and the heap's growth add while a page warms up;
// - then 15 bursts, the queue emptied before each outside the timed span (optOut +
//   optIn), as delivered batches empty it: the cost of a call in a page that has been
//   tracking for a while, amortised with its hand-over (in Chromium the compilers and the
//   heap settle over the first 100,000 calls or so);
// - then 15 bursts into a second client whose queue (19,000 events) is full, as when the
//   collector cannot be reached for a while: each event evicts the oldest.
// Returns µs per call: the first burst; amortised over the first and the 15 after it (all
// their time over all their calls: what a page that tracks this much pays per call); the
// median of those 15; and the median burst into the full queue. Each burst takes tens
// of ms, so the whole runs in seconds.
export function trackBursts({ endpoint, key }) {
  const n = 19000;
  const options = { endpoint, key, flagMode: 'off', flushAt: 500, flushIntervalMs: 3600000, maxStorageBytes: 50000000 };
  /** µs per call; with `keepsAll`, fails if the queue dropped any. */
  const burst = (tt, keepsAll) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) tt.track('bench_track', { i, plan: 'pro' });
    const dropped = tt.droppedCount;
    const us = ((performance.now() - t0) * 1000) / n;
    if (keepsAll && (dropped !== 0 || tt.queueLength !== n)) throw new Error(`the bench queue dropped events (${dropped}; ${tt.queueLength} queued)`);
    return us;
  };
  const rounds = 15;
  const median = (xs) => +xs.sort((a, b) => a - b)[rounds >> 1].toFixed(2);
  const tt = new window.Telltale({ ...options, maxQueue: n });
  const first = burst(tt, true);
  const steady = [];
  for (let round = 0; round < rounds; round++) {
    tt.optOut();
    tt.optIn();
    steady.push(burst(tt, true));
  }
  const full = new window.Telltale({ ...options, maxQueue: n });
  for (let i = 0; i < n; i++) full.track('warmup', { i });
  void full.droppedCount;
  const fullQueue = [];
  for (let round = 0; round < rounds; round++) fullQueue.push(burst(full, false));
  if (full.queueLength !== n) throw new Error(`the full queue holds ${full.queueLength} events`);
  const amortised = (first + steady.reduce((sum, us) => sum + us, 0)) / (rounds + 1);
  return { calls_per_round: n, rounds, first_burst_us_per_call: +first.toFixed(2), amortised_us_per_call: +amortised.toFixed(2), us_per_call: median(steady), full_queue_us_per_call: median(fullQueue), user_agent: navigator.userAgent };
}
