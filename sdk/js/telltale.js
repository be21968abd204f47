// telltale: the package entry. The decisions (outbox, byte budget, batches, retries and
// their timing, persisted form, page-hide chunks, ids, sampling) are made by the wasm core
// (src/lib.rs over telltale-core); this shell does the browser I/O around it: fetch,
// sendBeacon, storage, timers, DOM events, and the flags client. Nothing here may throw
// into the host page: every entry point catches and reports to `onError`.

// @ts-check
// The published types (telltale.d.ts) are generated from this file's JSDoc by `tsc`, which
// also type-checks it on every build (sdk/tsconfig.json).

import init, { Core, Settled, hashKey, refreshBackoffMs } from './telltale_wasm.js';

export { init as default, init };

/** @typedef {string | number | boolean | null} PropValue
 * @typedef {Record<string, PropValue | undefined>} Props */
/** @typedef {'up' | 'down' | 'unknown'} ProbeState */

/**
 * An event as `beforeSend` sees it (and as it is sent).
 * @typedef {object} TelltaleEvent
 * @property {string} id UUIDv7.
 * @property {'track' | 'page' | 'identify' | 'click'} type
 * @property {string} name
 * @property {number} ts Milliseconds since the epoch.
 * @property {string} anonymous_id
 * @property {string} [user_id] Undefined (and left out of the JSON sent) while the user is unknown.
 * @property {Record<string, PropValue>} props
 * @property {string} [url] Undefined (and left out) where there is no page URL.
 */

/**
 * @typedef {object} TelltaleOptions
 * @property {string} endpoint The collector's base URL, such as `https://collect.example.com`.
 * @property {string} key The app's public ingest key.
 * @property {number} [flushAt] Events per batch; a full batch is sent at once. 1 to 500, default 20.
 * @property {number} [flushIntervalMs] Queued events are sent at least this often. 50 to 3,600,000, default 5000.
 * @property {number} [maxQueue] Most events kept while they cannot be sent; the oldest are evicted and counted. Default 1000.
 * @property {number} [maxStorageBytes] Byte budget of queued (and persisted) events; the oldest are evicted beyond it. Default 1,000,000.
 * @property {boolean} [autocapture] Record clicks inside `[data-track="name"]` elements (`data-track-*` become props).
 * @property {boolean} [capturePageviews] Record the first page view and SPA route changes.
 * @property {(error: Error) => void} [onError] Receives every error; the SDK never throws into the page (only the constructor throws, for bad options).
 * @property {(event: TelltaleEvent) => TelltaleEvent | null | false | undefined} [beforeSend] Edit an event, or return null/false to drop it. A hook that throws keeps the event.
 * @property {number} [sampleRate] Share of anonymous ids whose events are collected, 0 to 1 (whole sessions are kept or not). Default 1.
 * @property {boolean} [respectDoNotTrack] Do Not Track and Global Privacy Control turn collection off until `optIn()`. Default true.
 * @property {'remote' | 'local' | 'off'} [flagMode] `remote` (decisions from the collector, default), `local` (the ruleset evaluated here by the flag engine, loaded on demand) or `off`.
 * @property {Record<string, unknown>} [context] The evaluation context (user id, role, ...).
 * @property {Record<string, unknown>} [bootstrap] Flag values to use until the first answer: `{ key: value }`.
 * @property {number} [flagRefreshMs] Flag refresh period; 0 turns periodic refreshes off. Default 60000.
 */

/**
 * Everything known about a flag decision.
 * @typedef {object} FlagDetails
 * @property {string} key
 * @property {unknown} value
 * @property {string} [variant]
 * @property {string} reason STATIC, TARGETING_MATCH, SPLIT, DISABLED, DEFAULT, ERROR, PREREQUISITE_FAILED; BOOTSTRAP before the first answer.
 * @property {string} [error_code] FLAG_NOT_FOUND or PARSE_ERROR.
 * @property {string} [error_message]
 * @property {string} [rule] The id of the rule that matched.
 * @property {number} [bucket] The bucket (0..100,000) a rollout or split used.
 * @property {string} [probe] The required probe that is down (reason DISABLED).
 * @property {string} [version] The config version (commit) that decided.
 */

