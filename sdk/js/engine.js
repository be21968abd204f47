// `telltale/engine`: the flag engine in wasm, and the decoder of its packed decisions.
// Local mode loads this module on demand; tools and server-side rendering can import it.
// @ts-check
// The published types (engine.d.ts) are generated from this file's JSDoc (sdk/tsconfig.json).
import initWasm, { initSync as initWasmSync, FlagEngine as WasmFlagEngine } from './telltale_engine.js';

/** @typedef {Record<string, 'up' | 'down' | 'unknown'>} ProbeStates Probe states by name, as the collector serves them. */

/**
 * What the packed numbers of `FlagEngine.decide` and `decideAll` index, per ruleset.
 * @typedef {object} FlagTables
 * @property {string} version
 * @property {readonly string[]} keys Flag keys; a flag's index is its position here.
 * @property {readonly (readonly [string, unknown])[][]} variants Per flag: `[variant key, value]` by variant index.
 * @property {readonly (readonly string[])[]} rules Per flag: rule ids by rule index.
 * @property {readonly (string | null)[]} probes Per flag: the probe it requires, or null.
 * @property {readonly (string | null)[]} problems Per flag: why it did not compile, or null.
 * @property {readonly string[]} reasons
 */

/**
 * A decision, as `FlagEngine.evaluate` returns it.
 * @typedef {object} FlagDecision
 * @property {string} key
 * @property {unknown} value
 * @property {string} [variant]
 * @property {string} reason
 * @property {'FLAG_NOT_FOUND' | 'PARSE_ERROR'} [error_code]
 * @property {string} [error_message]
 * @property {string} [rule]
 * @property {number} [bucket]
 * @property {string} [probe]
 * @property {string} version
 */

/** The engine's wasm memory, once loaded: contexts are encoded straight into it. */
let memory;
const encoder = new TextEncoder();

/** Loads the engine's wasm (as wasm-bindgen's `init`, whose options it takes).
 * @param {Parameters<typeof initWasm>[0]} [options] */
export default async function init(options) {
  const exports = await initWasm(options);
  memory = exports.memory;
  return exports;
}

/** Loads the engine's wasm synchronously (as wasm-bindgen's `initSync`).
 * @param {Parameters<typeof initWasmSync>[0]} options */
export function initSync(options) {
  const exports = initWasmSync(options);
  memory = exports.memory;
  return exports;
}

/** @type {(undefined | 'FLAG_NOT_FOUND' | 'PARSE_ERROR')[]} */
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

/** `engine.tables()`, frozen: read once per ruleset and pass to `decodeDecision`.
 * @param {{ tables(): FlagTables }} engine @returns {FlagTables} */
export function readTables(engine) {
  return deepFreeze(engine.tables());
}

/** Parses JSON as `JSON.parse` does, but gives undefined where that would throw. */
function parsed(text) {
  try { return JSON.parse(text); } catch { return undefined; }
}

/**
 * What the packed numbers index, from the wasm engine's per-flag accessors. Variant values
 * come from this side's own `JSON.parse` of the ruleset (the flag's `source` position and
 * the variant's key find them), so nothing is serialized in wasm.
 */
function tablesOf(wasm, rulesetJson) {
  const sources = parsed(rulesetJson)?.flags;
  const keys = wasm.keys();
  const tables = { version: wasm.version(), keys, variants: [], rules: [], probes: [], problems: [], reasons: WasmFlagEngine.reasons() };
  keys.forEach((key, i) => {
    const declared = sources?.[wasm.source(i)]?.variants;
    const valueOf = (variant) => (Array.isArray(declared) ? declared.find((v) => v?.key === variant)?.value : undefined) ?? null;
    tables.variants.push(wasm.variantKeys(i).map((variant) => [variant, valueOf(variant)]));
    tables.rules.push(wasm.ruleIds(i));
    tables.probes.push(wasm.requiredProbe(i) ?? null);
    tables.problems.push(wasm.problem(i) ?? null);
  });
  return tables;
}

/** Pairs `[a, b, a, b, ...]` as `{a: b}`. */
function pairs(flat) {
  const out = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = flat[i + 1];
  return out;
}

