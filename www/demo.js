// The demo product: a course catalogue using the Telltale SDK the way an app would.
import init, { Telltale } from '/sdk/telltale.js';

const COURSES = [
  { id: 'rust-101', title: 'Rust from scratch', blurb: 'Ownership, borrowing and the compiler as a friend.' },
  { id: 'wasm-201', title: 'WebAssembly in the browser', blurb: 'Ship Rust to every browser, small and fast.' },
  { id: 'edge-301', title: 'Edge computing', blurb: 'Workers, KV, D1 and queues close to users.' },
  { id: 'sql-101', title: 'SQL that scales', blurb: 'Indexes, aggregates and incremental folds.' },
  { id: 'ux-110', title: 'Product analytics', blurb: 'Measure what users do, not what they say.' },
  { id: 'flags-120', title: 'Feature flags', blurb: 'Canaries, kill switches and safe rollouts.' },
];

const log = document.getElementById('log');
function note(text, isError = false) {
  const line = document.createElement('div');
  line.textContent = `${new Date().toISOString().slice(11, 19)}Z  ${text}`;
  if (isError) line.className = 'error';
  log.prepend(line);
}

function renderCourses(filter) {
  const grid = document.getElementById('courses');
  grid.replaceChildren();
  const q = filter.trim().toLowerCase();
  for (const c of COURSES.filter((c) => !q || `${c.title} ${c.blurb} ${c.id}`.toLowerCase().includes(q))) {
    const card = document.createElement('article');
    card.className = 'card';
    card.innerHTML = `<h3><a href="#"></a></h3><p></p><button type="button">Enroll</button>`;
    const link = card.querySelector('a');
    link.textContent = c.title;
    // Autocapture: clicks inside [data-track] become "click" events; data-track-* become props.
    link.dataset.track = 'course_click';
    link.dataset.trackCourse = c.id;
    link.addEventListener('click', (e) => {
      e.preventDefault();
      note(`click course_click {course: ${c.id}}`);
    });
    card.querySelector('p').textContent = c.blurb;
    if (tt.isEnabled('course-badges', false)) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'new';
      card.querySelector('h3').append(badge);
    }
    // The experiment enroll-cta-test: reading the flag records this visitor's exposure.
    card.querySelector('button').textContent = tt.value('enroll-cta', 'Enroll');
    card.querySelector('button').addEventListener('click', () => {
      tt.track('enroll', { course: c.id });
      note(`track enroll {course: ${c.id}}`);
    });
    grid.append(card);
  }
}

function showRoute(path) {
  document.getElementById('catalogue-view').hidden = path === '/about';
  document.getElementById('about-view').hidden = path !== '/about';
}

await init();
const config = await fetch('/demo-config.json').then((r) => r.json());
const tt = new Telltale({
  endpoint: config.endpoint,
  key: config.key,
  flushAt: 10,
  flushIntervalMs: 2000,
  autocapture: true,
  capturePageviews: true,
  context: { role: new URLSearchParams(location.search).get('role') || 'student' },
  flagRefreshMs: 5000,
  onError: (err) => note(err.message, true),
});
// Splits bucket by user_id, else anonymous_id: this visitor is anonymous, so decisions
// (and the enroll-cta experiment) follow the id its events carry.
tt.setContext({ role: new URLSearchParams(location.search).get('role') || 'student', anonymous_id: tt.anonymousId });

// Flags and probe state: the deals box needs the partner API; a banner explains its absence.
function renderFlags() {
  document.getElementById('partner-deals').hidden = !tt.isEnabled('partner-deals', false);
  document.getElementById('probe-banner').hidden = tt.probe('partner-api') !== 'down';
  renderCourses(document.getElementById('search').value);
}
tt.onChange((keys) => { note(`flags changed: ${keys.join(', ')}`); renderFlags(); });
tt.onProbeChange((name, state) => { note(`probe ${name} is ${state}`); renderFlags(); });
window.telltale = tt; // for the end-to-end tests and curious visitors
note(`page view ${location.pathname} (anonymous id ${tt.anonymousId})`);

let debounce;
document.getElementById('search').addEventListener('input', (e) => {
  renderCourses(e.target.value);
  clearTimeout(debounce);
  debounce = setTimeout(() => {
    const query = e.target.value.trim();
    if (query) {
      tt.track('search', { query });
      note(`track search {query: ${query}}`);
    }
  }, 300);
});
document.getElementById('flush').addEventListener('click', async () => {
  const sent = await tt.flush();
  document.getElementById('status').textContent = `sent ${sent} events`;
});
for (const link of document.querySelectorAll('[data-route]')) {
  link.addEventListener('click', (e) => {
    e.preventDefault();
    history.pushState({}, '', link.dataset.route);
    showRoute(link.dataset.route);
    note(`page view ${link.dataset.route}`);
  });
}
addEventListener('popstate', () => showRoute(location.pathname));
showRoute(location.pathname);
renderCourses('');
tt.refreshFlags().then(renderFlags);