// name: [kind, default, min, max]. `url` and `string` are required.
const OPTIONS = {
  endpoint: ['url'], key: ['string'],
  flushAt: ['int', 20, 1, 500], flushIntervalMs: ['int', 5000, 50, 3600000], maxQueue: ['int', 1000, 1, 100000],
  maxStorageBytes: ['int', 1000000, 1000, 50000000], flagRefreshMs: ['int', 60000, 0, 86400000],
  autocapture: ['boolean', false], capturePageviews: ['boolean', false], respectDoNotTrack: ['boolean', true],
  flagMode: ['mode', 'remote'], sampleRate: ['rate', 1], onError: ['function'], beforeSend: ['function'],
  context: ['object'], bootstrap: ['object'],
};
const ANON_KEY = 'telltale:anonymous_id';
const USER_KEY = 'telltale:user_id';
const OPT_OUT_KEY = 'telltale:optout';
const TAB_KEY = 'telltale:tab';
const MAX_URL_CHARS = 2048;
/// Live tabs rewrite their persisted queue this often, so others never adopt it.
const HEARTBEAT_MS = 10000;

const fail = (message) => { throw new Error('telltale: ' + message); };

/** Checks the options and fills in defaults; throws `telltale: ...` for a bad one. */
function checkOptions(options) {
  if (!options || typeof options !== 'object') fail('pass an options object: new Telltale({ endpoint, key })');
  for (const name of Object.keys(options)) {
    if (!Object.hasOwn(OPTIONS, name)) fail(`unknown option \`${name}\`; known: ${Object.keys(OPTIONS).join(', ')}`);
  }
  const out = {};
  for (const [name, [kind, fallback, min, max]] of Object.entries(OPTIONS)) {
    const v = options[name];
    const must = (what) => fail(`option \`${name}\` must be ${what}`);
    if (kind === 'url' || kind === 'string') {
      if (typeof v !== 'string' || !v) fail(`option \`${name}\` is required and must be a non-empty string`);
      if (kind === 'url' && !/^https?:\/\//.test(v)) must('an http(s) URL');
    } else if (v == null) {
      out[name] = kind === 'object' ? {} : fallback;
      continue;
    } else if (kind === 'int') {
      if (!Number.isInteger(v) || v < min || v > max) must(`an integer from ${min} to ${max}`);
    } else if (kind === 'rate') {
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) must('a number from 0 to 1');
    } else if (kind === 'mode') {
      if (!['remote', 'local', 'off'].includes(v)) must('remote, local or off');
    } else if (kind === 'object') {
      if (typeof v !== 'object' || Array.isArray(v)) must('a plain object');
    } else if (typeof v !== kind) {
      must(`a ${kind}`);
    }
    out[name] = v;
  }
  out.endpoint = out.endpoint.replace(/\/+$/, '');
  out.eventsUrl = out.endpoint + '/v1/events';
  // Beacons cannot set headers, so the (public, write-only) key rides in the URL.
  out.beaconUrl = `${out.eventsUrl}?key=${encodeURIComponent(out.key)}`;
  return out;
}

/** Web storage that never throws: undefined where it is disabled, false when full. */
function storage(area) {
  let s;
  try { s = globalThis[area]; s.length; } catch { s = undefined; }
  return {
    get(key) { try { return s?.getItem(key) || undefined; } catch { return undefined; } },
    set(key, value) { try { s.setItem(key, value); return true; } catch { return false; } },
    remove(key) { try { s?.removeItem(key); } catch { /* blocked */ } },
    keys(prefix) {
      try { return Object.keys(s).filter((k) => k.startsWith(prefix)); } catch { return []; }
    },
  };
}

/** A GET or POST with the key. Resolves to {status, text, etag, retryAfter}; never rejects
 * (a network error is status 0 with `error`). */
async function request(url, key, body, etag) {
  const headers = { Authorization: 'Bearer ' + key };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (etag) headers['If-None-Match'] = etag;
  try {
    const r = await fetch(url, { method: body === undefined ? 'GET' : 'POST', headers, body });
    const h = (name) => r.headers.get(name) || undefined;
    return { status: r.status, text: await r.text().catch(() => ''), etag: h('ETag'), retryAfter: h('Retry-After') };
  } catch (e) {
    return { status: 0, error: e?.message || 'fetch failed' };
  }
}

/** `Retry-After` as ms to wait: delay seconds, or an HTTP date (IMF-fixdate), taken only
 * when it reads back as exactly the same text, so that no engine's lenient `Date.parse`
 * turns "31 Feb" into March. NaN when absent or neither: the core then backs off alone. */
const retryAfterMs = (value = '') => {
  if (/^\d{1,15}$/.test(value)) return +value * 1000;
  const at = Date.parse(value);
  return new Date(at).toUTCString() === value ? at - Date.now() : NaN;
};

/** Whether `v` can be a prop's value: a string, finite number, boolean or null (JSON
 * leaves out one that is undefined). */
const isPropValue = (v) => {
  const t = typeof v;
  return v === null || v === undefined || t === 'string' || t === 'boolean' || (t === 'number' && Number.isFinite(v));
};

