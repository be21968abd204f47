// Probes: the list with both windows, a detail page with the timeline (results,
// latency, transitions), the flags that require the probe, and the override control.
// `#/probes/new` is the probe editor.
import { api, describe, qs } from '../api.js';
import { probeTimeline } from '../charts.js';
import { confirmAction, fmt, h, mount, say, table, utc } from '../dom.js';

const pct = (r) => (r == null ? '—' : `${Math.round(r * 100)}%`);
const base = (app) => `/v1/apps/${encodeURIComponent(app)}/probes`;

export async function probesView(el, ctx) {
  const { probes } = await api('GET', base(ctx.app));
  mount(el, h('h2', {}, 'Probes'),
    h('div.row', {}, h('a.button#new-probe', { href: '#/probes/new' }, 'New probe')),
    h('section.card', {}, probes.length ? table(['Probe', 'State', 'Since (UTC)', 'Disable window', 'Enable window', 'Last result'], probes.map((p) => [
      h('a', { href: `#/probes/${encodeURIComponent(p.name)}` }, p.name),
      h('span', { class: `badge ${p.state}` }, p.state + (p.override !== 'auto' ? ` (${p.override})` : '')),
      p.since ? utc(p.since) : '—',
      `${pct(p.disable_window.pass_rate)} of ${p.disable_window.samples} in ${p.disable_window.ms / 1000} s`,
      `${pct(p.enable_window.pass_rate)} of ${p.enable_window.samples} in ${p.enable_window.ms / 1000} s`,
      p.last_result ? `${p.last_result.ok ? 'ok' : 'failed'} ${p.last_result.status ?? ''} ${p.last_result.latency_ms} ms, ${utc(p.last_result.ended_at, { seconds: true })}${p.last_result.error ? ` (${p.last_result.error})` : ''}` : 'not run yet',
    ])) : h('p.empty', {}, 'No published probes in this app. Create one with "New probe", then commit and publish it under Release.')));
}

