// Experiments: the list, the editor (opened from a flag with its split filled in, so a
// flag becomes an experiment in two clicks: "Experiment" on the flag, then "Stage"), and
// the results page: the sample ratio mismatch banner above everything, the variants'
// table, each metric's lift with its 95% interval drawn as a chart, and cumulative
// exposed users over time.
import { api, describe, qs } from '../api.js';
import { timeChart } from '../charts.js';
import { confirmAction, fmt, h, mount, say, table, utc } from '../dom.js';

const cfgPath = (app, rest) => `/v1/apps/${encodeURIComponent(app)}/config${rest}`;
const SVG = 'http://www.w3.org/2000/svg';
const KINDS = ['conversion', 'count', 'sum', 'mean'];

const pct = (x, digits = 1) => (x == null ? '—' : `${(x * 100).toFixed(digits)}%`);
const signedPct = (x) => (x == null ? '—' : `${x > 0 ? '+' : ''}${(x * 100).toFixed(1)}%`);
const num = (x) => (x == null ? '—' : Math.abs(x) >= 1000 ? fmt.format(Math.round(x)) : String(+x.toFixed(3)));
const pValue = (p) => (p == null ? '—' : p < 0.0001 ? '< 0.0001' : p.toFixed(4));

/** The split of a flag an experiment can run on (its one split rule), or null. */
export function splitOf(flag) {
  const splits = (flag.rules || []).filter((r) => r.serve && r.serve.split);
  return splits.length === 1 && flag.variants.length > 1 ? splits[0].serve.split : null;
}

function metricText(m) {
  const what = m.prop ? `${m.event}.${m.prop}` : m.event;
  return `${m.kind} of ${what}${m.window_days ? ` within ${m.window_days} d` : ''}`;
}

export async function experimentsView(el, ctx) {
  const current = await api('GET', cfgPath(ctx.app, '/entries?at=stage'));
  const experiments = Object.values(current.entries.experiments || {});
  const runnable = Object.values(current.entries.flags).filter(splitOf);
  const message = h('p#experiments-message', { role: 'status' });
  const remove = async (key) => {
    if (!confirmAction(`Stage the deletion of experiment "${key}"? It is removed when the stage is committed and published; its flag is not touched.`)) return;
    try {
      await api('DELETE', cfgPath(ctx.app, `/stage/experiments/${encodeURIComponent(key)}`));
      await experimentsView(el, ctx);
      say(el.querySelector('#experiments-message'), 'ok', `Deletion of ${key} staged. Review it under Release.`);
    } catch (err) {
      say(message, 'error', describe(err));
    }
  };
  mount(el, h('h2', {}, 'Experiments'),
    h('p.muted', {}, 'An experiment runs on a flag that serves a weighted split: the split assigns, $exposure events say who saw which variant, and the metric events say what they did next. Staged here; commit and publish under Release.'),
    message,
    h('section.card', {}, experiments.length ? table(['Experiment', 'Flag', 'Control', 'Primary metric', 'Window (UTC)', ''], experiments.map((x) => [
      h('a', { href: `#/experiments/${encodeURIComponent(x.key)}` }, x.key),
      h('a', { href: `#/flags/edit/${encodeURIComponent(x.flag)}` }, x.flag),
      x.control, metricText(x.primary_metric), `${x.start} → ${x.end || 'open'}`,
      h('button.link', { type: 'button', on: { click: () => remove(x.key) } }, 'Delete'),
    ])) : h('p.empty', {}, 'No experiments yet.')),
    h('section.card', {}, h('h3', {}, 'Start one from a flag with a split'),
      runnable.length ? h('div.row', {}, runnable.map((f) => h('a.button.secondary', { href: `#/experiments/new/${encodeURIComponent(f.key)}`, dataset: { flag: f.key } }, `Experiment on ${f.key}`)))
        : h('p.empty', {}, 'No flag serves a split yet: give a flag a rule that serves a weighted split first.')));
}

/** The editor, prefilled from `flagKey`: key, control (the split's first variant), a
 * conversion metric on the app's first custom event within 7 days, starting today. */
