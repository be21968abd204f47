// The dashboard: reads /v1/catalog and /v1/stats with the admin key.
const $ = (id) => document.getElementById(id);
let adminKey = sessionStorage.getItem('telltale:admin_key') || '';
let catalog = { events: [] };

// `npm start` prints a link with the key in the fragment, which never leaves the browser.
const fromHash = new URLSearchParams(location.hash.slice(1)).get('key');
if (fromHash) {
  adminKey = fromHash;
  sessionStorage.setItem('telltale:admin_key', adminKey);
  history.replaceState(null, '', location.pathname);
}

async function api(path, accept = 'application/json') {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${adminKey}`, Accept: accept } });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new Error(body.error ? `${body.error.message} (${body.error.code})` : `HTTP ${res.status}`);
  }
  return accept === 'text/csv' ? res.text() : res.json();
}

function say(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : 'muted';
}

function fill(select, values, keep) {
  const previous = keep ? select.value : '';
  select.replaceChildren(...values.map(([value, label]) => new Option(label, value)));
  if (values.some(([v]) => v === previous)) select.value = previous;
}

async function connect() {
  try {
    const { apps } = await api('/v1/admin/apps');
    fill($('app'), apps.map((a) => [a.id, a.name]), true);
    $('key-form').hidden = true;
    $('query').hidden = false;
    await loadCatalog();
  } catch (e) {
    say(`Cannot connect: ${e.message}`, true);
  }
}

async function loadCatalog() {
  catalog = await api(`/v1/catalog?app=${encodeURIComponent($('app').value)}`);
  if (catalog.events.length === 0) {
    $('results').hidden = true;
    fill($('event'), [], false);
    say('No events yet for this app. Use the demo page, then refresh.');
    return;
  }
  fill($('event'), catalog.events.map((e) => [e.name, e.name]), true);
  loadProps();
  await refresh();
}

function loadProps() {
  const event = catalog.events.find((e) => e.name === $('event').value);
  fill($('by'), [['', '(none)'], ...(event ? event.props.map((p) => [p, p]) : [])], true);
}

function statsQuery(format) {
  const q = new URLSearchParams({ app: $('app').value, event: $('event').value, interval: $('interval').value });
  if ($('by').value) q.set('by', $('by').value);
  if (format) q.set('format', format);
  return `/v1/stats?${q}`;
}

async function refresh() {
  try {
    const stats = await api(statsQuery());
    const max = Math.max(1, ...stats.series.map((p) => p.count));
    $('chart').replaceChildren(...stats.series.map((p) => {
      const bar = document.createElement('div');
      bar.style.height = `${(100 * p.count) / max}%`;
      bar.title = `${p.t}: ${p.count} events, ${p.users} users`;
      return bar;
    }));
    $('series').replaceChildren(...stats.series.filter((p) => p.count > 0).reverse().map((p) => {
      const row = document.createElement('tr');
      row.innerHTML = '<td></td><td class="num"></td><td class="num"></td>';
      row.children[0].textContent = p.t;
      row.children[1].textContent = p.count;
      row.children[2].textContent = p.users;
      return row;
    }));
    $('total-count').textContent = stats.series.reduce((sum, p) => sum + p.count, 0);
    $('peak-users').textContent = Math.max(0, ...stats.series.map((p) => p.users));
    $('top-table').hidden = !stats.top;
    $('top').replaceChildren(...(stats.top || []).map((t) => {
      const row = document.createElement('tr');
      row.innerHTML = '<td></td><td class="num"></td>';
      row.children[0].textContent = t.value;
      row.children[1].textContent = t.count;
      return row;
    }));
    $('results').hidden = false;
    say(`${stats.event} in ${stats.app}, ${stats.from} to ${stats.to} (UTC)`);
  } catch (e) {
    say(e.message, true);
  }
}

$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  adminKey = $('admin-key').value.trim();
  sessionStorage.setItem('telltale:admin_key', adminKey);
  connect();
});
$('query').addEventListener('submit', (e) => { e.preventDefault(); refresh(); });
$('app').addEventListener('change', loadCatalog);
$('event').addEventListener('change', () => { loadProps(); refresh(); });
$('interval').addEventListener('change', refresh);
$('by').addEventListener('change', refresh);
$('csv').addEventListener('click', async () => {
  const text = await api(statsQuery('csv'), 'text/csv');
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  link.download = `${$('app').value}-${$('event').value}.csv`;
  link.click();
});
if (adminKey) connect();
