// Flags and segments: the list, the editors, the release flow (stage → diff → commit →
// publish), history with rollback, the audit log, and "try a context".
import { api, describe, qs } from '../api.js';
import { confirmAction, fmt, h, listOr, mount, say, table, utc } from '../dom.js';
import { splitOf } from './experiments.js';

const cfgPath = (app, rest) => `/v1/apps/${encodeURIComponent(app)}/config${rest}`;

async function entries(app, at = 'stage') {
  return api('GET', cfgPath(app, `/entries${qs({ at })}`));
}

function rulesSummary(flag) {
  const rules = flag.rules || [];
  if (!rules.length) return `serves ${flag.default_variant}`;
  return rules.map((r) => {
    const who = [...(r.segments || []).map((s) => `segment ${s}`), ...(r.conditions || []).map((c) => `${c.attribute} ${c.op} ${c.values ? c.values.join('|') : JSON.stringify(c.value)}`)].join(' and ') || 'everyone';
    const serve = r.serve.split ? `split ${r.serve.split.map((s) => `${s.variant} ${s.weight}%`).join(' / ')}`
      : r.serve.rollout_percent != null ? `${r.serve.variant} to ${r.serve.rollout_percent}%` : r.serve.variant;
    return `${who} → ${serve}`;
  }).join('; ');
}

function rolloutOf(flag) {
  const r = (flag.rules || []).find((x) => x.serve && x.serve.rollout_percent != null);
  return r ? `${r.serve.rollout_percent}%` : '—';
}

export async function flagsView(el, ctx) {
  const [current, audit, probes] = await Promise.all([
    entries(ctx.app),
    api('GET', cfgPath(ctx.app, '/audit?limit=500')),
    api('GET', `/v1/apps/${encodeURIComponent(ctx.app)}/probes`),
  ]);
  const lastChange = (target) => audit.entries.find((e) => e.target === target);
  const probeState = (name) => (probes.probes.find((p) => p.name === name) || { state: 'not published' }).state;
  const message = h('p#flags-message', { role: 'status' });
  const remove = async (kind, key) => {
    if (!confirmAction(`Stage the deletion of ${kind.slice(0, -1)} "${key}"? It is removed when the stage is committed and published.`)) return;
    try {
      await api('DELETE', cfgPath(ctx.app, `/stage/${kind}/${encodeURIComponent(key)}`));
      await flagsView(el, ctx);
      const m = el.querySelector('#flags-message');
      say(m, 'ok', `Deletion of ${key} staged. Review it under Release.`);
    } catch (err) {
      say(message, 'error', describe(err));
    }
  };
  const flags = Object.values(current.entries.flags);
  const segments = Object.values(current.entries.segments);
  const probeDefs = Object.values(current.entries.probes);
  mount(el,
    h('h2', {}, 'Flags & segments'),
    h('p.muted', {}, 'What the next commit would hold (head plus staged changes). ', h('a', { href: '#/release' }, 'Review and publish staged changes →')),
    message,
    h('div.row', {},
      h('a.button#new-flag', { href: '#/flags/edit/' }, 'New flag'),
      h('a.button.secondary#new-segment', { href: '#/segments/edit/' }, 'New segment'),
      h('a.button.secondary#new-probe', { href: '#/probes/new' }, 'New probe')),
    h('section.card', {}, h('h3', {}, 'Flags'),
      flags.length ? table(['Flag', 'State', 'Rules', 'Rollout', 'Requires probe', 'Last change', ''], flags.map((f) => [
        h('a', { href: `#/flags/edit/${encodeURIComponent(f.key)}` }, f.key),
        h('span', { class: `badge ${f.enabled === false ? 'down' : 'up'}` }, f.enabled === false ? 'off' : 'enabled'),
        rulesSummary(f),
        rolloutOf(f),
        f.requires_probe ? h('span', {}, f.requires_probe, ' ', h('span', { class: `badge ${probeState(f.requires_probe)}` }, probeState(f.requires_probe))) : '—',
        (() => { const c = lastChange(`flags/${f.key}`); return c ? `${c.actor}, ${utc(c.at)}` : '—'; })(),
        h('span.nowrap', {},
          splitOf(f) ? [h('a.experiment-link', { href: `#/experiments/new/${encodeURIComponent(f.key)}`, dataset: { flag: f.key } }, 'Experiment'), ' · '] : null,
          h('button.link', { type: 'button', on: { click: () => remove('flags', f.key) } }, 'Delete')),
      ])) : h('p.empty', {}, 'No flags yet. Create one with "New flag", then commit and publish it under Release.')),
    h('section.card', {}, h('h3', {}, 'Segments'),
      segments.length ? table(['Segment', 'Conditions', ''], segments.map((s) => [
        h('a', { href: `#/segments/edit/${encodeURIComponent(s.key)}` }, s.key),
        (s.conditions || []).map((c) => `${c.attribute} ${c.op} ${c.values ? c.values.join('|') : JSON.stringify(c.value)}`).join(' and '),
        h('button.link', { type: 'button', on: { click: () => remove('segments', s.key) } }, 'Delete'),
      ])) : h('p.empty', {}, 'No segments. A segment is a reusable audience ("teachers") that rules can name.')),
    h('section.card', {}, h('h3', {}, 'Probes in the config'),
      probeDefs.length ? table(['Probe', 'URL', 'Live state', ''], probeDefs.map((p) => [
        h('a', { href: `#/probes/${encodeURIComponent(p.key)}` }, p.key), p.url, probeState(p.key),
        h('button.link', { type: 'button', on: { click: () => remove('probes', p.key) } }, 'Delete'),
      ])) : h('p.empty', {}, 'No probes. A probe watches a dependency and switches the flags that require it off while it is down.')));
}