export async function experimentEditorView(el, ctx, flagKey) {
  const [current, catalog] = await Promise.all([
    api('GET', cfgPath(ctx.app, '/entries?at=stage')),
    api('GET', `/v1/catalog${qs({ app: ctx.app })}`),
  ]);
  const flag = current.entries.flags[flagKey];
  const split = flag && splitOf(flag);
  if (!split) {
    mount(el, h('h2', {}, 'New experiment'), h('p.error', { role: 'alert' }, `Flag ${flagKey} does not serve exactly one weighted split, so no experiment can run on it.`),
      h('a', { href: '#/flags' }, 'Back to flags'));
    return;
  }
  const events = catalog.events.map((e) => e.name).filter((n) => !n.startsWith('$'));
  const draft = {
    key: `${flagKey}-test`, flag: flagKey, control: split[0].variant,
    primary_metric: { kind: 'conversion', event: events[0] || '', window_days: 7 },
    start: new Date().toISOString().slice(0, 10),
  };
  const status = h('p#experiment-status', { role: 'status' });
  const field = (label, input, path) => h('label.field', { dataset: { path } }, h('span', {}, label), input, h('span.field-error'));
  const metric = draft.primary_metric;
  const propInput = h('input#metric-prop', { placeholder: 'numeric property', on: { input: (e) => { metric.prop = e.target.value.trim() || undefined; } } });
  const form = h('form.card.editor#experiment-editor', {},
    h('p.muted', {}, `Runs on flag ${flagKey}: split ${split.map((s) => `${s.variant} ${s.weight}%`).join(' / ')}.`),
    field('Key', h('input#experiment-key', { value: draft.key, on: { input: (e) => { draft.key = e.target.value.trim(); } } }), 'key'),
    field('Control variant', h('select#experiment-control', { on: { change: (e) => { draft.control = e.target.value; } } },
      split.map((s) => h('option', { value: s.variant, selected: s.variant === draft.control }, s.variant))), 'control'),
    h('fieldset', {}, h('legend', {}, 'Primary metric'), h('div.row', {},
      field('Kind', h('select#metric-kind', { on: { change: (e) => { metric.kind = e.target.value; } } }, KINDS.map((k) => h('option', { value: k, selected: k === metric.kind }, k))), 'primary_metric.kind'),
      field('Event', h('input#metric-event', { value: metric.event, list: 'known-events', on: { input: (e) => { metric.event = e.target.value.trim(); } } }), 'primary_metric.event'),
      h('datalist#known-events', {}, events.map((n) => h('option', { value: n }))),
      field('Property (sum, mean)', propInput, 'primary_metric.prop'),
      field('Window (days after exposure)', h('input#metric-window', { type: 'number', value: metric.window_days, min: 1, max: 365,
        on: { input: (e) => { metric.window_days = e.target.value ? Number(e.target.value) : undefined; } } }), 'primary_metric.window_days'))),
    h('div.row', {},
      field('Start (UTC date or time)', h('input#experiment-start', { value: draft.start, on: { input: (e) => { draft.start = e.target.value.trim(); } } }), 'start'),
      field('End (optional)', h('input#experiment-end', { placeholder: 'open', on: { input: (e) => { draft.end = e.target.value.trim() || undefined; } } }), 'end')),
    status,
    h('div.row', {}, h('button#experiment-stage', { type: 'submit' }, 'Stage experiment'), h('a', { href: '#/experiments' }, 'Back')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const old of form.querySelectorAll('.field-error')) old.textContent = '';
    try {
      await api('PUT', cfgPath(ctx.app, `/stage/experiments/${encodeURIComponent(draft.key)}`), draft);
      ctx.go(`#/experiments/${encodeURIComponent(draft.key)}`);
    } catch (err) {
      say(status, 'error', describe(err));
      const slot = form.querySelector(`[data-path="${CSS.escape(err.field || '')}"] .field-error`);
      if (slot) slot.textContent = err.message;
    }
  });
  mount(el, h('h2', {}, 'New experiment'), form);
}

