/** Loads the SDK's wasm core (telltale_wasm_bg.wasm, next to this module unless given). */
export default function init(input?: { module_or_path?: RequestInfo | URL | Response | BufferSource | WebAssembly.Module }): Promise<unknown>;
export { init };

/** Loads the flag engine module on demand (local mode loads it by itself). */
export function loadFlagEngine(): Promise<typeof import('./engine.js')>;

export type PropValue = string | number | boolean | null;
export type Props = Record<string, PropValue | undefined>;

export interface TelltaleEvent {
  id: string;
  type: 'track' | 'page' | 'identify' | 'click';
  name: string;
  /** Milliseconds since the epoch. */
  ts: number;
  anonymous_id: string;
  user_id?: string;
  props: Record<string, PropValue>;
  url?: string;
}

export interface TelltaleOptions {
  /** The collector's base URL, such as `https://collect.example.com`. */
  endpoint: string;
  /** The app's public ingest key. */
  key: string;
  /** Events per batch; a full batch is sent at once. 1 to 500, default 20. */
  flushAt?: number;
  /** Queued events are sent at least this often. 50 to 3,600,000, default 5000. */
  flushIntervalMs?: number;
  /** Most events kept while they cannot be sent; the oldest are evicted and counted. Default 1000. */
  maxQueue?: number;
  /** Byte budget of queued (and persisted) events; the oldest are evicted beyond it. Default 1,000,000. */
  maxStorageBytes?: number;
  /** Record clicks inside `[data-track="name"]` elements (`data-track-*` become props). */
  autocapture?: boolean;
  /** Record the first page view and SPA route changes. */
  capturePageviews?: boolean;
  /** Receives every error; the SDK never throws into the page (only the constructor throws, for bad options). */
  onError?: (error: Error) => void;
  /** Edit an event, or return null/false to drop it. A hook that throws keeps the event. */
  beforeSend?: (event: TelltaleEvent) => TelltaleEvent | null | false | undefined;
  /** Share of anonymous ids whose events are collected, 0 to 1 (whole sessions are kept or not). Default 1. */
  sampleRate?: number;
  /** Do Not Track and Global Privacy Control turn collection off until `optIn()`. Default true. */
  respectDoNotTrack?: boolean;
  /** `remote` (decisions from the collector, default), `local` (the ruleset evaluated here
   * by the flag engine, loaded on demand) or `off`. */
  flagMode?: 'remote' | 'local' | 'off';
  /** The evaluation context (user id, role, ...). */
  context?: Record<string, unknown>;
  /** Flag values to use until the first answer: `{ key: value }`. */
  bootstrap?: Record<string, unknown>;
  /** Flag refresh period; 0 turns periodic refreshes off. Default 60000. */
  flagRefreshMs?: number;
}

export interface FlagDetails {
  key: string;
  value: unknown;
  variant?: string;
  /** STATIC, TARGETING_MATCH, SPLIT, DISABLED, DEFAULT, ERROR, PREREQUISITE_FAILED; BOOTSTRAP before the first answer. */
  reason: string;
  error_code?: 'FLAG_NOT_FOUND' | 'PARSE_ERROR' | string;
  error_message?: string;
  /** The id of the rule that matched. */
  rule?: string;
  /** The bucket (0..100,000) a rollout or split used. */
  bucket?: number;
  /** The required probe that is down (reason DISABLED). */
  probe?: string;
  /** The config version (commit) that decided. */
  version?: string;
}

export class Telltale {
  /** Throws `Error('telltale: ...')` for invalid options, and never otherwise. */
  constructor(options: TelltaleOptions);
  track(name: string, props?: Props): void;
  page(): void;
  identify(userId: string, traits?: Props): void;
  reset(): void;
  optOut(): void;
  optIn(): void;
  readonly optedOut: boolean;
  readonly droppedCount: number;
  readonly anonymousId: string;
  readonly queueLength: number;
  /** Resolves to the events the collector acknowledged; never rejects. */
  flush(): Promise<number>;
  shutdown(): Promise<number>;
  isEnabled(key: string, defaultValue: boolean): boolean;
  variant(key: string): string | undefined;
  value<T>(key: string, defaultValue: T): T;
  details(key: string): FlagDetails;
  setContext(context: Record<string, unknown>): Promise<boolean>;
  onChange(listener: (changedKeys: string[]) => void): void;
  probe(name: string): 'up' | 'down' | 'unknown';
  onProbeChange(listener: (name: string, state: 'up' | 'down' | 'unknown') => void): void;
  refreshFlags(): Promise<boolean>;
}
