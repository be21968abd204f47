// `telltale/engine`: the flag engine in wasm, and the decoder of its packed decisions.
// Local mode loads this module on demand; tools and server-side rendering can import it.
import { FlagEngine as WasmFlagEngine } from './telltale_engine.js';

export { default } from './telltale_engine.js';

const ERROR_CODES = [undefined, 'FLAG_NOT_FOUND', 'PARSE_ERROR'];
/** The packed decision of a flag that does not exist: reason ERROR (5), FLAG_NOT_FOUND (1). */
const NOT_FOUND = 5 * 2 ** 16 + 2 ** 19;

/** Freezes a value and everything in it: tables are shared by every decision they decode. */
function deepFreeze(value) {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/** `engine.tables()`, frozen: read once per ruleset and pass to `decodeDecision`. */
export function readTables(engine) {
  return deepFreeze(engine.tables());
}

/**
 * The decision object (as `evaluate` returns it) for flag `index` from a packed number of
 * `decide` or `decideAll`. The layout is documented at `pack` in sdk-engine/src/lib.rs:
 * variant + 1 (16 bits), reason (3), error (2), probe down (1), bucket + 1 (17), rule + 1 (14).
 */
export function decodeDecision(tables, index, packed) {
  const variant = packed % 65536;
  let rest = (packed - variant) / 65536;
  const reason = rest % 8; rest = (rest - reason) / 8;
  const error = rest % 4; rest = (rest - error) / 4;
  const probeDown = rest % 2; rest = (rest - probeDown) / 2;
  const bucket = rest % 131072;
  const rule = (rest - bucket) / 131072;
  const key = tables.keys[index];
  const chosen = variant ? tables.variants[index]?.[variant - 1] : undefined;
  const decision = { key, value: chosen ? chosen[1] : null };
  if (chosen) decision.variant = chosen[0];
  decision.reason = tables.reasons[reason];
  if (error) {
    decision.error_code = ERROR_CODES[error];
    decision.error_message = error === 1 ? `no flag \`${key}\`` : tables.problems[index];
  }
  if (rule) decision.rule = tables.rules[index][rule - 1];
  if (bucket) decision.bucket = bucket - 1;
  if (probeDown) decision.probe = tables.probes[index];
  decision.version = tables.version;
  return decision;
}

/** Every decision for the context set last, `{key: decision}`, from `decideAll`. */
export function decodeAll(tables, packed) {
  const decisions = {};
  for (let i = 0; i < packed.length; i++) decisions[tables.keys[i]] = decodeDecision(tables, i, packed[i]);
  return decisions;
}

/**
 * A compiled ruleset (the JSON `GET /v1/flags/ruleset` serves), decided by the collector's
 * own engine in wasm. `evaluate` and `evaluateAll` pass the context once and decode packed
 * decisions; for many decisions per context use `setContext` and `decide` directly.
 */
export class FlagEngine {
  #wasm; #tables; #index;

  /** Compiles a ruleset; throws only when it is not JSON of the right shape. */
  constructor(rulesetJson) {
    this.#wasm = new WasmFlagEngine(rulesetJson);
    this.#tables = readTables(this.#wasm);
    this.#index = new Map(this.#tables.keys.map((key, i) => [key, i]));
  }

  /** What the packed numbers index (frozen; see `readTables`). */
  tables() { return this.#tables; }
  /** The index of a flag for `decide`, or -1. */
  indexOf(key) { return this.#index.get(key) ?? -1; }
  /** Keeps `context` (parsed once) and `probes` (`{name: state}`; undefined: as served). */
  setContext(context, probes) { this.#wasm.setContext(context, probes); }
  /** Flag `index` for the context set last, packed (see `decodeDecision`); an index that
   * names no flag (-1, out of range, not an integer) decides "not found". */
  decide(index, nowMs) {
    return Number.isInteger(index) && index >= 0 && index < this.#tables.keys.length ? this.#wasm.decide(index, nowMs) : NOT_FOUND;
  }
  /** Every flag for the context set last, packed, in index order. */
  decideAll(nowMs) { return this.#wasm.decideAll(nowMs); }
  /** The probe states the ruleset was served with: `{name: state}`. */
  servedProbes() { return this.#wasm.servedProbes(); }
  /** Compile warnings: `[{code, field, message}]`. */
  warnings() { return this.#wasm.warnings(); }
  free() { this.#wasm.free(); }

  /** Decides `key` for `context` (probes undefined: the states the ruleset was served
   * with). It sets the context, as `setContext` does. The value is the caller's own copy. */
  evaluate(key, context, probes, nowMs) {
    const index = this.indexOf(key);
    if (index < 0) {
      return { key, value: null, reason: 'ERROR', error_code: 'FLAG_NOT_FOUND', error_message: `no flag \`${key}\``, version: this.#tables.version };
    }
    this.#wasm.setContext(context, probes);
    return owned(decodeDecision(this.#tables, index, this.#wasm.decide(index, nowMs)));
  }

  /** Decides every flag for one context: `{key: decision}`. It sets the context, as
   * `setContext` does. The values are the caller's own copies. */
  evaluateAll(context, probes, nowMs) {
    this.#wasm.setContext(context, probes);
    const decisions = decodeAll(this.#tables, this.#wasm.decideAll(nowMs));
    for (const key in decisions) owned(decisions[key]);
    return decisions;
  }
}

/** Gives a decision its own copy of an object value (the tables' values are shared and frozen). */
function owned(decision) {
  if (decision.value && typeof decision.value === 'object') decision.value = structuredClone(decision.value);
  return decision;
}

/** Decides one flag of a ruleset in one call (compiles each time: keep a `FlagEngine` to
 * decide many). */
export function evaluateRuleset(rulesetJson, key, context, probes, nowMs) {
  const engine = new FlagEngine(rulesetJson);
  try {
    return engine.evaluate(key, context, probes, nowMs);
  } finally {
    engine.free();
  }
}
