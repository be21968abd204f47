// The collector's admin API, with the admin key from sessionStorage. A 401 anywhere
// signs the user out; every other error carries the collector's structured error.
const KEY = 'telltale:admin_key';

export class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e ? e.message : `HTTP ${status}`);
    this.status = status;
    this.code = e ? e.code : 'http_error';
    this.field = e ? e.field : null;
    this.details = e ? e.details : null;
  }
}

/** An error as the user should see it: the collector's message, the field it names and
 * the flags a 409 says still use the entry. */
export function describe(err) {
  const field = err.field ? ` (${err.field})` : '';
  const flags = err.details?.flags?.length ? ` (used by: ${err.details.flags.join(', ')})` : '';
  const experiments = err.details?.experiments?.length ? ` (experiments: ${err.details.experiments.join(', ')})` : '';
  return `${err.message}${field}${flags}${experiments}`;
}

let onSignOut = () => {};
export function whenSignedOut(handler) { onSignOut = handler; }

export const session = {
  get key() { return sessionStorage.getItem(KEY) || ''; },
  set key(value) { if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY); },
};

/** Calls the API: `api('GET', '/v1/admin/apps')`, `api('PUT', path, body)`. */
export async function api(method, path, body, { accept = 'application/json', headers = {} } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${session.key}`, Accept: accept, 'X-Telltale-Actor': 'console', ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    onSignOut('Your session ended or the key is wrong: sign in again.');
    throw new ApiError(401, await res.json().catch(() => null));
  }
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  if (accept === 'text/csv') return res.text();
  return res.status === 204 ? null : res.json();
}

/** Query string from an object, skipping empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const text = p.toString();
  return text ? `?${text}` : '';
}
