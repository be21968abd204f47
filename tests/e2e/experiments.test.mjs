// Experiments (#16) end to end through `wrangler dev`: definitions staged like any config
// (and refused, naming the field, when they cannot run), exposures folded exactly once by
// the consumer, and results that name the better variant with an interval holding the
// true lift, from simulated users of two kinds: browsers running the SDK in Chromium, and
// servers deciding at the edge (`POST /v1/flags/evaluate`) and sending `/v1/events`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { seedDemoConfig } from '../../scripts/demo-config.mjs';
import { Collector, launchChromium, loadSdk, uuidv7, waitFor } from './harness.mjs';

const DAY = 86_400_000;
const VARIANTS = [{ key: 'control', value: false }, { key: 'treatment', value: true }];
const SPLIT_FLAG = (extra = {}) => ({
  variants: VARIANTS, default_variant: 'control',
  rules: [{ id: 'ab', serve: { split: [{ variant: 'control', weight: 50 }, { variant: 'treatment', weight: 50 }] } }],
  ...extra,
});
const START = new Date(Date.now() - 20 * DAY).toISOString().slice(0, 10);
const EXPERIMENT = {
  flag: 'checkout', control: 'control',
  primary_metric: { kind: 'conversion', event: 'purchase', window_days: 7 },
  secondary_metrics: [
    { kind: 'sum', event: 'purchase', prop: 'amount' },
    { kind: 'count', event: 'click' },
    { kind: 'mean', event: 'purchase', prop: 'amount' },
  ],
  start: START,
};
// The true conversion rates: treatment converts 1.5 times as often (true lift 0.5).
const RATE = { control: 0.10, treatment: 0.15 };

let collector;
before(async () => { collector = await Collector.start(); });
after(async () => { await collector?.stop(); });

async function appWith(entries) {
  const app = await collector.newApp('exp', [collector.url]);
  if (entries.length) await collector.publishConfig(app.id, entries, 'experiment config');
  return app;
}

const results = (app, key, query = '') => collector.admin('GET', `/v1/apps/${app.id}/experiments/${key}/results${query}`);

async function send(app, events) {
  for (let i = 0; i < events.length; i += 200) {
    const res = await collector.ingest({ sent_at: Date.now(), events: events.slice(i, i + 200) }, { key: app.ingest_key });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.rejected.length, 0, res.text);
  }
}

/** Waits until the raw events of each name number exactly `counts` (the consumer stores
 * and folds in one transaction, so exposures are folded once they show). */
async function stored(app, counts) {
  let last;
  await waitFor(async () => {
    last = {};
    for (const name of Object.keys(counts)) {
      const r = await collector.stats({ app: app.id, event: name, source: 'raw', interval: 'day', from: Date.now() - 29 * DAY });
      last[name] = r.status === 200 ? r.json.series.reduce((s, p) => s + p.count, 0) : r.status;
    }
    return Object.keys(counts).every((n) => last[n] === counts[n]);
  }, { timeoutMs: 60_000, what: `stored events ${JSON.stringify(counts)}` }).catch((e) => { throw new Error(`${e.message}; last ${JSON.stringify(last)}`); });
}