// The context encoding `setContextEncoded` reads (tags in sdk-engine/src/lib.rs, `tag`):
// per attribute the rules read, a tag byte and its payload (an f64, or a u32 byte length
// of text), little-endian; then the texts, one after another, encoded once.
const ABSENT = 0, FALSE = 1, TRUE = 2, NUMBER = 3, STRING = 4, JSON_TEXT = 5;
const isEnumerable = Object.prototype.propertyIsEnumerable;
let wholeBuffer, bytes, view;

/** UTF-8 length of a string (only asked for when a context has non-ASCII text). */
function utf8Length(text) {
  let n = 0;
  for (const ch of text) { const c = ch.codePointAt(0); n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }
  return n;
}

/** Whether a string is well-formed UTF-16 (no lone surrogate), as JSON can carry it. */
const wellFormed = (text) => (typeof text.isWellFormed === 'function'
  ? text.isWellFormed()
  : !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text));

/**
 * The values of attributes `names` in `context`, as JSON would carry them: the context's
 * own `toJSON` applied, own enumerable properties only, objects and arrays (and what has
 * `toJSON`, such as a Date) as `{json}`, integers beyond 2^53 too (only `JSON.stringify`
 * knows their digits), and what JSON cannot hold (undefined, functions, symbols, BigInt,
 * NaN, infinities, strings with a lone surrogate) absent. A context that throws while it
 * is read (a getter, a Proxy) is an empty one.
 */
function attributeValues(names, context) {
  try {
    if (typeof context?.toJSON === 'function') context = context.toJSON('');
    const plain = context !== null && typeof context === 'object' && !Array.isArray(context);
    return names.map((name) => {
      let value = plain && isEnumerable.call(context, name) ? context[name] : undefined;
      if ((typeof value === 'object' && value !== null) || (Number.isInteger(value) && !Number.isSafeInteger(value))) {
        const json = jsonText(value);
        return json === undefined || json === 'null' ? undefined : { json };
      }
      if (typeof value === 'number' && !Number.isFinite(value)) return undefined;
      if (typeof value === 'string' && !wellFormed(value)) return undefined;
      return value;
    });
  } catch {
    return names.map(() => undefined);
  }
}

/** Encodes attribute values into the engine's buffer; returns the length written. */
function encodeContext(wasm, names, context) {
  const values = attributeValues(names, context);
  let header = 0, texts = '';
  for (const value of values) {
    const text = typeof value === 'string' ? value : value?.json;
    if (text !== undefined) texts += text;
    header += 1 + (text !== undefined ? 4 : typeof value === 'number' ? 8 : 0);
  }
  const room = header + texts.length * 3;
  const at = wasm.contextBuffer(room);
  if (memory.buffer !== wholeBuffer) {
    wholeBuffer = memory.buffer;
    bytes = new Uint8Array(wholeBuffer);
    view = new DataView(wholeBuffer);
  }
  const { written } = encoder.encodeInto(texts, bytes.subarray(at + header, at + room));
  const ascii = written === texts.length;
  let o = at;
  for (const value of values) {
    const text = typeof value === 'string' ? value : value?.json;
    if (text !== undefined) {
      bytes[o] = typeof value === 'string' ? STRING : JSON_TEXT;
      view.setUint32(o + 1, ascii ? text.length : utf8Length(text), true);
      o += 5;
    } else if (typeof value === 'number') {
      bytes[o] = NUMBER;
      view.setFloat64(o + 1, value, true);
      o += 9;
    } else {
      bytes[o++] = value === true ? TRUE : value === false ? FALSE : ABSENT;
    }
  }
  return header + written;
}

/** Text for the wasm engine: JSON of `value`, or undefined where JSON cannot hold it. */
function jsonText(value) {
  try { return JSON.stringify(value); } catch { return undefined; }
}

/**
 * The decision object (as `evaluate` returns it) for flag `index` from a packed number of
 * `decide` or `decideAll`. The layout is documented at `pack` in sdk-engine/src/lib.rs:
 * variant + 1 (16 bits), reason (3), error (2), probe down (1), bucket + 1 (17), rule + 1 (14).

 * @param {FlagTables} tables @param {number} index @param {number} packed @returns {FlagDecision} */
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
  /** @type {FlagDecision} */
  const decision = /** @type {any} */ ({ key, value: chosen ? chosen[1] : null });
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