// The flag editor. Inputs carry `data-path` with the collector's field path, so a 422
// (`rules[0].conditions[1].op`) shows next to the field that caused it.
export async function flagEditorView(el, ctx, key) {
  const [current, meta] = await Promise.all([entries(ctx.app), api('GET', '/v1/meta')]);
  const existing = key ? current.entries.flags[key] : null;
  const draft = existing ? structuredClone(existing) : {
    key: '', description: '', enabled: true,
    variants: [{ key: 'on', value: true }, { key: 'off', value: false }], default_variant: 'off', off_variant: 'off', rules: [],
  };
  const segmentKeys = Object.keys(current.entries.segments);
  const probeKeys = Object.keys(current.entries.probes);
  const flagKeys = Object.keys(current.entries.flags).filter((k) => k !== draft.key);
  const form = h('form.card.editor#flag-editor');
  const status = h('p#editor-status', { role: 'status' });

  const parseValue = (text) => { try { return JSON.parse(text); } catch { return text; } };
  const show = (value) => (typeof value === 'string' ? value : JSON.stringify(value));
  const field = (label, input, path) => h('label.field', { dataset: { path } }, h('span', {}, label), input, h('span.field-error'));
  const variantOptions = (selected, allowNone = false) => [
    ...(allowNone ? [h('option', { value: '' }, '(default variant)')] : []),
    ...draft.variants.map((v) => h('option', { value: v.key, selected: v.key === selected }, v.key))];

  const render = () => {
    const rules = draft.rules || (draft.rules = []);
    mount(form,
      field('Key', h('input#flag-key', { value: draft.key, required: true, readOnly: !!existing, on: { input: (e) => { draft.key = e.target.value.trim(); } } }), 'key'),
      field('Description', h('input#flag-description', { value: draft.description || '', on: { input: (e) => { draft.description = e.target.value; } } }), 'description'),
      h('label.inline', {}, h('input#flag-enabled', { type: 'checkbox', checked: draft.enabled !== false, on: { change: (e) => { draft.enabled = e.target.checked; } } }), ' Enabled (off serves the off variant to everyone)'),
      h('fieldset', {}, h('legend', {}, 'Variants'),
        draft.variants.map((v, i) => h('div.row', { dataset: { path: `variants[${i}]` } },
          field('Key', h('input.variant-key', { value: v.key, on: { change: (e) => { v.key = e.target.value.trim(); render(); } } }), `variants[${i}].key`),
          field('Value (JSON or text)', h('input.variant-value', { value: show(v.value), on: { input: (e) => { v.value = parseValue(e.target.value); } } }), `variants[${i}].value`),
          h('button.link', { type: 'button', on: { click: () => { draft.variants.splice(i, 1); render(); } } }, 'Remove'))),
        h('button.secondary#add-variant', { type: 'button', on: { click: () => { draft.variants.push({ key: `v${draft.variants.length + 1}`, value: '' }); render(); } } }, 'Add variant'),
        h('div.row', {},
          field('Default variant (no rule matches)', h('select#default-variant', { on: { change: (e) => { draft.default_variant = e.target.value; } } }, variantOptions(draft.default_variant)), 'default_variant'),
          field('Off variant', h('select#off-variant', { on: { change: (e) => { draft.off_variant = e.target.value || undefined; } } }, variantOptions(draft.off_variant, true)), 'off_variant'))),
      h('fieldset', {}, h('legend', {}, 'Rules (the first that matches serves)'),
        rules.map((rule, r) => ruleEditor(rule, r)),
        h('button.secondary#add-rule', { type: 'button', on: { click: () => { rules.push({ id: `rule-${rules.length + 1}`, conditions: [], segments: [], serve: { variant: draft.variants[0]?.key, rollout_percent: 100 } }); render(); } } }, 'Add rule')),
      h('fieldset', {}, h('legend', {}, 'Prerequisites, schedule, probe'),
        (draft.prerequisites || []).map((p, i) => h('div.row', {},
          field('Flag', h('select', { on: { change: (e) => { p.flag = e.target.value; } } }, flagKeys.map((k) => h('option', { value: k, selected: k === p.flag }, k))), `prerequisites[${i}].flag`),
          field('Must serve (comma-separated variants)', h('input', { value: (p.variants || []).join(','), on: { input: (e) => { p.variants = e.target.value.split(',').map((x) => x.trim()).filter(Boolean); } } }), `prerequisites[${i}].variants`),
          h('button.link', { type: 'button', on: { click: () => { draft.prerequisites.splice(i, 1); render(); } } }, 'Remove'))),
        flagKeys.length ? h('button.secondary', { type: 'button', on: { click: () => { (draft.prerequisites ||= []).push({ flag: flagKeys[0], variants: ['on'] }); render(); } } }, 'Add prerequisite') : null,
        h('div.row', {},
          field('On from (UTC)', h('input#schedule-from', { type: 'datetime-local', value: (draft.schedule?.from || '').slice(0, 16), on: { change: (e) => { setSchedule('from', e.target.value); } } }), 'schedule.from'),
          field('Until (UTC)', h('input#schedule-until', { type: 'datetime-local', value: (draft.schedule?.until || '').slice(0, 16), on: { change: (e) => { setSchedule('until', e.target.value); } } }), 'schedule.until'),
          field('Requires probe', h('select#requires-probe', { on: { change: (e) => { draft.requires_probe = e.target.value || undefined; } } },
            h('option', { value: '' }, '(none)'), probeKeys.map((k) => h('option', { value: k, selected: k === draft.requires_probe }, k))), 'requires_probe'))),
      status,
      h('div.row', {}, h('button#save-flag', { type: 'submit' }, 'Stage this flag'), h('a', { href: '#/flags' }, 'Back to the list')));
  };
  const setSchedule = (which, local) => {
    draft.schedule ||= {};
    if (local) draft.schedule[which] = `${local}:00Z`; else delete draft.schedule[which];
    if (!Object.keys(draft.schedule).length) delete draft.schedule;
  };

  const ruleEditor = (rule, r) => {
    const serve = rule.serve || (rule.serve = { variant: draft.variants[0]?.key });
    const mode = serve.split ? 'split' : serve.rollout_percent != null ? 'rollout' : 'variant';
    const base = `rules[${r}]`;
    const splitSum = (serve.split || []).reduce((s, x) => s + Number(x.weight || 0), 0);
    const sumLine = h('p', { class: splitSum === 100 ? 'muted small' : 'error small' }, `Weights sum to ${splitSum} (they must sum to 100).`);
    const refreshSum = () => {
      const total = serve.split.reduce((acc, x) => acc + Number(x.weight || 0), 0);
      sumLine.className = Math.abs(total - 100) < 1e-9 ? 'muted small' : 'error small';
      sumLine.textContent = `Weights sum to ${total} (they must sum to 100).`;
    };
    return h('div.rule.card', { dataset: { path: base } },
      h('div.row', {},
        field('Rule id', h('input', { value: rule.id || '', on: { input: (e) => { rule.id = e.target.value; } } }), `${base}.id`),
        h('button.link', { type: 'button', on: { click: () => { draft.rules.splice(r, 1); render(); } } }, 'Remove rule')),
      (rule.conditions || []).map((c, i) => {
        const listOp = c.op === 'in' || c.op === 'not_in';
        return h('div.row.condition', {},
          field('Attribute', h('input.cond-attribute', { value: c.attribute, on: { input: (e) => { c.attribute = e.target.value; } } }), `${base}.conditions[${i}].attribute`),
          field('Operator', h('select.cond-op', { on: { change: (e) => { c.op = e.target.value; if (c.op === 'in' || c.op === 'not_in') { c.values = c.value != null ? [c.value] : []; delete c.value; } else { c.value = c.values ? c.values[0] : c.value; delete c.values; } render(); } } },
            meta.operators.map((op) => h('option', { value: op, selected: op === c.op }, op))), `${base}.conditions[${i}].op`),
          listOp
            ? field('Values (comma-separated)', h('input.cond-values', { value: (c.values || []).map(show).join(','), on: { input: (e) => { c.values = e.target.value.split(',').map((x) => parseValue(x.trim())).filter((x) => x !== ''); } } }), `${base}.conditions[${i}].values`)
            : field('Value', h('input.cond-value', { value: c.value == null ? '' : show(c.value), on: { input: (e) => { c.value = parseValue(e.target.value); } } }), `${base}.conditions[${i}].value`),
          h('button.link', { type: 'button', on: { click: () => { rule.conditions.splice(i, 1); render(); } } }, 'Remove'));
      }),
      h('button.secondary.add-condition', { type: 'button', on: { click: () => { (rule.conditions ||= []).push({ attribute: 'role', op: 'eq', value: '' }); render(); } } }, 'Add condition'),
      segmentKeys.length ? h('div.row', { dataset: { path: `${base}.segments` } }, h('span.muted', {}, 'In segments: '),
        segmentKeys.map((s) => h('label.inline', {}, h('input', { type: 'checkbox', checked: (rule.segments || []).includes(s), on: { change: (e) => { rule.segments = (rule.segments || []).filter((x) => x !== s); if (e.target.checked) rule.segments.push(s); } } }), ` ${s}`)),
        h('span.field-error')) : null,
      h('div.row', {}, h('span.muted', {}, 'Serve: '),
        ['variant', 'rollout', 'split'].map((m) => h('label.inline', {}, h('input', { type: 'radio', name: `mode-${r}`, value: m, checked: m === mode, on: { change: () => {
          if (m === 'split') rule.serve = { split: draft.variants.map((v, i, all) => ({ variant: v.key, weight: i === all.length - 1 ? 100 - Math.floor(100 / all.length) * (all.length - 1) : Math.floor(100 / all.length) })) };
          else rule.serve = { variant: draft.variants[0]?.key, ...(m === 'rollout' ? { rollout_percent: 50 } : {}) };
          render();
        } } }), ` ${m === 'variant' ? 'one variant' : m === 'rollout' ? 'a variant to a percentage' : 'a split by weight'}`))),
      mode !== 'split' ? h('div.row', {},
        field('Variant', h('select.serve-variant', { on: { change: (e) => { serve.variant = e.target.value; } } }, variantOptions(serve.variant)), `${base}.serve.variant`),
        mode === 'rollout' ? field(`Rollout: ${serve.rollout_percent}%`, h('input.rollout', { type: 'range', min: 0, max: 100, step: 1, value: serve.rollout_percent,
          on: { input: (e) => { serve.rollout_percent = Number(e.target.value); e.target.previousSibling.textContent = `Rollout: ${serve.rollout_percent}%`; } } }), `${base}.serve.rollout_percent`) : null)
        : h('div', { dataset: { path: `${base}.serve.split` } },
          serve.split.map((s, i) => h('div.row', {},
            field('Variant', h('select', { on: { change: (e) => { s.variant = e.target.value; } } }, variantOptions(s.variant)), `${base}.serve.split[${i}].variant`),
            field('Weight %', h('input.split-weight', { type: 'number', min: 0, max: 100, step: 'any', value: s.weight, on: { input: (e) => { s.weight = Number(e.target.value); refreshSum(); } } }), `${base}.serve.split[${i}].weight`))),
          sumLine,
          h('span.field-error')),
      field('Stickiness attribute (default user_id, then anonymous_id)', h('input', { value: serve.stickiness || '', on: { input: (e) => { serve.stickiness = e.target.value || undefined; } } }), `${base}.serve.stickiness`));
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const old of form.querySelectorAll('.field-error')) old.textContent = '';
    say(status, '', '');
    const body = structuredClone(draft);
    if (body.off_variant === undefined) delete body.off_variant;
    if (!body.key) { say(status, 'error', 'Give the flag a key.'); return; }
    try {
      await api('PUT', cfgPath(ctx.app, `/stage/flags/${encodeURIComponent(body.key)}`), body);
      say(status, 'ok', `Staged ${body.key}. Commit and publish it under Release.`);
      if (!existing) history.replaceState(null, '', `#/flags/edit/${encodeURIComponent(body.key)}`);
    } catch (err) {
      say(status, 'error', describe(err));
      showFieldError(form, err.field, err.message);
    }
  });
  render();
  mount(el, h('h2', {}, existing ? `Flag ${draft.key}` : 'New flag'), form);
}