describe('experiment definitions', () => {
  test('are staged, committed and published like flags, and refused naming the field when they cannot run', async () => {
    const app = await appWith([
      ['flags', 'checkout', SPLIT_FLAG()],
      ['flags', 'plain', { variants: VARIANTS, default_variant: 'control' }],
      ['flags', 'two-splits', SPLIT_FLAG({ rules: [SPLIT_FLAG().rules[0], { ...SPLIT_FLAG().rules[0], id: 'again' }] })],
    ]);
    const stage = (key, body) => collector.config(app.id, 'PUT', `/stage/experiments/${key}`, body);
    const refusals = [
      [{ ...EXPERIMENT, flag: 'nope' }, 422, 'unknown_flag', 'flag'],
      [{ ...EXPERIMENT, flag: 'plain' }, 422, 'flag_without_split', 'flag'],
      [{ ...EXPERIMENT, flag: 'two-splits' }, 422, 'flag_without_split', 'flag'],
      [{ ...EXPERIMENT, control: 'nobody' }, 422, 'unknown_variant', 'control'],
      [{ ...EXPERIMENT, primary_metric: { kind: 'conversion', event: 'purchase' } }, 422, 'required', 'primary_metric.window_days'],
      [{ ...EXPERIMENT, primary_metric: { kind: 'sum', event: 'purchase' } }, 422, 'required', 'primary_metric.prop'],
      [{ ...EXPERIMENT, secondary_metrics: [{ kind: 'median', event: 'x' }] }, 422, 'invalid_experiment', 'secondary_metrics[0].kind'],
      [{ ...EXPERIMENT, start: 'soon' }, 422, 'invalid_experiment', 'start'],
      [{ ...EXPERIMENT, end: START }, 422, 'invalid_experiment', 'end'],
      [{ ...EXPERIMENT, winner: 'treatment' }, 422, 'invalid_experiment', 'winner'],
      [{ ...EXPERIMENT, key: 'other' }, 422, 'key_mismatch', 'key'],
      [[EXPERIMENT], 400, 'invalid_type', 'body'],
    ];
    for (const [body, status, code, field] of refusals) {
      const res = await stage('test', body);
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${res.text}`);
      assert.deepEqual([res.json.error.code, res.json.error.field], [code, field], res.text);
    }
    assert.equal((await collector.config(app.id, 'GET', '/stage')).json.changes.length, 0, 'nothing refused was staged');
    const ok = await stage('test', EXPERIMENT);
    assert.equal(ok.status, 200, ok.text);
    // A flag an experiment runs on cannot be deleted, nor lose its split or the control.
    const del = await collector.config(app.id, 'DELETE', '/stage/flags/checkout');
    assert.equal(del.status, 409, del.text);
    assert.equal(del.json.error.code, 'flag_in_use');
    assert.deepEqual(del.json.error.details.experiments, ['test']);
    const noSplit = await collector.config(app.id, 'PUT', '/stage/flags/checkout', { ...SPLIT_FLAG(), rules: [] });
    assert.equal(noSplit.status, 422, noSplit.text);
    assert.deepEqual([noSplit.json.error.code, noSplit.json.error.field], ['experiment_conflict', 'rules']);
    const renamed = await collector.config(app.id, 'PUT', '/stage/flags/checkout', SPLIT_FLAG({
      variants: [{ key: 'a', value: false }, { key: 'treatment', value: true }], default_variant: 'a',
      rules: [{ id: 'ab', serve: { split: [{ variant: 'a', weight: 50 }, { variant: 'treatment', weight: 50 }] } }] }));
    assert.equal(renamed.status, 422, renamed.text);
    assert.match(renamed.json.error.message, /experiment `test`.*control/);
    // Committed and published like any entry; diffed; the flag is deletable once it is gone.
    assert.equal((await collector.config(app.id, 'POST', '/commits', { message: 'experiment' })).status, 201);
    const entries = await collector.config(app.id, 'GET', '/entries?at=head');
    assert.equal(entries.json.entries.experiments.test.flag, 'checkout');
    assert.equal((await collector.config(app.id, 'DELETE', '/stage/experiments/test')).status, 200);
    assert.equal((await collector.config(app.id, 'DELETE', '/stage/flags/checkout')).status, 200);
    // Results: admin only, the experiment must exist, `at` is checked.
    const asIngest = await collector.request('GET', `/v1/apps/${app.id}/experiments/test/results`, { headers: { Authorization: `Bearer ${app.ingest_key}` } });
    assert.equal(asIngest.status, 401, asIngest.text);
    const gone = await results(app, 'test');
    assert.deepEqual([gone.status, gone.json.error.code], [404, 'unknown_experiment']);
    assert.equal((await results(app, 'test', '?at=head')).status, 200, 'head still has it');
    const badAt = await results(app, 'test', '?at=tomorrow');
    assert.deepEqual([badAt.status, badAt.json.error.field], [400, 'at']);
    const extra = await results(app, 'test', '?at=head&metric=all');
    assert.equal(extra.status, 400, extra.text);
  });
});

describe('results', () => {
  let app;
  /** user → variant for every simulated user, as the collector or the SDK decided it. */
  const assigned = new Map();
  const sentExposures = [];

  before(async () => {
    app = await appWith([['flags', 'checkout', SPLIT_FLAG()], ['experiments', 'checkout-test', EXPERIMENT]]);
  });

  test('browsers running the SDK and servers deciding at the edge: B wins, the interval holds the true lift, each event counts once', async (testContext) => {
    let browserPurchases = 0;
    // 1. Browsers: each user a fresh client with its own id, deciding through the SDK, which
    //    sends the `$exposure` itself; converters buy through the SDK too.
    const browser = await launchChromium();
    try {
      const page = await (await browser.newContext()).newPage();
      await page.goto(`${collector.url}/healthz`);
      await loadSdk(page);
      const browserUsers = await page.evaluate(async ({ endpoint, key, rate }) => {
        const out = [];
        let purchases = 0;
        const converted = { control: 0, treatment: 0 };
        const seen = { control: 0, treatment: 0 };
        for (let i = 0; i < 40; i++) {
          localStorage.clear();
          const user = `browser-${i}`;
          const tt = new window.Telltale({ endpoint, key, context: { user_id: user }, flushIntervalMs: 3_600_000 });
          tt.identify(user);
          if (!(await tt.refreshFlags())) throw new Error('flags did not load');
          const variant = tt.variant('checkout'); // the exposure
          seen[variant]++;
          // Exactly the true rate per arm: the k-th user of an arm converts when the
          // running count of converters falls behind k × rate.
          if (converted[variant] < Math.round(seen[variant] * rate[variant])) {
            converted[variant]++;
            tt.track('purchase', { amount: 20 });
            purchases++;
          }
          tt.track('click', {});
          await tt.shutdown();
          out.push([user, variant]);
        }
        return { out, purchases };
      }, { endpoint: collector.url, key: app.ingest_key, rate: RATE });
      for (const [user, variant] of browserUsers.out) assigned.set(user, variant);
      browserPurchases = browserUsers.purchases;
    } finally {
      await browser.close();
    }
    assert.equal(assigned.size, 40);

    // 2. Servers: the edge decides each user (the same bucketing as the browser's), the
    //    server sends the exposure and the outcome through /v1/events.
    const users = Array.from({ length: 2400 }, (_, i) => `server-${i}`);
    const evaluate = (user) => collector.request('POST', '/v1/flags/evaluate',
      { body: { context: { user_id: user }, flags: ['checkout'] }, headers: { Authorization: `Bearer ${app.ingest_key}` } });
    for (let i = 0; i < users.length; i += 16) {
      const batch = users.slice(i, i + 16);
      const answers = await Promise.all(batch.map(evaluate));
      answers.forEach((res, j) => {
        assert.equal(res.status, 200, res.text);
        const d = res.json.flags.checkout;
        assert.equal(d.reason, 'SPLIT');
        assigned.set(batch[j], d.variant);
      });
    }
    const now = Date.now();
    const events = [];
    const seen = { control: 0, treatment: 0 };
    const converted = { control: 0, treatment: 0 };
    users.forEach((user, i) => {
      const variant = assigned.get(user);
      seen[variant]++;
      const exposedAt = now - 5 * DAY + i * 1000;
      const exposure = { id: uuidv7(), type: 'track', name: '$exposure', ts: exposedAt, anonymous_id: `anon-${user}`, user_id: user,
        props: { flag: 'checkout', variant, version: 'v', reason: 'SPLIT' } };
      events.push(exposure);
      sentExposures.push(exposure);
      if (converted[variant] < Math.round(seen[variant] * RATE[variant])) {
        converted[variant]++;
        events.push({ id: uuidv7(), type: 'track', name: 'purchase', ts: exposedAt + 3600_000, anonymous_id: `anon-${user}`, user_id: user, props: { amount: 20 } });
      }
      for (let c = 0; c < 1 + (i % 3); c++) events.push({ id: uuidv7(), type: 'track', name: 'click', ts: exposedAt + 60_000 * (c + 1), anonymous_id: `anon-${user}`, user_id: user, props: {} });
    });
    // What must not count: a purchase before the exposure, one after the conversion window
    // (it still counts for the windowless metrics), a user exposed to both variants, and
    // exposures a rule or the kill switch decided (not the split).
    const late = 'server-late';
    events.push({ id: uuidv7(), type: 'track', name: '$exposure', ts: now - 15 * DAY, user_id: late, anonymous_id: 'a-late', props: { flag: 'checkout', variant: 'control', version: 'v', reason: 'SPLIT' } });
    events.push({ id: uuidv7(), type: 'track', name: 'purchase', ts: now - 16 * DAY, user_id: late, anonymous_id: 'a-late', props: { amount: 1000 } });
    events.push({ id: uuidv7(), type: 'track', name: 'purchase', ts: now - 7 * DAY, user_id: late, anonymous_id: 'a-late', props: { amount: 1000 } });
    for (let m = 0; m < 3; m++) {
      for (const variant of ['control', 'treatment']) {
        events.push({ id: uuidv7(), type: 'track', name: '$exposure', ts: now - DAY + m, user_id: `mixed-${m}`, anonymous_id: `a-mixed-${m}`, props: { flag: 'checkout', variant, version: 'v', reason: 'SPLIT' } });
      }
      events.push({ id: uuidv7(), type: 'track', name: 'purchase', ts: now - DAY + 10, user_id: `mixed-${m}`, anonymous_id: `a-mixed-${m}`, props: { amount: 20 } });
    }
    events.push({ id: uuidv7(), type: 'track', name: '$exposure', ts: now - DAY, user_id: 'ruled', anonymous_id: 'a-ruled', props: { flag: 'checkout', variant: 'control', version: 'v', reason: 'DISABLED' } });
    await send(app, events);
    const named = (name) => events.filter((e) => e.name === name).length;
    const counts = { $exposure: 40 + named('$exposure'), purchase: browserPurchases + named('purchase'), click: 40 + named('click') };
    await stored(app, counts);

    const res = await results(app, 'checkout-test');
    assert.equal(res.status, 200, res.text);
    const r = res.json;
    // Exposed users per arm: exactly the users decided into it (the late user is control).
    const expected = { control: 1, treatment: 0 };
    for (const v of assigned.values()) expected[v]++;
    assert.deepEqual(Object.fromEntries(r.variants.map((v) => [v.variant, v.exposed_users])), expected);
    assert.equal(r.excluded.mixed_variant_users, 3);
    assert.equal(r.srm.mismatch, false, r.srm.message);
    const [conversion, sum, count, mean] = r.metrics;
    assert.equal(conversion.label, 'conversion(purchase, 7d)');
    assert.equal(conversion.primary, true);
    const byVariant = (metric) => Object.fromEntries(metric.variants.map((v) => [v.variant, v]));
    const c = byVariant(conversion);
    // Every converter bought once, in the window; the late user's purchases (before the
    // exposure, 8 days after it) and the mixed users' are not conversions.
    assert.equal(c.control.total + c.treatment.total, counts.purchase - 2 - 3);
    assert.equal(c.control.users, expected.control);
    const t = c.treatment.comparison;
    assert.ok(t.p_value < 0.05, `p = ${t.p_value}`);
    assert.ok(t.probability_to_beat > 0.95, `P(beat) = ${t.probability_to_beat}`);
    assert.ok(t.lift_low <= 0.5 && 0.5 <= t.lift_high, `the interval [${t.lift_low}, ${t.lift_high}] holds the true lift 0.5`);
    assert.ok(t.lift_low > 0, 'B is better: the interval is above 0');
    // The always-valid (mSPRT) p-value pays for looking at any time: larger than the fixed one.
    assert.ok(t.always_valid.p_value > t.p_value && t.always_valid.p_value <= 1, JSON.stringify(t.always_valid));
    assert.ok(t.always_valid.difference_low < 0.05 && 0.05 < t.always_valid.difference_high, 'its interval holds the true difference');
    // Sum of amounts: conversions × 20, plus the late user's purchase 8 days after exposure
    // (the sum metric has no window; the one before exposure never counts).
    assert.equal(byVariant(sum).control.total, c.control.total * 20 + 1000);
    assert.equal(byVariant(sum).treatment.total, c.treatment.total * 20);
    // Clicks: every user clicked 1–3 times whatever the variant.
    const clicks = byVariant(count);
    assert.ok(clicks.treatment.comparison.p_value > 0.001, 'no click difference is invented');
    // The mean of amounts counts only buyers.
    assert.equal(byVariant(mean).treatment.users, c.treatment.total);
    assert.equal(byVariant(mean).treatment.mean, 20);
    assert.ok(r.exposures_by_day.length >= 2);
    const last = r.exposures_by_day.at(-1).cumulative;
    assert.equal(last.control + last.treatment, expected.control + expected.treatment);
    assert.ok(r.cost.rows_read > 0 && r.cost.queries === 5, JSON.stringify(r.cost));
    testContext.diagnostic(`exposed ${JSON.stringify(expected)}; conversion lift ${c.treatment.comparison.lift.toFixed(3)} [${c.treatment.comparison.lift_low.toFixed(3)}, ${c.treatment.comparison.lift_high.toFixed(3)}], p ${c.treatment.comparison.p_value.toExponential(2)}, always-valid p ${c.treatment.comparison.always_valid.p_value.toFixed(4)}; cost ${JSON.stringify(r.cost)}`);
    assert.equal(r.window.start, `${START}T00:00:00Z`);

    // 3. Exactly once: events sent again (same ids) and exposures repeated later (new
    //    ids, as a new page view sends them) change nothing. One batch holds both, so
    //    once the repeats show, the resends went through the same transaction.
    const repeats = sentExposures.slice(-50).map((e) => ({ ...e, id: uuidv7(), ts: e.ts + 1 }));
    await send(app, [...repeats, ...events.slice(0, 150)]);
    await stored(app, { ...counts, $exposure: counts.$exposure + 50 });
    const again = (await results(app, 'checkout-test')).json;
    assert.deepEqual(again.variants, r.variants, 'resent events and repeated exposures add no user');
    assert.deepEqual(again.metrics, r.metrics);
  });

  test('events stored before the experiment count; hostile amounts cannot break or skew results; a finished experiment stays finished', async () => {
    const late = await appWith([['flags', 'checkout', SPLIT_FLAG()]]);
    const now = Date.now();
    const user = (i) => ({ user_id: `h${i}`, anonymous_id: `ha${i}` });
    const events = [];
    for (let i = 0; i < 40; i++) {
      const variant = i % 2 ? 'treatment' : 'control';
      events.push({ id: uuidv7(), type: 'track', name: '$exposure', ts: now - 3 * DAY, ...user(i), props: { flag: 'checkout', variant, version: 'v', reason: 'SPLIT' } });
      events.push({ id: uuidv7(), type: 'track', name: 'purchase', ts: now - 3 * DAY + 1000, ...user(i), props: { amount: 10 } });
      // After the experiment's end (2 days ago): never counted, with or without a window.
      events.push({ id: uuidv7(), type: 'track', name: 'purchase', ts: now - DAY, ...user(i), props: { amount: 10 } });
    }
    // Hostile amounts from a public key: past 2^63 as integers, past f64 when squared or summed.
    events.push({ id: uuidv7(), type: 'track', name: 'purchase', ts: now - 3 * DAY + 2000, ...user(0), props: { amount: 5e18 } });
    events.push({ id: uuidv7(), type: 'track', name: 'purchase', ts: now - 3 * DAY + 3000, ...user(0), props: { amount: 5e18 } });
    events.push({ id: uuidv7(), type: 'track', name: 'purchase', ts: now - 3 * DAY + 4000, ...user(1), props: { amount: 1e200 } });
    events.push({ id: uuidv7(), type: 'track', name: 'purchase', ts: now - 3 * DAY + 5000, ...user(1), props: { amount: -1.7e308 } });
    await send(late, events);
    // -2^63 exactly (JSON.stringify cannot write it): SQLite's abs() of it overflows.
    const raw = `{"sent_at":${Date.now()},"events":[{"id":"${uuidv7()}","type":"track","name":"purchase","ts":${now - 3 * DAY + 6000},"user_id":"h2","anonymous_id":"ha2","props":{"amount":-9223372036854775808,"a\\\\":1}}]}`;
    const hostile = await collector.ingest(raw, { key: late.ingest_key });
    assert.equal(hostile.status, 202, hostile.text);
    await stored(late, { $exposure: 40, purchase: 85 });
    // Only now is the experiment staged: its metric events were stored before.
    const end = new Date(now - 2 * DAY).toISOString();
    const res = await collector.config(late.id, 'PUT', '/stage/experiments/late', { ...EXPERIMENT, end,
      secondary_metrics: [{ kind: 'sum', event: 'purchase', prop: 'amount' }, { kind: 'count', event: 'purchase' }, { kind: 'mean', event: 'purchase', prop: 'amount' }] });
    assert.equal(res.status, 200, res.text);
    const r = await results(late, 'late');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.backfill, { complete: true, pending_rows: 0 });
    const [conversion, sum, count, mean] = r.json.metrics.map((m) => Object.fromEntries(m.variants.map((v) => [v.variant, v])));
    assert.deepEqual([conversion.control.total, conversion.treatment.total], [20, 20], 'stored purchases count');
    assert.deepEqual([sum.control.total, sum.treatment.total], [200, 200], 'amounts past ±1e15 are not numbers a metric adds');
    assert.deepEqual([count.control.total, count.treatment.total], [23, 22], 'events after the end do not count (the hostile ones are in the window)');
    assert.equal(mean.control.mean, 10);
    // A property named with a backslash (a JSON path's escape) is read by its exact key.
    const odd = await collector.config(late.id, 'PUT', '/stage/experiments/odd', { ...EXPERIMENT, end, primary_metric: { kind: 'sum', event: 'purchase', prop: 'a\\' } });
    assert.equal(odd.status, 200, odd.text);
    const oddResults = await results(late, 'odd');
    assert.equal(oddResults.status, 200, oddResults.text);
    assert.equal(oddResults.json.metrics[0].variants.find((v) => v.variant === 'control').total, 1);
    const again = await results(late, 'late');
    assert.deepEqual(again.json.metrics, r.json.metrics, 'finished results do not move');
  });

  test('an assignment that does not follow the weights raises the sample ratio mismatch', async () => {
    const skewed = await appWith([['flags', 'checkout', SPLIT_FLAG()], ['experiments', 'skewed', { ...EXPERIMENT, secondary_metrics: [] }]]);
    // A broken client logs treatment exposures twice as often as control ones.
    const events = Array.from({ length: 900 }, (_, i) => ({
      id: uuidv7(), type: 'track', name: '$exposure', ts: Date.now() - DAY, user_id: `u${i}`, anonymous_id: `a${i}`,
      props: { flag: 'checkout', variant: i % 3 ? 'treatment' : 'control', version: 'v', reason: 'SPLIT' },
    }));
    await send(skewed, events);
    await stored(skewed, { $exposure: events.length });
    const res = await results(skewed, 'skewed');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.srm.mismatch, true);
    assert.ok(res.json.srm.p_value < 0.001);
    assert.match(res.json.srm.message, /^Sample ratio mismatch/);
  });

  test("the demo product's own experiment: visitors of the demo page see a label by the split and enroll; results count each exactly", async () => {
    // What `npm start` seeds: the enroll-cta flag (50/50) and the experiment enroll-cta-test.
    assert.equal(await seedDemoConfig(collector.url, collector.adminKey), true);
    const browser = await launchChromium();
    const seen = { plain: 0, 'free-lesson': 0 };
    const enrolled = { plain: 0, 'free-lesson': 0 };
    try {
      for (let i = 0; i < 30; i++) {
        const context = await browser.newContext();
        const page = await context.newPage();
        await page.goto(`${collector.url}/`);
        await page.waitForFunction(() => window.telltale && window.telltale.variant('enroll-cta'));
        const { variant, label } = await page.evaluate(() => ({ variant: window.telltale.variant('enroll-cta'), label: document.querySelector('#courses button').textContent }));
        assert.equal(label, variant === 'plain' ? 'Enroll' : 'Enroll: first lesson free');
        seen[variant]++;
        // The free lesson converts two visitors in three, the plain label one in three.
        if (enrolled[variant] < Math.round(seen[variant] * (variant === 'plain' ? 1 / 3 : 2 / 3))) {
          enrolled[variant]++;
          await page.click('#courses button');
        }
        await page.evaluate(() => window.telltale.flush());
        await context.close();
      }
    } finally {
      await browser.close();
    }
    const demo = { id: 'demo' };
    await stored(demo, { enroll: enrolled.plain + enrolled['free-lesson'] });
    await waitFor(async () => {
      const r = (await results(demo, 'enroll-cta-test', '?at=published')).json;
      return r.variants.reduce((n, v) => n + v.exposed_users, 0) === 30;
    }, { what: '30 exposed visitors' });
    const r = (await results(demo, 'enroll-cta-test', '?at=published')).json;
    assert.deepEqual(Object.fromEntries(r.variants.map((v) => [v.variant, v.exposed_users])), seen);
    const conversion = Object.fromEntries(r.metrics[0].variants.map((v) => [v.variant, v.total]));
    assert.deepEqual(conversion, enrolled);
    assert.equal(r.excluded.mixed_variant_users, 0);
  });
});