/** Every decision for the context set last, `{key: decision}`, from `decideAll`.
 * @param {FlagTables} tables @param {ArrayLike<number>} packed @returns {Record<string, FlagDecision>} */
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
  #wasm; #tables; #index; #attributes;

  /** Compiles a ruleset (the JSON `GET /v1/flags/ruleset` serves); throws only when it is
   * not JSON of the right shape. @param {string} rulesetJson */
  constructor(rulesetJson) {
    this.#wasm = new WasmFlagEngine(rulesetJson);
    this.#tables = deepFreeze(tablesOf(this.#wasm, rulesetJson));
    this.#attributes = this.#wasm.attributeNames();
    this.#index = new Map(this.#tables.keys.map((key, i) => [key, i]));
  }

  /** What the packed numbers index (frozen; see `readTables`).
   * @returns {FlagTables} */
  tables() { return this.#tables; }
  /** The index of a flag for `decide`, or -1.
   * @param {string} key @returns {number} */
  indexOf(key) { return this.#index.get(key) ?? -1; }
  /** Keeps `context` (parsed once) and `probes` (`{name: state}`; undefined: as served).
   * @param {Record<string, unknown>} context @param {ProbeStates} [probes] @returns {void} */
  setContext(context, probes) {
    const probesText = probes === undefined ? undefined : jsonText(probes);
    // Loaded through wasm-bindgen's own init, the memory is unknown: the context goes as JSON.
    if (!memory) return this.#wasm.setContext(jsonText(context) ?? '{}', probesText);
    this.#wasm.setContextEncoded(encodeContext(this.#wasm, this.#attributes, context), probesText);
  }
  /** Flag `index` for the context set last, packed (see `decodeDecision`); an index that
   * names no flag (-1, out of range, not an integer) decides "not found".
   * @param {number} index @param {number} nowMs @returns {number} */
  decide(index, nowMs) {
    return Number.isInteger(index) && index >= 0 && index < this.#tables.keys.length ? this.#wasm.decide(index, nowMs) : NOT_FOUND;
  }
  /** Every flag for the context set last, packed, in index order.
   * @param {number} nowMs @returns {Float64Array} */
  decideAll(nowMs) { return this.#wasm.decideAll(nowMs); }
  /** The probe states the ruleset was served with: `{name: state}`.
   * @returns {ProbeStates} */
  servedProbes() { return pairs(this.#wasm.servedProbes()); }
  /** Compile warnings: `[{code, field, message}]`.
   * @returns {{ code: string, field: string, message: string }[]} */
  warnings() {
    const flat = this.#wasm.warnings();
    const list = [];
    for (let i = 0; i + 2 < flat.length; i += 3) list.push({ code: flat[i], field: flat[i + 1], message: flat[i + 2] });
    return list;
  }
  free() { this.#wasm.free(); }

  /** Decides `key` for `context` (probes undefined: the states the ruleset was served
   * with). It sets the context, as `setContext` does. The value is the caller's own copy.
   * @param {string} key @param {Record<string, unknown>} context @param {ProbeStates | undefined} probes @param {number} nowMs @returns {FlagDecision} */
  evaluate(key, context, probes, nowMs) {
    const index = this.indexOf(key);
    if (index < 0) {
      return { key, value: null, reason: 'ERROR', error_code: 'FLAG_NOT_FOUND', error_message: `no flag \`${key}\``, version: this.#tables.version };
    }
    this.setContext(context, probes);
    return owned(decodeDecision(this.#tables, index, this.#wasm.decide(index, nowMs)));
  }

  /** Decides every flag for one context: `{key: decision}`. It sets the context, as
   * `setContext` does. The values are the caller's own copies.
   * @param {Record<string, unknown>} context @param {ProbeStates | undefined} probes @param {number} nowMs @returns {Record<string, FlagDecision>} */
  evaluateAll(context, probes, nowMs) {
    this.setContext(context, probes);
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
 * decide many).
 * @param {string} rulesetJson @param {string} key @param {Record<string, unknown>} context @param {ProbeStates | undefined} probes @param {number} nowMs @returns {FlagDecision} */
export function evaluateRuleset(rulesetJson, key, context, probes, nowMs) {
  const engine = new FlagEngine(rulesetJson);
  try {
    return engine.evaluate(key, context, probes, nowMs);
  } finally {
    engine.free();
  }
}