/** Puts an error next to the input whose path is the error's field (or its nearest parent). */
function showFieldError(form, field, message) {
  if (!field) return;
  let path = field;
  while (path) {
    const target = [...form.querySelectorAll('[data-path]')].find((n) => n.dataset.path === path);
    if (target) {
      const slot = target.querySelector(':scope > .field-error') || target.appendChild(h('span.field-error'));
      slot.textContent = message;
      slot.closest('[data-path]').classList.add('invalid');
      target.scrollIntoView({ block: 'center' });
      return;
    }
    path = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : path.includes('[') ? path.slice(0, path.lastIndexOf('[')) : '';
  }
}

export async function segmentEditorView(el, ctx, key) {
  const [current, meta] = await Promise.all([entries(ctx.app), api('GET', '/v1/meta')]);
  const existing = key ? current.entries.segments[key] : null;
  const draft = existing ? structuredClone(existing) : { key: '', description: '', conditions: [{ attribute: 'role', op: 'eq', value: 'teacher' }] };
  const form = h('form.card.editor#segment-editor');
  const status = h('p#segment-status', { role: 'status' });
  const parseValue = (text) => { try { return JSON.parse(text); } catch { return text; } };
  const render = () => mount(form,
    h('label.field', { dataset: { path: 'key' } }, h('span', {}, 'Key'), h('input#segment-key', { value: draft.key, readOnly: !!existing, on: { input: (e) => { draft.key = e.target.value.trim(); } } }), h('span.field-error')),
    h('label.field', {}, h('span', {}, 'Description'), h('input', { value: draft.description || '', on: { input: (e) => { draft.description = e.target.value; } } })),
    draft.conditions.map((c, i) => h('div.row', { dataset: { path: `conditions[${i}]` } },
      h('input', { value: c.attribute, 'aria-label': 'attribute', on: { input: (e) => { c.attribute = e.target.value; } } }),
      h('select', { 'aria-label': 'operator', on: { change: (e) => { c.op = e.target.value; } } }, meta.operators.map((op) => h('option', { value: op, selected: op === c.op }, op))),
      h('input', { value: c.values ? c.values.join(',') : (typeof c.value === 'string' ? c.value : JSON.stringify(c.value ?? '')), 'aria-label': 'value',
        on: { input: (e) => { if (c.op === 'in' || c.op === 'not_in') { c.values = e.target.value.split(',').map((x) => parseValue(x.trim())); delete c.value; } else { c.value = parseValue(e.target.value); delete c.values; } } } }),
      h('button.link', { type: 'button', on: { click: () => { draft.conditions.splice(i, 1); render(); } } }, 'Remove'),
      h('span.field-error'))),
    h('button.secondary', { type: 'button', on: { click: () => { draft.conditions.push({ attribute: '', op: 'eq', value: '' }); render(); } } }, 'Add condition'),
    status,
    h('div.row', {}, h('button#save-segment', { type: 'submit' }, 'Stage this segment'), h('a', { href: '#/flags' }, 'Back to the list')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const old of form.querySelectorAll('.field-error')) old.textContent = '';
    if (!draft.key) { say(status, 'error', 'Give the segment a key.'); return; }
    try {
      await api('PUT', cfgPath(ctx.app, `/stage/segments/${encodeURIComponent(draft.key)}`), draft);
      let shown = status;
      if (!existing) {
        // Saved: from now on this page edits that segment.
        history.replaceState(null, '', `#/segments/edit/${encodeURIComponent(draft.key)}`);
        await segmentEditorView(el, ctx, draft.key);
        shown = el.querySelector('#segment-status');
      }
      say(shown, 'ok', `Staged segment ${draft.key}. Commit and publish it under Release.`);
    } catch (err) {
      say(status, 'error', describe(err));
      showFieldError(form, err.field, err.message);
    }
  });
  render();
  mount(el, h('h2', {}, existing ? `Segment ${draft.key}` : 'New segment'), form);
}

