// The in-page measurement of track() that `npm run bench` takes in each engine. It runs in
// the page (passed to page.evaluate, so it must use nothing from this module).
//
// A burst is 19,000 calls of one event, timed with the hand-over into wasm (reading
// droppedCount forces it inside the timed span). A client with no flush due for an hour:
// - its first burst, in a page that has not run track() yet: what a page pays while the
//   engine's compilers warm up (in a CDP trace of one in Chromium, 3 ms of its 54 ms were
//   GC; the rest, code not yet optimized, JS and wasm, and the first hand-over);
// - then 15 bursts, the queue emptied before each outside the timed span (optOut +
//   optIn), as delivered batches empty it: the cost of a call in a page that has been
//   tracking for a while, amortised with its hand-over (in Chromium the compilers settle
//   over the first 100,000 calls or so);
// - then 15 bursts into a second client whose queue (19,000 events) is full, as when the
//   collector cannot be reached for a while: each event evicts the oldest.
// Returns µs per call: the first burst; amortised over the first and the 15 after it (all
// their time over all their calls: what a page that tracks this much pays per call); the
// median of those 15; and the median burst into the full queue. Each burst takes tens
// of ms, so the whole runs in seconds. The bench runs it in 5 fresh pages per engine and
// reports the median of each figure (one page's figures move by up to 2x on this VM).
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
  // Queues emptied, so that leaving the page sends nothing: the local collector shares this
  // machine's 2 cores, and would be storing the page-hide beacons while the next page is timed.
  tt.optOut();
  full.optOut();
  const amortised = (first + steady.reduce((sum, us) => sum + us, 0)) / (rounds + 1);
  return { calls_per_round: n, rounds, first_burst_us_per_call: +first.toFixed(2), amortised_us_per_call: +amortised.toFixed(2), us_per_call: median(steady), full_queue_us_per_call: median(fullQueue), user_agent: navigator.userAgent };
}

// A page's ordinary use, which the bursts above leave out: a few events per task (a click
// handler, a route change), names alternating, so that each hand-over carries the shared
// parts and each event its time; timed with the work the SDK does for them at the end of
// the task, in its 0 ms timer (the hand-over into wasm, each event's own JSON and the
// persisted copy written to localStorage), which a wrapper of setTimeout times as it runs
// (not the event loop's own time between tasks). The queue is emptied at 20 events outside
// the timed span, as sends at the default flushAt would. Each task is a MessageChannel
// message. Returns µs per event, median of 5 rounds of 200 tasks, for 1 and for 10 events
// a task. Runs in the page, like trackBursts.
export async function trackPerTask({ endpoint, key }) {
  const channel = new MessageChannel();
  const nextTask = () => new Promise((resolve) => { channel.port1.onmessage = resolve; channel.port2.postMessage(0); });
  const realSetTimeout = window.setTimeout;
  let timerMs = 0;
  window.setTimeout = (fn, ms, ...args) => realSetTimeout(() => {
    const t0 = performance.now();
    try { fn(...args); } finally { timerMs += performance.now() - t0; }
  }, ms);
  const timersRun = () => new Promise((resolve) => realSetTimeout(resolve, 0));
  localStorage.clear(); // a queue persisted by an earlier client on the page, which this one would adopt
  const tt = new window.Telltale({ endpoint, key, flagMode: 'off', flushAt: 500, flushIntervalMs: 3600000 });
  const tasks = 200;
  /** µs per event, `k` events a task. */
  const round = async (k) => {
    let callsMs = 0;
    timerMs = 0;
    for (let t = 0; t < tasks; t++) {
      await nextTask();
      const t0 = performance.now();
      for (let i = 0; i < k; i++) tt.track(i % 2 ? 'view' : 'click', { i, plan: 'pro' });
      callsMs += performance.now() - t0;
      await timersRun();
      if (tt.queueLength >= 20) {
        tt.optOut();
        tt.optIn();
      }
    }
    return ((callsMs + timerMs) * 1000) / (tasks * k);
  };
  const out = {};
  try {
    for (const k of [1, 10]) {
      await round(k); // warm-up
      const perEvent = [];
      for (let r = 0; r < 5; r++) perEvent.push(await round(k));
      perEvent.sort((a, b) => a - b);
      out[`events_per_task_${k}_us_per_event`] = +perEvent[2].toFixed(1);
    }
  } finally {
    window.setTimeout = realSetTimeout;
  }
  if (tt.droppedCount !== 0) throw new Error('the per-task client dropped events');
  return out;
}
