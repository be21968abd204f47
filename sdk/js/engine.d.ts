/** Loads the engine's wasm: wasm-bindgen's `init` and `initSync`, which this module wraps to know the engine's memory. */
export { default, initSync } from './telltale_engine.js';

/** Probe states by name, as the collector serves them. */
export type ProbeStates = Record<string, 'up' | 'down' | 'unknown'>;

/** A compiled ruleset, decided by the collector's own engine in wasm. */
export class FlagEngine {
  /** Compiles a ruleset (the JSON `GET /v1/flags/ruleset` serves); throws when it is not JSON of the right shape. */
  constructor(rulesetJson: string);
  /** What the packed numbers index (frozen). */
  tables(): FlagTables;
  /** The index of a flag for `decide`, or -1. */
  indexOf(key: string): number;
  /** Keeps `context` (parsed once) and `probes` (undefined: the states the ruleset was served with). */
  setContext(context: Record<string, unknown>, probes?: ProbeStates): void;
  /** Flag `index` for the context set last, as one packed number (see `decodeDecision`);
   * an index that names no flag decides "not found". */
  decide(index: number, nowMs: number): number;
  /** Every flag for the context set last, packed, in index order. */
  decideAll(nowMs: number): Float64Array;
  servedProbes(): ProbeStates;
  warnings(): { code: string; field: string; message: string }[];
  free(): void;
  /** Decides `key` for `context` (and sets the context, as `setContext` does). The value is the caller's own copy. */
  evaluate(key: string, context: Record<string, unknown>, probes: ProbeStates | undefined, nowMs: number): FlagDecision;
  /** Decides every flag for one context: `{key: decision}` (and sets the context). The values are the caller's own copies. */
  evaluateAll(context: Record<string, unknown>, probes: ProbeStates | undefined, nowMs: number): Record<string, FlagDecision>;
}

/** Decides one flag of a ruleset in one call. */
export function evaluateRuleset(rulesetJson: string, key: string, context: Record<string, unknown>, probes: ProbeStates | undefined, nowMs: number): FlagDecision;

/** What the packed numbers of `FlagEngine.decide` and `decideAll` index, per ruleset. */
export interface FlagTables {
  readonly version: string;
  /** Flag keys; a flag's index is its position here. */
  readonly keys: readonly string[];
  /** Per flag: `[variant key, value]` by variant index. */
  readonly variants: readonly (readonly (readonly [string, unknown])[])[];
  /** Per flag: rule ids by rule index. */
  readonly rules: readonly (readonly string[])[];
  /** Per flag: the probe it requires, or null. */
  readonly probes: readonly (string | null)[];
  /** Per flag: why it did not compile, or null. */
  readonly problems: readonly (string | null)[];
  readonly reasons: readonly string[];
}

/** A decision, as `FlagEngine.evaluate` returns it. */
export interface FlagDecision {
  key: string;
  value: unknown;
  variant?: string;
  reason: string;
  error_code?: 'FLAG_NOT_FOUND' | 'PARSE_ERROR';
  error_message?: string;
  rule?: string;
  bucket?: number;
  probe?: string;
  version: string;
}

/** The wasm engine's tables, deeply frozen (its values are shared by the decisions decoded from it). */
export function readTables(engine: { tables(): unknown }): FlagTables;
/** The decision for flag `index` from one packed number of `decide` or `decideAll`. */
export function decodeDecision(tables: FlagTables, index: number, packed: number): FlagDecision;
/** `{key: decision}` from the packed numbers of `decideAll`. */
export function decodeAll(tables: FlagTables, packed: ArrayLike<number>): Record<string, FlagDecision>;