function diffTable(changes) {
  return changes.length ? table(['Entry', 'Change', 'Field', 'Before', 'After'], changes.flatMap((c) => (c.fields.length ? c.fields : [{ path: '', before: null, after: null }]).map((f) => [
    `${c.kind}/${c.key}`, c.change, f.path || '(whole entry)', f.before === undefined || f.before === null ? '—' : JSON.stringify(f.before), f.after === undefined || f.after === null ? '—' : JSON.stringify(f.after)])))
    : h('p.empty', {}, 'No differences.');
}

export async function releaseView(el, ctx) {
  const [stage, published] = await Promise.all([
    api('GET', cfgPath(ctx.app, '/stage')),
    api('GET', cfgPath(ctx.app, '/commits/published')).catch((err) => { if (err.status === 404) return null; throw err; }),
  ]);
  const status = h('p#release-status', { role: 'status' });
  const head = stage.head;
  // What would change for readers: the stage against what is published (or against
  // nothing, before the first publication).
  const diff = await api('GET', cfgPath(ctx.app, `/diff${qs({ from: published ? 'published' : 'empty', to: 'stage' })}`));
  const message = h('input#commit-message', { placeholder: 'What changed, and why (required)', size: 60 });
  const commit = h('button#commit', { type: 'button', disabled: true }, 'Commit');
  const headPublished = !!(published && head && published.id === head);
  const publish = h('button#publish.secondary', { type: 'button', disabled: !head || headPublished, title: headPublished ? 'Head is what is published' : '' }, 'Publish head');
  const enableCommit = () => { commit.disabled = !stage.changes.length || !message.value.trim(); };
  message.addEventListener('input', enableCommit);
  // After an action the view reloads (stage, diff, buttons), keeping its message.
  const reload = async (className, text) => {
    await releaseView(el, ctx);
    say(el.querySelector('#release-status'), className, text);
  };
  commit.addEventListener('click', async () => {
    try {
      const c = await api('POST', cfgPath(ctx.app, '/commits'), { message: message.value, expected_head: head });
      await reload('ok', `Committed ${c.id.slice(0, 12)}. Publish it to serve it.`);
    } catch (err) {
      say(status, 'error', err.code === 'head_moved' ? `Someone committed meanwhile: head is now ${String(err.details?.head).slice(0, 12)}. Reload this page to review the stage against it; nothing was overwritten.` : describe(err));
    }
  });
  publish.addEventListener('click', async () => {
    if (!confirmAction('Publish head? Every SDK and collector decision switches to it.')) return;
    try {
      const p = await api('POST', cfgPath(ctx.app, '/publish'), {});
      await reload('ok', `Published ${p.published.slice(0, 12)}: ${p.changed.length ? p.changed.join(', ') : 'nothing changed'}.`);
    } catch (err) {
      say(status, 'error', describe(err));
    }
  });
  mount(el, h('h2', {}, 'Release'),
    h('section.card', {}, h('h3', {}, 'Commit and publish'),
      h('div.row', {}, message, commit, publish), status,
      h('p.muted.small', {}, head ? `Head is ${head.slice(0, 12)}${headPublished ? ' (published)' : published ? `; ${published.id.slice(0, 12)} is published` : '; nothing is published yet'}. A commit is refused if someone else moves head first.` : 'This is the first commit.')),
    h('section.card', {}, h('h3', {}, 'Staged changes'),
      ...listOr(stage.changes, (c) => h('p', {}, h('span', { class: `badge ${c.change}` }, c.change), ` ${c.kind}/${c.key}`),
        'Nothing is staged. Edit a flag, segment or probe to stage a change.')),
    h('section.card#release-diff', {}, h('h3', {}, published ? 'Diff against what is published, field by field' : 'Diff (nothing is published yet)'), diffTable(diff.changes)));
}