/** Why `flat` (a copy of the props: own enumerable properties only) cannot be an event's
 * props, or '' when it can. */
function propsError(flat) {
  // for-in, which lists no arrays per call; inherited keys (where a page added some to
  // Object.prototype) are not the copy's.
  for (const k in flat) {
    if (!isPropValue(flat[k]) && Object.hasOwn(flat, k)) return `prop \`${k}\` must be a string, finite number, boolean or null`;
  }
  return '';
}

/** Canonical JSON (keys sorted at every level): the flag cache is keyed by context. */
const canonical = (v) => v && typeof v === 'object'
  ? Array.isArray(v) ? `[${v.map(canonical)}]` : `{${Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical(v[k]))}}`
  : JSON.stringify(v) ?? 'null';

const on = (target, type, fn, capture) => target?.addEventListener?.(type, fn, capture);

// `location.href` serializes the URL on every read (about 0.8 µs in Chromium, as much as
// the rest of track()), and reading `navigation.currentEntry` costs nearly as much. Where
// the Navigation API is, the URL is read once per history entry: `navigate` (fired before
// any change of the document's URL: pushState, replaceState, hash, traversals) has it
// read fresh on every event until `currententrychange` (synchronous with the change) or
// `navigateerror` says which entry is current, so a page's own listeners of these events
// get the new URL whatever order they were added in. Without entries (no Navigation API,
// or an opaque origin such as a file: page in a webview), on every event.
let knownUrl = '', urlCached = false, urlWatched = false;
/** Each client's constructor calls this; the first subscribes. */
const watchUrl = () => {
  if (urlWatched || !globalThis.navigation?.currentEntry) return;
  urlWatched = urlCached = true;
  const settle = (cached) => () => { knownUrl = ''; urlCached = cached; };
  on(navigation, 'navigate', settle(false));
  on(navigation, 'currententrychange', settle(true));
  on(navigation, 'navigateerror', settle(true));
};
const currentUrl = () => urlCached
  ? (knownUrl ||= location.href.slice(0, MAX_URL_CHARS))
  : globalThis.location?.href.slice(0, MAX_URL_CHARS);

/** Clients made on this page: each after the first gets its own queue key. */
let clientsOnPage = 0;

let enginePromise;
/** The flag engine (a second wasm module), loaded once, on first use by local mode.
 * @returns {Promise<typeof import('./engine.js')>} */
function loadEngine() {
  enginePromise ??= import('./engine.js').then(async (m) => { await m.default(); return m; });
  return enginePromise;
}

export class Telltale {
  #o; #core; #local = storage('localStorage'); #anon; #user; #timers = []; #retryTimer;
  // What track() recorded waits here (each event's props, copied, and the time and the
  // shared parts when they change) until the task ends (a timer), then crosses into the
  // wasm queue as one JSON array in one call, which gives each event its id (#drain).
  // #shared: the name, type, anonymous id, user id, URL and time of the last event in
  // this hand-over.
  #pending = []; #shared = [];
  // Whether track() records anything, as the core answers when the anonymous id is set
  // (sampling is per id), and false after optOut() or shutdown(): track() makes no
  // crossing to ask.
  #collecting = false;
  #saveQueued = false; #storageWarned = false; #closed = false; #queueKey; #prefix; #suffix;
  // Whether this page's sendBeacon ever took a body: after that, a refusal means the
  // keepalive budget is spent, not a webview whose sendBeacon never works.
  #beaconWorks = false;
  #sending = Promise.resolve(0);
  // flags
  #decisions = new Map(); #probes = {}; #exposed = new Set(); #etag; #failures = 0; #nextFetchAt = 0;
  #context; #engine; #flagListeners = []; #probeListeners = [];

