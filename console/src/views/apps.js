// Apps: list and create, edit allowed origins and retention, rotate the ingest key with an
// overlap, see what the archive holds, and the snippet to paste into the app.
import { api, describe } from '../api.js';
import { confirmAction, h, mount, say, table, utc } from '../dom.js';

/** A byte count for people. */
function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

export async function appsView(el, ctx) {
  const [{ apps }, archive] = await Promise.all([api('GET', '/v1/admin/apps'), api('GET', '/v1/admin/archive')]);
  const archived = Object.fromEntries(archive.apps.map((a) => [a.app, a]));
  const status = h('p#apps-status', { role: 'status', class: ctx.state.flash ? 'ok' : '' }, ctx.state.flash || '');
  ctx.state.flash = '';
  const id = h('input#new-app-id', { placeholder: 'shop', pattern: '[a-z0-9][a-z0-9_\\-]{0,62}', required: true,
    title: 'lowercase letters, digits, - and _ (1 to 63, starting with a letter or digit)' });
  const name = h('input#new-app-name', { placeholder: 'Shop' });
  const origins = h('input#new-app-origins', { placeholder: 'https://shop.example, http://localhost:5173', size: 40 });
  const create = h('form.card.row#create-app', {
    on: {
      submit: async (e) => {
        e.preventDefault();
        try {
          const app = await api('POST', '/v1/admin/apps', {
            id: id.value.trim(), name: name.value.trim() || undefined,
            allowed_origins: origins.value.split(',').map((o) => o.trim()).filter(Boolean),
          });
          ctx.state.app = app.id;
          sessionStorage.setItem('telltale:app', app.id);
          ctx.state.flash = `Created app ${app.id}; it is selected. Its snippet is below.`;
          await ctx.reloadApps();
          location.hash = '#/apps';
        } catch (err) {
          say(status, 'error', describe(err));
        }
      },
    },
  }, h('label', {}, 'Id ', id), h('label', {}, 'Name ', name), h('label', {}, 'Allowed origins ', origins), h('button', { type: 'submit' }, 'Create app'));

  /** Retention and the archive of one app: what moved to R2, and how the last run went. */
  const archiveRow = (app, msg) => {
    const a = archived[app.id];
    const days = h('input.retention', { type: 'number', min: 1, max: 3650, step: 1, value: app.retention_days, 'aria-label': `retention of ${app.id} in days` });
    const held = a && a.objects
      ? `${a.events.toLocaleString('en')} events in ${a.objects} objects, ${bytes(a.bytes)} (${a.first_day} to ${a.last_day})`
      : 'nothing archived yet';
    const run = a && a.last_run_at ? `last run ${utc(a.last_run_at)}${a.last_error ? `: failed, ${a.last_error}` : ''}` : 'not run yet';
    return h('div.row.archive', {},
      h('label', {}, 'Retention (days raw events stay in D1) ', days),
      h('button.secondary.save-retention', { type: 'button', on: { click: async () => {
        try {
          await api('PATCH', `/v1/admin/apps/${encodeURIComponent(app.id)}`, { retention_days: Number(days.value) });
          ctx.state.flash = `Retention of ${app.id} saved: ${days.value} days.`;
          await ctx.reloadApps();
        } catch (err) { say(msg, 'error', describe(err)); }
      } } }, 'Save retention'),
      h('span.muted.small.archive-status', {}, `Archive: ${held}; ${run}${a && a.unfinished ? `; ${a.unfinished} objects unfinished (the next run ends them)` : ''}.`));
  };

  const card = (app) => {
    const originsInput = h('input.origins', { value: app.allowed_origins.join(', '), size: 50, 'aria-label': `allowed origins of ${app.id}` });
    const overlap = h('select.overlap', { 'aria-label': 'old key stays valid for' },
      [[0, 'no overlap'], [600, '10 minutes'], [3600, '1 hour'], [86400, '24 hours'], [604800, '7 days']].map(([s, label]) => h('option', { value: s, selected: s === 3600 }, label)));
    const msg = h('p', { role: 'status' });
    const snippet = `npm i telltale

import init, { Telltale } from 'telltale';
await init();
const tt = new Telltale({ endpoint: '${location.origin}', key: '${app.ingest_key}' });
tt.track('signup', { plan: 'pro' });`;
    return h('section.card.app-card', { dataset: { app: app.id } },
      h('h3', {}, `${app.name} `, h('code', {}, app.id)),
      h('p.muted.small', {}, `Created ${utc(app.created_at)}`),
      h('div.row', {}, h('label', {}, 'Allowed origins ', originsInput),
        h('button.secondary', { type: 'button', on: { click: async () => {
          try {
            await api('PATCH', `/v1/admin/apps/${encodeURIComponent(app.id)}`, { allowed_origins: originsInput.value.split(',').map((o) => o.trim()).filter(Boolean) });
            ctx.state.flash = `Origins of ${app.id} saved.`;
            await ctx.reloadApps();
          } catch (err) { say(msg, 'error', describe(err)); }
        } } }, 'Save origins')),
      archiveRow(app, msg),
      h('div.row', {}, h('span', {}, 'Ingest key '), h('code.key', {}, app.ingest_key),
        app.previous_keys && app.previous_keys.length ? h('span.muted.small', {}, `(previous key valid until ${utc(app.previous_keys[0].expires_at)})`) : null),
      h('div.row', {}, h('label', {}, 'Old key stays valid for ', overlap),
        h('button.secondary.rotate', { type: 'button', on: { click: async () => {
          if (!confirmAction(`Rotate the ingest key of ${app.id}? Pages with the old key keep working for the overlap you chose, then get 401.`)) return;
          try {
            const r = await api('POST', `/v1/admin/apps/${encodeURIComponent(app.id)}/rotate-key`, { overlap_s: Number(overlap.value) });
            ctx.state.flash = `New key issued for ${app.id}; the old one works until ${utc(r.previous_key_expires_at)}.`;
            await ctx.reloadApps();
          } catch (err) { say(msg, 'error', describe(err)); }
        } } }, 'Rotate key')),
      msg,
      h('details', {}, h('summary', {}, 'Install snippet'), h('pre.snippet', {}, snippet)),
      h('div.row', {}, h('button.link.delete-app', { type: 'button', on: { click: async () => {
        if (!confirmAction(`Delete app ${app.id}? Its key stops working, its config is unpublished, its id is retired. Its events and history are kept.`)) return;
        try {
          const r = await api('DELETE', `/v1/admin/apps/${encodeURIComponent(app.id)}`);
          ctx.state.flash = `Deleted ${r.deleted}: its key is revoked; kept ${r.kept.events} events and ${r.kept.config_commits} commits.`;
          await ctx.reloadApps();
        } catch (err) { say(msg, 'error', describe(err)); }
      } } }, `Delete ${app.id}…`)));
  };
  mount(el, h('h2', {}, 'Apps'), status, create,
    apps.length ? table(['Id', 'Name', 'Origins', 'Retention', 'Archived'], apps.map((a) => [a.id, a.name, a.allowed_origins.join(', ') || '(none: server-side only)',
      `${a.retention_days} days`, archived[a.id]?.objects ? bytes(archived[a.id].bytes) : '—'])) : h('p.empty', {}, 'No apps yet: create one above.'),
    apps.map(card));
}