export async function probeDetailView(el, ctx, name) {
  if (name === 'new') return probeEditorView(el, ctx);
  const s = ctx.state;
  s.probeRange ||= '24h';
  const span = s.probeRange === '7d' ? 7 * 86_400_000 : 86_400_000;
  const now = Date.now();
  const list = await api('GET', base(ctx.app));
  const probe = list.probes.find((p) => p.name === name);
  if (!probe) {
    mount(el, h('h2', {}, `Probe ${name}`),
      h('p.empty', {}, 'This probe is not published yet, so it does not run. '),
      h('p', {}, h('a', { href: '#/release' }, 'Commit and publish it under Release'), ' · ', h('a', { href: '#/probes' }, 'All probes')));
    return undefined;
  }
  const [hist, current] = await Promise.all([
    api('GET', `${base(ctx.app)}/${encodeURIComponent(name)}/history${qs({ from: now - span, to: now })}`),
    api('GET', `/v1/apps/${encodeURIComponent(ctx.app)}/config/entries?at=published`),
  ]);
  const requiring = Object.values(current.entries.flags).filter((f) => f.requires_probe === name).map((f) => f.key);
  const chart = h('div.chart#probe-chart', { role: 'img', 'aria-label': `${name} results over time` });
  const status = h('p#override-status', { role: 'status' });
  const mode = h('select#override-mode', {}, [['auto', 'automatic'], ['force_up', 'force up'], ['force_down', 'force down']]
    .map(([v, label]) => h('option', { value: v, selected: probe && probe.override === v }, label)));
  const reason = h('input#override-reason', { placeholder: 'why (required)', size: 40 });
  const apply = h('button#override-apply', { type: 'button' }, 'Apply');
  apply.addEventListener('click', async () => {
    if (!reason.value.trim()) { say(status, 'error', 'Say why: the reason goes to the audit log.'); return; }
    if (!confirmAction(`Set ${name} to ${mode.value.replace('_', ' ')}? Flags that require it follow at once.`)) return;
    try {
      const r = await api('PUT', `${base(ctx.app)}/${encodeURIComponent(name)}/override`, { mode: mode.value, reason: reason.value });
      say(status, 'ok', `${name} is now ${r.state} (override: ${r.override}).`);
      await probeDetailView(el, ctx, name);
      say(el.querySelector('#override-status'), 'ok', status.textContent);
    } catch (err) {
      say(status, 'error', describe(err));
    }
  });
  mount(el, h('h2', {}, `Probe ${name}`),
    probe ? h('p', {}, h('span', { class: `badge ${probe.state}` }, probe.state), probe.since ? ` since ${utc(probe.since)}` : '',
      ` · short window ${pct(probe.disable_window.pass_rate)} of ${probe.disable_window.samples}, long window ${pct(probe.enable_window.pass_rate)} of ${probe.enable_window.samples}`)
      : h('p.empty', {}, 'This probe is not published.'),
    h('div.row', {}, h('label', {}, 'Timeline ', h('select#probe-range', { on: { change: (e) => { s.probeRange = e.target.value; probeDetailView(el, ctx, name); } } },
      [['24h', 'last 24 h'], ['7d', 'last 7 days']].map(([v, label]) => h('option', { value: v, selected: v === s.probeRange }, label))))),
    h('section.card', {}, h('h3', {}, 'Results (latency; failures in red) and transitions (dashed), UTC'),
      hist.results.length ? chart : h('p.empty', {}, 'No results in this range yet: the cron runs the probe every minute.'),
      hist.transitions.length ? table(['When (UTC)', 'From', 'To', 'Why'], hist.transitions.map((t) => [utc(t.at, { seconds: true }), t.from, t.to, t.reason])) : null),
    h('section.card', {}, h('h3', {}, 'Flags that require it'),
      requiring.length ? h('p#requiring', {}, requiring.map((k, i) => [i ? ', ' : '', h('a', { href: `#/flags/edit/${encodeURIComponent(k)}` }, k)])) : h('p.empty', {}, 'No published flag requires this probe.')),
    h('section.card', {}, h('h3', {}, 'Override'),
      h('div.row', {}, mode, reason, apply), status,
      probe && probe.override !== 'auto' ? h('p.muted', {}, `Set by ${probe.override_by}: ${probe.override_reason}`) : null));
  if (hist.results.length) probeTimeline(chart, hist.results, hist.transitions);
  return undefined;
}

async function probeEditorView(el, ctx) {
  const draft = { key: '', url: 'https://', interval_s: 20, timeout_ms: 5000, expect_status: [200, 299] };
  const status = h('p#probe-editor-status', { role: 'status' });
  const input = (label, key, attrs = {}) => h('label.field', { dataset: { path: key } }, h('span', {}, label),
    h('input', { ...attrs, value: draft[key], on: { input: (e) => { draft[key] = attrs.type === 'number' ? Number(e.target.value) : e.target.value.trim(); } } }), h('span.field-error'));
  const form = h('form.card.editor#probe-editor', {},
    input('Key', 'key'), input('URL', 'url', { size: 60 }),
    input('Interval (s: 10, 12, 15, 20, 30 or 60)', 'interval_s', { type: 'number' }), input('Timeout (ms)', 'timeout_ms', { type: 'number' }),
    status, h('div.row', {}, h('button', { type: 'submit' }, 'Stage this probe'), h('a', { href: '#/probes' }, 'Back')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const old of form.querySelectorAll('.field-error')) old.textContent = '';
    try {
      await api('PUT', `/v1/apps/${encodeURIComponent(ctx.app)}/config/stage/probes/${encodeURIComponent(draft.key)}`, draft);
      say(status, 'ok', `Staged probe ${draft.key}. Commit and publish it under Release.`);
    } catch (err) {
      say(status, 'error', describe(err));
      const slot = form.querySelector(`[data-path="${CSS.escape(err.field || '')}"] .field-error`);
      if (slot) slot.textContent = err.message;
    }
  });
  mount(el, h('h2', {}, 'New probe'), form, h('p.muted.small', {}, `${fmt.format(1)} call per interval; the flag that requires it goes off below 10% passing over 5 minutes and back on above 90% over 15.`));
}