  /** Creates a client; throws `Error('telltale: ...')` for invalid options, and never otherwise.
   * @param {TelltaleOptions} options */
  constructor(options) {
    const o = this.#o = checkOptions(options);
    const seed = new Uint32Array(2);
    try { crypto.getRandomValues(seed); } catch { seed[0] = Math.random() * 2 ** 32; seed[1] = Date.now(); }
    this.#core = new Core(o.flushAt, o.maxQueue, o.maxStorageBytes, o.sampleRate, seed[0], seed[1]);
    const signal = o.respectDoNotTrack && (navigator.doNotTrack === '1' || globalThis.doNotTrack === '1' || /** @type {any} */ (navigator).globalPrivacyControl === true);
    if (this.#local.get(OPT_OUT_KEY) === '1' || signal) this.#core.setOptedOut(true);
    // Opted out, new ids live in memory only: nothing is stored.
    this.#setAnonymous(this.#local.get(ANON_KEY));
    this.#user = this.#local.get(USER_KEY);
    this.#prefix = `telltale:q:${hashKey(o.key)}:`;
    this.#suffix = clientsOnPage++ ? '.' + clientsOnPage : '';
    this.#queueKey = this.#prefix + this.#tabId() + this.#suffix;
    this.#guard(() => this.#restore());
    this.#every(o.flushIntervalMs, () => this.#core.hasWork && this.#send(false));
    // Also a heartbeat: a live tab's persisted queue is never adopted by another tab, and
    // a copy the page-hide beacons made stale (the queue emptied, storage not rewritten)
    // is removed instead of being adopted and sent again.
    this.#every(HEARTBEAT_MS, () => this.#save());
    const hide = () => this.#guard(() => this.#pageHidden());
    on(globalThis, 'pagehide', hide);
    watchUrl();
    on(globalThis.document, 'visibilitychange', () => document.visibilityState === 'hidden' ? hide() : this.#refresh(false));
    on(globalThis, 'online', () => { this.#core.retryNow(); this.#send(false); });
    if (o.autocapture) on(globalThis.document, 'click', (e) => this.#guard(() => this.#click(e)), true);
    this.#startFlags();
    if (o.capturePageviews) {
      this.#watchRoutes();
      this.page();
    }
  }

  // ---- analytics ----

  /** Records a custom event; `props` is a flat object of strings, numbers, booleans, nulls.
   * @param {string} name @param {Props} [props] */
  track(name, props) {
    // #guard without its closure: this is the hot path.
    try { this.#enqueue('track', name, props); } catch (e) { this.#caught(e); }
  }

  /** Records a view of the current page (SPA route changes: or set `capturePageviews`). */
  page() {
    this.#guard(() => {
      const props = { path: location.pathname, title: document.title };
      if (document.referrer) props.referrer = document.referrer;
      this.#enqueue('page', '$pageview', props);
    });
  }

  /** Links later events to a known user and records their traits.
   * @param {string} userId @param {Props} [traits] */
  identify(userId, traits) {
    this.#guard(() => {
      if (typeof userId !== 'string' || !userId) return this.#report('identify() needs a non-empty user id');
      this.#user = userId;
      this.#local.set(USER_KEY, userId);
      this.#enqueue('identify', '$identify', traits);
    });
  }

  /** Forgets the user (on logout): later events are anonymous again, under a new id. */
  reset() {
    this.#guard(() => {
      this.#user = undefined;
      this.#local.remove(USER_KEY);
      this.#setAnonymous(undefined);
    });
  }