export async function historyView(el, ctx) {
  const s = ctx.state;
  const [log, audit] = await Promise.all([
    api('GET', cfgPath(ctx.app, '/commits?limit=100')),
    api('GET', cfgPath(ctx.app, `/audit${qs({ limit: 200, actor: s.auditActor, action: s.auditAction, target: s.auditTarget })}`)),
  ]);
  const status = h('p#history-status', { role: 'status' });
  const diffOut = h('div#history-diff');
  const pick = (id) => h('select', { id }, log.commits.map((c) => h('option', { value: c.id }, `${c.id.slice(0, 10)} ${c.message}`)));
  const from = pick('diff-from');
  const to = pick('diff-to');
  if (log.commits.length > 1) from.value = log.commits[1].id;
  const rollback = async (commit) => {
    if (!confirmAction(`Roll back to ${commit.id.slice(0, 12)} ("${commit.message}")? It is published at once, recorded as a new publication.`)) return;
    try {
      const r = await api('POST', cfgPath(ctx.app, '/rollback'), { commit: commit.id });
      say(status, 'ok', `Rolled back: ${r.published.slice(0, 12)} is published (${r.changed.join(', ') || 'no change'}). `
        + 'Head still holds the newer changes: the next "Publish head" serves them again unless you stage the old values first.');
      await historyView(el, ctx);
      say(el.querySelector('#history-status'), 'ok', status.textContent);
    } catch (err) {
      say(status, 'error', describe(err));
    }
  };
  const filter = (label, key, id, hint) => h('label', {}, `${label} `, h('input', { id, value: s[key] || '', size: 18, placeholder: hint, on: { change: (e) => { s[key] = e.target.value.trim(); historyView(el, ctx); } } }));
  // Long hashes in before/after are shortened to what identifies them.
  const short = (v) => (v == null ? '—' : JSON.stringify(v).replace(/[0-9a-f]{64}/g, (x) => `${x.slice(0, 12)}…`).slice(0, 120));
  mount(el, h('h2', {}, 'History & audit'), status,
    h('section.card', {}, h('h3', {}, 'Commits (newest first)'),
      log.commits.length ? table(['Commit', 'Message', 'Author', 'When (UTC)', 'Published', ''], log.commits.map((c) => [
        h('code', {}, c.id.slice(0, 12)), c.message, c.author, utc(c.created_at), c.published ? h('span.badge.up', {}, 'published') : '',
        c.published ? '' : h('button.link.rollback', { type: 'button', dataset: { commit: c.id }, on: { click: () => rollback(c) } }, 'Roll back to this'),
      ])) : h('p.empty', {}, 'No commits yet. Stage a change and commit it under Release.')),
    log.commits.length > 1 ? h('section.card', {}, h('h3', {}, 'Diff between two commits'),
      h('div.row', {}, from, ' → ', to, h('button.secondary#show-diff', { type: 'button', on: { click: async () => {
        const d = await api('GET', cfgPath(ctx.app, `/diff${qs({ from: from.value, to: to.value })}`));
        mount(diffOut, diffTable(d.changes));
      } } }, 'Show diff')), diffOut) : null,
    h('section.card', {}, h('h3', {}, 'Audit log'),
      h('div.row', {}, filter('Actor', 'auditActor', 'audit-actor', 'e.g. grace@example.com'),
        filter('Action', 'auditAction', 'audit-action', 'e.g. commit, publish, stage.put'),
        filter('Target', 'auditTarget', 'audit-target', 'e.g. flags/ or flags/checkout')),
      audit.entries.length ? table(['When (UTC)', 'Who', 'Action', 'Target', 'Before', 'After'], audit.entries.map((e) => [
        utc(e.at, { seconds: true }), h('span.nowrap', {}, e.actor), e.action, e.target, short(e.before), short(e.after)]))
        : h('p.empty', {}, 'No audit entries match.')));
}

