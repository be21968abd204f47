// `telltale/react`: React bindings over a Telltale client (React is a peer dependency,
// imported only by this module). One subscription to the client fans out per flag key, so
// a decision change re-renders only the components that read that flag. On the server
// (no client) the hooks read the `bootstrap` decisions; hydration reads them too, so the
// server's HTML and the first client render agree, and fresher decisions follow after it.
// @ts-check
// The published types (react.d.ts) are generated from this file's JSDoc.
import { createContext, createElement, useCallback, useContext, useMemo, useRef, useSyncExternalStore } from 'react';

/** @typedef {import('./telltale.js').Telltale} Telltale
 * @typedef {import('./telltale.js').FlagDetails} FlagDetails */

const TelltaleContext = createContext(null);

/** Listeners per name, notified by name. */
function fanOut() {
  const byName = new Map();
  return {
    subscribe: (name) => (listener) => {
      if (!byName.has(name)) byName.set(name, new Set());
      byName.get(name).add(listener);
      return () => byName.get(name)?.delete(listener);
    },
    notify: (name) => { for (const listener of byName.get(name) ?? []) listener(); },
  };
}

function storeFor(client, bootstrap) {
  const flags = fanOut();
  const probes = fanOut();
  client?.onChange((keys) => keys.forEach(flags.notify));
  client?.onProbeChange((name) => probes.notify(name));
  return { client, bootstrap: bootstrap ?? {}, flags, probes };
}

/**
 * Makes `client` (a `Telltale`; absent when rendering on the server) available to the
 * hooks below. `bootstrap` (`{flagKey: value}`) is what the server renders and what
 * hydration starts from: give the client the same (`new Telltale({ bootstrap })`).

 * @param {{ client?: Telltale | null, bootstrap?: Record<string, unknown>, children?: import('react').ReactNode }} props */
export function TelltaleProvider({ client, bootstrap, children }) {
  const store = useMemo(() => storeFor(client, bootstrap), [client, bootstrap]);
  return createElement(TelltaleContext.Provider, { value: store }, children);
}

function useStore() {
  const store = useContext(TelltaleContext);
  if (!store) throw new Error('telltale/react: wrap the app in <TelltaleProvider>');
  return store;
}

/** A bootstrap value, typed as `client.value` types it (`defaultValue` when absent or of another type). */
function typed(value, defaultValue) {
  if (value === undefined) return defaultValue;
  const same = defaultValue == null || (typeof value === typeof defaultValue && Array.isArray(value) === Array.isArray(defaultValue));
  return same ? value : defaultValue;
}

/** A flag's value (`defaultValue` while unknown or of another type); re-renders when it changes.
 * @template T @param {string} key @param {T} defaultValue @returns {T} */
export function useFlag(key, defaultValue) {
  const store = useStore();
  const subscribe = useMemo(() => store.flags.subscribe(key), [store, key]);
  const server = () => typed(store.bootstrap[key], defaultValue);
  const read = () => (store.client ? store.client.value(key, defaultValue) : server());
  return useSyncExternalStore(subscribe, read, server);
}

/** Everything known about a decision (`client.details`); re-renders when it changes.
 * @param {string} key @returns {FlagDetails} */
export function useFlagDetails(key) {
  const store = useStore();
  const subscribe = useMemo(() => store.flags.subscribe(key), [store, key]);
  const last = useRef(null);
  // The same object while nothing a caller reads has changed: React compares snapshots by identity.
  const stable = (d) => {
    const l = last.current;
    const same = l && ['key', 'value', 'variant', 'reason', 'error_code', 'rule', 'bucket', 'probe', 'version'].every((f) => l[f] === d[f]);
    return same ? l : (last.current = d);
  };
  const server = () => stable(key in store.bootstrap
    ? { value: store.bootstrap[key], reason: 'BOOTSTRAP', version: '', key }
    : { key, value: null, reason: 'ERROR', error_code: 'FLAG_NOT_FOUND' });
  const read = () => (store.client ? stable(store.client.details(key)) : server());
  return useSyncExternalStore(subscribe, read, server);
}

/** A probe's state (`up`, `down` or `unknown`); re-renders when it changes.
 * @param {string} name @returns {'up' | 'down' | 'unknown'} */
export function useProbe(name) {
  const store = useStore();
  const subscribe = useMemo(() => store.probes.subscribe(name), [store, name]);
  return useSyncExternalStore(subscribe, () => store.client?.probe(name) ?? 'unknown', () => 'unknown');
}

/** `track(name, props)` for the client (a no-op on the server).
 * @returns {(name: string, props?: import('./telltale.js').Props) => void} */
export function useTrack() {
  const store = useStore();
  return useCallback((name, props) => store.client?.track(name, props), [store]);
}