  /** Stops collection on this device (persisted); what was queued is discarded. */
  optOut() {
    this.#guard(() => {
      this.#pending = [];
      this.#shared = []; // the next hand-over names them again
      this.#core.setOptedOut(true);
      this.#collecting = false;
      this.#local.remove(this.#queueKey);
      this.#local.set(OPT_OUT_KEY, '1');
    });
  }

  /** Resumes collection after `optOut()` (or over Do Not Track / GPC, as explicit consent). */
  optIn() {
    this.#guard(() => {
      this.#core.setOptedOut(false);
      this.#local.remove(OPT_OUT_KEY);
      this.#setAnonymous(this.#anon); // now it may be stored
      this.#queueKey = this.#prefix + this.#tabId() + this.#suffix;
    });
  }

  /** Whether collection is off (opted out, or Do Not Track / GPC respected).
   * @type {boolean} */
  get optedOut() { return this.#core.optedOut; }
  /** Events evicted by the byte or count budget and not yet reported to the collector.
   * @type {number} */
  get droppedCount() { this.#handOver(); return this.#core.droppedCount; }
  /** The id that groups this browser's events while the user is unknown.
   * @type {string} */
  get anonymousId() { return this.#anon; }
  /** Events not yet delivered.
   * @type {number} */
  get queueLength() { this.#handOver(); return this.#core.queueLength; }

  /** Sends everything queued now. Resolves to the events the collector acknowledged;
   * never rejects (failures go to `onError`, and the events stay queued).
   * @returns {Promise<number>} */
  flush() { return this.#send(false); }

  /** Cancels timers and sends what is queued; later calls record nothing.
   * @returns {Promise<number>} */
  shutdown() {
    this.#closed = true;
    this.#core.close();
    this.#collecting = false;
    this.#timers.forEach(clearInterval);
    clearTimeout(this.#retryTimer);
    return this.flush();
  }

  #guard(fn) {
    try { return fn(); } catch (e) { this.#caught(e); }
  }

  #caught(e) { this.#report(e?.message || String(e)); }

  #report(message) {
    const error = new Error('telltale: ' + message);
    try {
      if (this.#o.onError) this.#o.onError(error);
      else console.warn(error.message);
    } catch { /* a throwing onError must not break the page either */ }
  }

  #every(ms, fn) {
    if (ms > 0) this.#timers.push(setInterval(() => this.#guard(fn), ms));
  }

  #setAnonymous(id) {
    id ||= this.#core.nextId(Date.now());
    if (!this.#core.optedOut) this.#local.set(ANON_KEY, id);
    this.#anon = id;
    this.#collecting = this.#core.setAnonymousId(id);
  }

  /** This tab's id, kept in sessionStorage so that a reload of the tab finds its queue. */
  #tabId() {
    const session = storage('sessionStorage');
    const tab = session.get(TAB_KEY) || this.#core.nextId(Date.now());
    if (!this.#core.optedOut) session.set(TAB_KEY, tab);
    return tab;
  }

  /** Records the event for the hand-over: no network, storage or crossing into wasm on
   * this path (but an id, with `beforeSend`). */
  #enqueue(type, name, props) {
    if (!this.#collecting) return;
    if (typeof name !== 'string' || !name) return this.#report('an event needs a name');
    if (props != null && (typeof props !== 'object' || Array.isArray(props))) return this.#report('props must be a plain object');
    // Copied, then the copy checked: what was checked is what the hand-over serializes
    // (a getter, or a Proxy's get trap, is read once, into the copy), and the event is
    // what it was when tracked, whatever the page changes later. A spread copies own
    // enumerable properties as data (a prop named __proto__ stays a prop).
    const flat = { ...props };
    const error = propsError(flat);
    if (error) return this.#report(error);
    // A whole number of ms from 0 to the last date JS has, written as digits, even where
    // a page patched Date.now (to Infinity or 1e21): the core reads the time's digits.
    const ts = Math.min(Math.max(0, Math.floor(Date.now()) || 0), 8.64e15);
    const anon = this.#anon, user = this.#user, url = currentUrl();
    // #pending and #shared are read only after the page's code (a getter, Date.now,
    // beforeSend, onError) has run: reading queueLength there hands them over and starts
    // new ones, and optOut() there forgets them, this event too.
    if (!this.#collecting) return;
    const beforeSend = this.#o.beforeSend;
    if (beforeSend) {
      // The hook sees the props as JSON holds them: no key whose value is undefined (a
      // redaction hook that reads every value as a string would throw on one, and the
      // event would then go out unredacted).
      for (const k in flat) if (flat[k] === undefined) delete flat[k];
      // One shape for every event: JSON leaves out a user id or URL that is undefined.
      const event = /** @type {any} */ ({ id: this.#core.nextId(ts), type, name, ts, anonymous_id: anon, props: flat, user_id: user, url });
      let edited = event;
      try {
        edited = this.#o.beforeSend(event);
        if (edited == null || edited === false) return;
      } catch {
        this.#report('beforeSend threw; the event is kept as it was');
      }
      if (!this.#collecting) return; // the hook (or onError) opted out
      // Serialized now: the hook may keep and change what it returned. What JSON cannot
      // hold (a BigInt, a cycle) is reported and dropped here, not at the hand-over. Read
      // back, it serializes to the same text again at the hand-over, after -1.
      try {
        const json = JSON.stringify(typeof edited === 'object' ? edited : event);
        // Only an object is an event (one whose toJSON gives a number is not).
        if (json[0] !== '{') throw 0;
        this.#pending.push(-1, JSON.parse(json));
      } catch {
        return this.#report('beforeSend gave an event JSON cannot hold as an object; it is dropped');
      }
    } else {
      // Only the props, after the time when it differs from the last event's in this
      // hand-over (a burst shares a few ms) and after the other parts (the time then
      // follows them) when they differ from the last event's. One JSON.stringify of them
      // all at the hand-over costs a third less than one per call, the copy per call
      // included (0.25 -> 0.17 µs an event for `{i, plan}` in Chromium), and the core writes the rest of each event's JSON and its
      // id as it queues it (pushEvents, telltale_core::capture).
      const shared = this.#shared, pending = this.#pending;
      if (shared[0] !== name || shared[1] !== type || shared[2] !== anon || shared[3] !== user || shared[4] !== url) {
        this.#shared = [name, type, anon, user, url, ts];
        pending.push(ts, [{ type, name, anonymous_id: anon, user_id: user, url }]);
      } else if (shared[5] !== ts) pending.push(shared[5] = ts);
      pending.push(flat);
    }
    this.#save(); // hands the events over, and sends a full batch
    // More than the queue keeps goes over at once (the queue evicts by its budget); the
    // times and shared parts count too, so this may come a little early.
    if (this.#pending.length >= this.#o.maxQueue && this.#drain()) this.#send(true);
  }

  /** Hands the events gathered since the last call to the wasm queue, in one crossing.
   * True when a full batch waits. */
  #drain() {
    const pending = this.#pending;
    if (!pending.length) return false;
    this.#pending = [];
    this.#shared = []; // each hand-over starts with none
    // A page with an Array.prototype.toJSON (old Prototype.js) would make the array a
    // string: then each element is serialized on its own (the shared parts are arrays).
    const text = /** @type {any} */ (Array.prototype).toJSON === undefined
      ? JSON.stringify(pending)
      : `[${pending.map((e) => Array.isArray(e) ? `[${JSON.stringify(e[0])}]` : JSON.stringify(e)).join()}]`;
    return this.#core.pushEvents(text);
  }

  /** Hands the events over now, for a figure read from the core. */
  #handOver() { this.#guard(() => this.#drain() && this.#send(true)); }

  /** Sends one after another: a flush waits for the send in flight, then sends the rest. */
  #send(onlyFull) {
    const run = this.#sending.then(() => this.#sendNow(onlyFull));
    this.#sending = run;
    return run;
  }

  /** Sends batches until none is left (or, `onlyFull`, no full one) or one failed and
   * waits for its retry. Resolves to events delivered; never rejects. */
  async #sendNow(onlyFull) {
    const core = this.#core;
    let delivered = 0;
    try {
      while (navigator.onLine !== false) { // offline: the `online` event resumes
        this.#drain(); // what was tracked while the last batch was in flight
        const body = core.nextBody(Date.now(), onlyFull);
        if (body === undefined) break;
        const answer = await request(this.#o.eventsUrl, this.#o.key, body);
        const outcome = core.settle(answer.status, retryAfterMs(answer.retryAfter), Date.now(), Math.random());
        if (outcome === Settled.Delivered) delivered += core.lastSettled;
        if (outcome === Settled.Dropped) this.#report(`the collector refused the batch with ${answer.status}; ${core.lastSettled} events dropped`);
        if (outcome === Settled.Retry) {
          this.#report(`${answer.status ? 'collector answered ' + answer.status : 'network error: ' + answer.error}; will retry`);
          break;
        }
      }
      const at = core.retryAt();
      if (at > 0 && !this.#closed) {
        clearTimeout(this.#retryTimer);
        // Timers may fire a little early; `nextBody` then re-arms.
        this.#retryTimer = setTimeout(() => this.#send(false), Math.max(0, at - Date.now()));
      }
    } catch (e) {
      this.#caught(e);
    }
    this.#save();
    return delivered;
  }

  /** Persists the queue once per turn of the event loop, off the `track()` path. */
  #save() {
    if (this.#saveQueued) return;
    this.#saveQueued = true;
    setTimeout(() => this.#guard(() => {
      this.#saveQueued = false;
      if (this.#drain()) this.#send(true);
      const text = this.#core.persist(Date.now());
      if (text === undefined) this.#local.remove(this.#queueKey);
      else if (!this.#local.set(this.#queueKey, text) && !this.#storageWarned) {
        this.#storageWarned = true;
        this.#report('storage is full or blocked; queued events are kept in memory only');
      }
    }), 0);
  }

  /** At start: this tab's persisted queue (a reload), and queues of tabs that are gone. */
  #restore() {
    const core = this.#core;
    if (core.optedOut) return;
    let adopted = 0;
    for (const key of this.#local.keys(this.#prefix)) {
      const text = this.#local.get(key);
      if (text === undefined) continue;
      const own = key === this.#queueKey;
      const taken = core.adopt(text, Date.now(), own);
      if (taken === -1) continue; // a live tab's
      if (!own) this.#local.remove(key); // ours now, or not a queue
      adopted += Math.max(0, taken);
    }
    if (adopted > 0) {
      this.#save();
      this.#send(false);
    }
  }

  /** Page hidden or closing: the queue goes by sendBeacon in chunks under the keepalive
   * budget, until the browser refuses one (Chromium and WebKit allow 64 KiB in flight for
   * all beacons and keepalive fetches of a page together). A refused chunk stays queued,
   * in memory and in the persisted copy, which this does not rewrite: a page restored from
   * the back/forward cache sends it at its next flush, the next page of the app otherwise.
   * Without a working sendBeacon (missing, throwing, or never taking a body, as in some
   * webviews) one keepalive fetch carries the first chunk, which also stays queued: the
   * fetch may fail after the page is gone, and a resend is deduplicated by event id. */
  #pageHidden() {
    this.#drain();
    if (navigator.onLine === false) return;
    const { eventsUrl, beaconUrl, key } = this.#o;
    // Only a first chunk can meet a sendBeacon that never took a body: the loop goes on
    // only after one was taken.
    for (let body; (body = this.#core.nextBeaconBody(Date.now())) !== undefined;) {
      let sent = false;
      try { sent = !!navigator.sendBeacon(beaconUrl, body); } catch { /* no sendBeacon */ }
      if (!(this.#beaconWorks ||= sent)) {
        try {
          fetch(eventsUrl, {
            method: 'POST', keepalive: true, body,
            headers: { 'Content-Type': 'text/plain', Authorization: 'Bearer ' + key },
          }).catch(() => {});
        } catch { /* nothing more to try */ }
      }
      this.#core.beaconDone(sent);
      if (!sent) break;
    }
  }

  #click(event) {
    const el = event.target?.closest?.('[data-track]');
    if (!el) return;
    const props = {};
    for (const attr of el.getAttributeNames()) {
      if (attr.startsWith('data-track-')) props[attr.slice(11).replaceAll('-', '_')] = el.getAttribute(attr);
    }
    this.#enqueue('click', el.getAttribute('data-track'), props);
  }

  /** Page views on SPA navigations: pushState/replaceState that change the path, and
   * back/forward. */
  #watchRoutes() {
    for (const method of ['pushState', 'replaceState']) {
      const original = history[method];
      history[method] = (...args) => {
        const before = location.pathname;
        const result = original.apply(history, args);
        if (location.pathname !== before) this.page();
        return result;
      };
    }
    on(globalThis, 'popstate', () => this.page());
  }

  // ---- flags ----

  #startFlags() {
    const o = this.#o;
    this.#context = o.context;
    for (const [key, value] of Object.entries(o.bootstrap)) this.#decisions.set(key, { value, reason: 'BOOTSTRAP', version: '' });
    if (o.flagMode === 'off') return;
    this.#loadCached();
    this.#refresh(true);
    this.#every(o.flagRefreshMs, () => this.#refresh(false));
  }

  #cacheKey() {
    return `telltale:flags:${this.#o.flagMode[0]}:${hashKey(canonical(this.#context))}`;
  }

  /** Shows cached decisions for the current context at once (no flicker on reload). */
  #loadCached() {
    try {
      const cached = JSON.parse(this.#local.get(this.#cacheKey()) || 'null');
      if (cached?.decisions) {
        this.#etag = cached.etag;
        this.#replace(cached.decisions);
      }
    } catch { /* a corrupt cache is ignored and overwritten */ }
  }

  /** Replaces the decisions and tells listeners which keys changed (value or variant). */
  #replace(next) {
    const changed = [];
    const fingerprint = (d) => d && JSON.stringify([d.value, d.variant]);
    for (const [key, d] of Object.entries(next)) {
      if (fingerprint(this.#decisions.get(key)) !== fingerprint(d)) changed.push(key);
    }
    for (const key of this.#decisions.keys()) if (!(key in next)) changed.push(key);
    this.#decisions = new Map(Object.entries(next));
    if (changed.length) this.#notify(this.#flagListeners, [changed], 'onChange');
  }

  #replaceProbes(next) {
    const old = this.#probes;
    this.#probes = next;
    for (const name of new Set([...Object.keys(old), ...Object.keys(next)])) {
      if (old[name] !== next[name]) this.#notify(this.#probeListeners, [name, this.probe(name)], 'onProbeChange');
    }
  }

  #notify(listeners, args, what) {
    for (const listener of listeners.slice()) {
      try { listener(...args); } catch { this.#report(`an ${what} listener threw`); }
    }
  }

  /** Decisions from the collector (remote) or from the ruleset evaluated here (local).
   * Unless `force`d it waits out the backoff after failures. Resolves to success. */
  async #refresh(force) {
    const o = this.#o;
    const now = Date.now();
    if (o.flagMode === 'off' || this.#closed || (!force && now < this.#nextFetchAt)) return false;
    const context = this.#context;
    try {
      const local = o.flagMode === 'local';
      const answer = local
        // Without the engine loaded a 304 could not be evaluated: ask for the ruleset.
        ? await request(o.endpoint + '/v1/flags/compiled', o.key, undefined, this.#engine && this.#etag)
        : await request(o.endpoint + '/v1/flags/evaluate', o.key, JSON.stringify({ context }), this.#etag);
      if (context !== this.#context) return false; // setContext() started a newer refresh
      if (answer.status === 200) {
        if (local) {
          const engine = new (await loadEngine()).FlagEngine(answer.text); // parsed once, in the engine
          this.#engine?.free();
          this.#engine = engine;
          this.#replaceProbes(engine.servedProbes());
          this.#evaluateLocally();
        } else {
          const body = JSON.parse(answer.text);
          this.#replaceProbes(body.probes || {});
          this.#replace(body.flags || {});
        }
        // Only once the answer is in use: a ruleset the engine refused keeps no ETag.
        this.#etag = answer.etag;
      } else if (answer.status === 304) {
        if (local) this.#evaluateLocally();
      } else {
        throw new Error(answer.status ? 'flags request answered ' + answer.status : answer.error);
      }
      this.#failures = 0;
      this.#nextFetchAt = 0;
      const decisions = Object.fromEntries(this.#decisions);
      this.#local.set(this.#cacheKey(), JSON.stringify({ etag: this.#etag, decisions }));
      return true;
    } catch (e) {
      this.#failures++;
      this.#nextFetchAt = now + refreshBackoffMs(this.#failures) * (1 + Math.random() * 0.2);
      this.#report(`flag refresh failed: ${e?.message || e}; backing off`);
      return false;
    }
  }

  #evaluateLocally() {
    // The context crosses once; decisions come back as numbers, decoded in the engine module.
    if (this.#engine) this.#replace(this.#engine.evaluateAll(this.#context, this.#probes, Date.now()));
  }

  /** The decision for `key`, recording an exposure the first time in this page. */
  #decision(key) {
    const d = this.#decisions.get(key);
    if (d?.variant != null) {
      const id = key + '\u001f' + d.variant;
      if (!this.#exposed.has(id)) {
        this.#exposed.add(id);
        this.#guard(() => this.#enqueue('track', '$exposure', { flag: key, variant: d.variant, version: d.version ?? '', reason: d.reason }));
      }
    }
    return d;
  }

  /** Whether a boolean flag is on; `defaultValue` when unknown or not a boolean.
   * @param {string} key @param {boolean} defaultValue @returns {boolean} */
  isEnabled(key, defaultValue) {
    const v = this.#decision(key)?.value;
    return typeof v === 'boolean' ? v : defaultValue;
  }

  /** The variant served for a flag, if known.
   * @param {string} key @returns {string | undefined} */
  variant(key) { return this.#decision(key)?.variant ?? undefined; }

  /** A flag's value; `defaultValue` when unknown or of another type than the default.
   * @template T @param {string} key @param {T} defaultValue @returns {T} */
  value(key, defaultValue) {
    const d = this.#decision(key);
    if (!d) return defaultValue;
    const v = d.value;
    const same = defaultValue == null || (typeof v === typeof defaultValue && Array.isArray(v) === Array.isArray(defaultValue));
    return same ? v : defaultValue;
  }

  /** Everything known about a decision: value, variant, reason, error code, version.
   * @param {string} key @returns {FlagDetails} */
  details(key) {
    const d = this.#decision(key);
    return d ? { ...d, key } : { key, value: null, reason: 'ERROR', error_code: 'FLAG_NOT_FOUND' };
  }

  /** Replaces the evaluation context and refreshes decisions. Resolves to success.
   * @param {Record<string, unknown>} context @returns {Promise<boolean>} */
  setContext(context) {
    if (context != null && (typeof context !== 'object' || Array.isArray(context))) {
      this.#report('setContext() needs a plain object');
      return Promise.resolve(false);
    }
    this.#context = context ?? {};
    if (this.#o.flagMode === 'local' && this.#engine) {
      this.#guard(() => this.#evaluateLocally()); // the ruleset (and its ETag) still holds
    } else {
      this.#etag = undefined; // decisions for another context
      this.#loadCached();
    }
    return this.#refresh(true);
  }

  /** Calls `listener(changedKeys)` whenever decisions change.
   * @param {(changedKeys: string[]) => void} listener @returns {void} */
  onChange(listener) { this.#flagListeners.push(listener); }

  /** A probe's health as the collector last reported it: `up`, `down` or `unknown`.
   * @param {string} name @returns {ProbeState} */
  probe(name) {
    const s = this.#probes[name];
    return s === 'up' || s === 'down' ? s : 'unknown';
  }

  /** Calls `listener(name, state)` whenever a probe's state changes.
   * @param {(name: string, state: ProbeState) => void} listener @returns {void} */
  onProbeChange(listener) { this.#probeListeners.push(listener); }

  /** Refreshes decisions now. Resolves to success.
   * @returns {Promise<boolean>} */
  refreshFlags() { return this.#refresh(true); }
}

/** Loads the flag engine module on demand (it is what local mode uses): `FlagEngine` and
 * `evaluateRuleset`, for tools, tests and server-side rendering. */
export { loadEngine as loadFlagEngine };
