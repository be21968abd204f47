// The Telltale console: sign-in with the admin key (kept in sessionStorage, never in a
// URL the server sees), an app picker, and the views. Routes live in the fragment:
// #/overview, #/events, #/flags, #/flags/edit/{key}, #/segments/edit/{key}, #/release,
// #/history, #/try, #/probes, #/probes/{name}, #/experiments, #/experiments/new/{flag},
// #/experiments/{key}, #/apps.
import { api, session, whenSignedOut } from './api.js';
import { h, mount, say } from './dom.js';
import { overviewView } from './views/overview.js';
import { eventsView } from './views/events.js';
import { flagsView, flagEditorView, segmentEditorView, releaseView, historyView, tryView } from './views/flags.js';
import { probesView, probeDetailView } from './views/probes.js';
import { appsView } from './views/apps.js';
import { experimentsView, experimentEditorView, experimentResultsView } from './views/experiments.js';

const root = document.getElementById('root');
const state = { apps: [], app: sessionStorage.getItem('telltale:app') || '', range: '24h', notice: '', noticeKind: 'muted', returnTo: '' };
let signingIn = false;

// `npm start` prints a link with the key in the fragment: read it, then drop it.
const fromHash = new URLSearchParams(location.hash.replace(/^#/, '')).get('key');
if (fromHash) {
  session.key = fromHash;
  history.replaceState(null, '', `${location.pathname}#/overview`);
}

whenSignedOut((message) => {
  if (signingIn) return; // the sign-in form says what went wrong itself
  state.returnTo = location.hash;
  session.key = '';
  state.notice = message;
  state.noticeKind = 'error';
  render();
});

const NAV = [
  ['overview', 'Overview'], ['events', 'Events'], ['flags', 'Flags & segments'], ['release', 'Release'],
  ['history', 'History & audit'], ['try', 'Try a context'], ['probes', 'Probes'], ['experiments', 'Experiments'], ['apps', 'Apps'],
];

function signIn() {
  const input = h('input#admin-key', { type: 'password', autocomplete: 'off', placeholder: 'tt_admin_…', size: 44, 'aria-label': 'Admin key' });
  const message = h('p#signin-message', { class: state.notice ? state.noticeKind : 'muted' }, state.notice || 'Sign in with the admin key (npm start prints it, with a link that signs you in).');
  const form = h('form.card.signin', {
    on: {
      submit: async (e) => {
        e.preventDefault();
        session.key = input.value.trim();
        signingIn = true;
        try {
          await loadApps();
          state.notice = '';
          location.hash = state.returnTo && state.returnTo !== '#' ? state.returnTo : '#/overview';
          state.returnTo = '';
          render();
        } catch (err) {
          session.key = '';
          say(message, 'error', err.status === 401 ? 'That admin key is wrong.' : `Could not sign in: ${err.message}`);
        } finally {
          signingIn = false;
        }
      },
    },
  }, h('h2', {}, 'Telltale console'), message, h('div.row', {}, input, h('button', { type: 'submit' }, 'Sign in')));
  mount(root, h('main.narrow', {}, form));
  input.focus();
}

async function loadApps() {
  const { apps } = await api('GET', '/v1/admin/apps');
  state.apps = apps;
  if (!apps.some((a) => a.id === state.app)) state.app = apps[0] ? apps[0].id : '';
  sessionStorage.setItem('telltale:app', state.app);
}

function route() {
  const [view = 'overview', ...rest] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  return { view, rest };
}

function header(current) {
  const picker = h('select#app-picker', {
    'aria-label': 'App',
    on: { change: (e) => { state.app = e.target.value; sessionStorage.setItem('telltale:app', state.app); render(); } },
  }, state.apps.map((a) => h('option', { value: a.id, selected: a.id === state.app }, `${a.name} (${a.id})`)));
  return h('header', {},
    h('h1', {}, 'Telltale'),
    h('label.inline', {}, 'App ', picker),
    h('span.muted.small', {}, 'All times UTC'),
    h('nav', {}, NAV.map(([id, label]) => h('a', { href: `#/${id}`, class: current === id ? 'active' : '' }, label)),
      h('a', { href: '/' }, 'Demo product'),
      h('a', { href: '#', on: { click: (e) => { e.preventDefault(); session.key = ''; state.notice = 'Signed out.'; state.noticeKind = 'ok'; render(); } } }, 'Sign out')));
}

async function render() {
  if (!session.key) return signIn();
  if (!state.apps.length) {
    try { await loadApps(); } catch (err) { if (err.status === 401) return undefined; mount(root, h('p.error', {}, err.message)); return undefined; }
  }
  const { view, rest } = route();
  const body = h('main#view');
  mount(root, header(view.split('/')[0]), body);
  const ctx = { app: state.app, apps: state.apps, state, reloadApps: async () => { await loadApps(); render(); }, go: (hash) => { location.hash = hash; } };
  if (!state.app && view !== 'apps') {
    mount(body, h('p.empty', {}, 'There is no app yet. '), h('a', { href: '#/apps' }, 'Create the first app'));
    return undefined;
  }
  const views = {
    overview: () => overviewView(body, ctx),
    events: () => eventsView(body, ctx),
    flags: () => (rest[0] === 'edit' ? flagEditorView(body, ctx, rest[1]) : flagsView(body, ctx)),
    segments: () => segmentEditorView(body, ctx, rest[1]),
    release: () => releaseView(body, ctx),
    history: () => historyView(body, ctx),
    try: () => tryView(body, ctx),
    probes: () => (rest[0] ? probeDetailView(body, ctx, rest[0]) : probesView(body, ctx)),
    experiments: () => (rest[0] === 'new' ? experimentEditorView(body, ctx, rest[1])
      : rest[0] ? experimentResultsView(body, ctx, rest[0]) : experimentsView(body, ctx)),
    apps: () => appsView(body, ctx),
  };
  try {
    await (views[view] || views.overview)();
  } catch (err) {
    if (err.status !== 401) body.append(h('p.error', { role: 'alert' }, `Could not load this view: ${err.message}`));
  }
  return undefined;
}

window.addEventListener('hashchange', () => render());
render();