export async function tryView(el, ctx) {
  const input = h('textarea#try-context', { rows: 6, cols: 60, spellcheck: false }, ctx.state.tryContext || '{"user_id": "u-1", "role": "teacher"}');
  const out = h('div#try-result');
  const run = async () => {
    ctx.state.tryContext = input.value;
    let context;
    try { context = JSON.parse(input.value); } catch (err) { mount(out, h('p.error', {}, `The context is not JSON: ${err.message}`)); return; }
    try {
      const [staged, published] = await Promise.all([
        api('POST', cfgPath(ctx.app, '/evaluate'), { context, at: 'stage' }),
        api('POST', cfgPath(ctx.app, '/evaluate'), { context, at: 'published' }),
      ]);
      const keys = [...new Set([...Object.keys(staged.flags), ...Object.keys(published.flags)])].sort();
      const cell = (d) => (d ? `${JSON.stringify(d.value)} (${d.variant ?? '—'}, ${d.reason}${d.rule ? `, rule ${d.rule}` : ''}${d.bucket != null ? `, bucket ${fmt.format(d.bucket)}` : ''})` : 'not there');
      mount(out, keys.length ? table(['Flag', 'Staged: value (variant, reason, rule, bucket)', 'Published'], keys.map((k) => [k, cell(staged.flags[k]), cell(published.flags[k])]))
        : h('p.empty', {}, 'There are no flags yet, staged or published.'));
    } catch (err) {
      mount(out, h('p.error', {}, err.message));
    }
  };
  mount(el, h('h2', {}, 'Try a context'),
    h('p.muted', {}, 'Every flag decided for this context, by the staged config and by the published one. Probe states are the live ones.'),
    input, h('div.row', {}, h('button#try-run', { type: 'button', on: { click: run } }, 'Evaluate')), out);
  await run();
}