/** Each treatment's lift with its 95% interval on one axis, 0 marked: a forest plot. */
function liftChart(metric, control) {
  const rows = metric.variants.filter((v) => v.variant !== control && v.comparison && v.comparison.lift != null);
  if (!rows.length) return h('p.empty', {}, 'Not enough data to compare yet.');
  const lows = rows.map((r) => r.comparison.lift_low);
  const highs = rows.map((r) => r.comparison.lift_high);
  let min = Math.min(0, ...lows);
  let max = Math.max(0, ...highs);
  const pad = (max - min) * 0.1 || 0.1;
  min -= pad;
  max += pad;
  const width = 640;
  const left = 110;
  const rowHeight = 34;
  const height = rows.length * rowHeight + 30;
  const x = (v) => left + ((v - min) / (max - min)) * (width - left - 20);
  const svg = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', class: 'lift-chart', 'aria-label': `Lift of ${metric.label} against control, 95% intervals` });
  root.append(svg('line', { x1: x(0), x2: x(0), y1: 4, y2: height - 22, stroke: '#5d6676', 'stroke-dasharray': '4 4' }));
  root.append(svg('text', { x: x(0), y: height - 6, 'text-anchor': 'middle', 'font-size': 11, fill: '#5d6676' }, '0 (control)'));
  // The axis ends, where they do not crowd the 0 label.
  for (const [tick, anchor] of [[min, 'start'], [max, 'end']]) {
    if (Math.abs(x(tick) - x(0)) > 70) root.append(svg('text', { x: x(tick), y: height - 6, 'text-anchor': anchor, 'font-size': 11, fill: '#5d6676' }, signedPct(tick)));
  }
  rows.forEach((r, i) => {
    const y = 18 + i * rowHeight;
    const c = r.comparison;
    const color = c.lift_low > 0 ? '#17753f' : c.lift_high < 0 ? '#b3261e' : '#3257d6';
    root.append(svg('text', { x: 4, y: y + 4, 'font-size': 12, fill: '#1d2330' }, r.variant));
    root.append(svg('line', { x1: x(c.lift_low), x2: x(c.lift_high), y1: y, y2: y, stroke: color, 'stroke-width': 3 }));
    root.append(svg('circle', { cx: x(c.lift), cy: y, r: 5, fill: color }));
    root.append(svg('text', { x: x(c.lift), y: y - 9, 'text-anchor': 'middle', 'font-size': 11, fill: color }, `${signedPct(c.lift)} [${signedPct(c.lift_low)}, ${signedPct(c.lift_high)}]`));
  });
  return h('div.lift', {}, root);
}

function metricCard(metric, control) {
  const rate = metric.kind === 'conversion';
  return h('section.card.metric', { dataset: { metric: metric.label } },
    h('h3', {}, `${metric.primary ? 'Primary' : 'Secondary'}: ${metric.label}`),
    table(['Variant', metric.kind === 'mean' ? 'Users with the event' : 'Exposed users', rate ? 'Converted' : 'Total', rate ? 'Rate' : 'Per user', 'Lift (95% interval)', 'p-value', 'Always-valid p', 'P(beats control)'],
      metric.variants.map((v) => {
        const c = v.comparison;
        const note = c && c.not_comparable ? c.not_comparable.replaceAll('_', ' ') : null;
        return [
          v.variant === control ? `${v.variant} (control)` : v.variant,
          fmt.format(v.users), num(v.total), rate ? pct(v.mean, 2) : num(v.mean),
          v.variant === control ? '—' : note || (c ? `${signedPct(c.lift)} [${signedPct(c.lift_low)}, ${signedPct(c.lift_high)}]` : '—'),
          v.variant === control || !c || note ? '—' : pValue(c.p_value),
          v.variant === control || !c || note || !c.always_valid ? '—' : pValue(c.always_valid.p_value),
          v.variant === control || !c || note ? '—' : pct(c.probability_to_beat),
        ];
      }), { numeric: [1, 2, 3, 5, 6, 7] }),
    h('p.muted.small', {}, 'The p-value is for one look at a planned end; the always-valid p-value (mSPRT) stays valid however often you look.'),
    liftChart(metric, control));
}

