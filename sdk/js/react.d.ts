import type { ReactNode, ReactElement } from 'react';
import type { Telltale, FlagDetails } from './telltale.js';

/**
 * Makes `client` (absent when rendering on the server) available to the hooks.
 * `bootstrap` (`{flagKey: value}`) is what the server renders and hydration starts from:
 * give the client the same (`new Telltale({ bootstrap })`).
 */
export function TelltaleProvider(props: { client?: Telltale | null; bootstrap?: Record<string, unknown>; children?: ReactNode }): ReactElement;
/** A flag's value (`defaultValue` while unknown or of another type); re-renders when it changes. */
export function useFlag<T>(key: string, defaultValue: T): T;
/** Everything known about a decision; re-renders when it changes. */
export function useFlagDetails(key: string): FlagDetails;
/** A probe's state; re-renders when it changes. */
export function useProbe(name: string): 'up' | 'down' | 'unknown';
/** `track(name, props)` for the client (a no-op on the server). */
export function useTrack(): (name: string, props?: Record<string, string | number | boolean | null>) => void;