export async function experimentResultsView(el, ctx, key) {
  const s = ctx.state;
  s.experimentAt ||= 'stage';
  let r;
  try {
    r = await api('GET', `/v1/apps/${encodeURIComponent(ctx.app)}/experiments/${encodeURIComponent(key)}/results${qs({ at: s.experimentAt })}`);
  } catch (err) {
    mount(el, h('h2', {}, `Experiment ${key}`), h('p.error', { role: 'alert' }, describe(err)), h('a', { href: '#/experiments' }, 'All experiments'));
    return;
  }
  const primary = r.metrics.find((m) => m.primary);
  const winners = primary.variants.filter((v) => v.comparison && v.comparison.lift_low > 0).map((v) => v.variant);
  const losers = primary.variants.filter((v) => v.comparison && v.comparison.lift_high < 0).map((v) => v.variant);
  const verdict = winners.length ? `${winners.join(', ')} beat${winners.length === 1 ? 's' : ''} ${r.control} on ${primary.label}: the whole 95% interval is above 0 (a fixed-horizon interval: if you have been watching daily, check the always-valid p-value too).`
    : losers.length ? `${losers.join(', ')} did worse than ${r.control} on ${primary.label}.`
      : `No variant differs from ${r.control} on ${primary.label} yet: every interval includes 0.`;
  const chart = h('div.chart#exposure-chart', { role: 'img', 'aria-label': 'Cumulative exposed users per variant' });
  mount(el, h('h2', {}, `Experiment ${key}`),
    r.srm.mismatch ? h('p.card.banner.error#srm-banner', { role: 'alert' }, r.srm.message) : null,
    h('p.muted', {}, `Flag `, h('a', { href: `#/flags/edit/${encodeURIComponent(r.flag)}` }, r.flag),
      ` · window ${utc(r.window.start)} → ${r.window.end ? utc(r.window.end) : 'open'} (through ${utc(r.window.through)}) · computed ${utc(r.computed_at, { seconds: true })} · `,
      h('label.inline', {}, 'Definition from ', h('select#experiment-at', { on: { change: (e) => { s.experimentAt = e.target.value; experimentResultsView(el, ctx, key); } } },
        ['stage', 'head', 'published'].map((at) => h('option', { value: at, selected: at === s.experimentAt }, at))))),
    r.backfill && !r.backfill.complete ? h('p.muted#experiment-backfill', { role: 'status' },
      `Still copying events stored before this experiment (${fmt.format(r.backfill.pending_rows)} rows to walk): metrics may be missing some until then; reload in a minute.`) : null,
    h('p#experiment-verdict', { class: r.srm.mismatch ? 'muted' : winners.length ? 'ok' : '' }, r.srm.mismatch ? `Not trustworthy until the mismatch is explained. ${verdict}` : verdict),
    h('section.card', {}, h('h3', {}, 'Variants'),
      table(['Variant', 'Split weight', 'Exposed users'], r.variants.map((v) => [v.variant === r.control ? `${v.variant} (control)` : v.variant, `${v.weight}%`, fmt.format(v.exposed_users)]), { numeric: [1, 2] }),
      h('p.muted.small', {}, `Sample ratio check: χ² ${num(r.srm.chi_square)}, p ${pValue(r.srm.p_value)}. Excluded: ${fmt.format(r.excluded.mixed_variant_users)} users seen in two variants, ${fmt.format(r.excluded.outside_split_users)} exposed to a variant outside the split. Cost: ${r.cost.queries} queries, ${fmt.format(r.cost.rows_read)} rows read.`)),
    r.metrics.map((m) => metricCard(m, r.control)),
    h('section.card', {}, h('h3', {}, 'Exposed users over time (cumulative, UTC days)'),
      r.exposures_by_day.length ? chart : h('p.empty', {}, 'No exposures yet: they arrive as $exposure events when the flag is read.')));
  if (r.exposures_by_day.length) {
    const times = r.exposures_by_day.map((d) => Date.parse(d.day));
    timeChart(chart, times, r.variants.map((v) => ({ label: v.variant, values: r.exposures_by_day.map((d) => d.cumulative[v.variant] || 0) })));
  }
}
