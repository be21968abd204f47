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
function tablesOf(wasm, ruleset) {
  const sources = ruleset?.flags;
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
// per attribute the rules read, a tag byte and its payload (an f64, or a u32 byte length),
// little-endian; then the strings' UTF-8, one after another, encoded once; then the object
// and array values in core's wire form (`writeValue`).
const ABSENT = 0, FALSE = 1, TRUE = 2, NUMBER = 3, STRING = 4, VALUE = 5;
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

const U64_MAX = 2n ** 64n - 1n, I64_MIN = -(2n ** 63n);

/** Appends an unsigned LEB128 varint of a BigInt. */
function varint(out, n) {
  do {
    const low = Number(n & 0x7fn);
    n >>= 7n;
    out.push(n ? low | 0x80 : low);
  } while (n);
}

/** Appends a string's UTF-8, its length first. */
function writeText(out, text) {
  const utf8 = encoder.encode(text);
  varint(out, BigInt(utf8.length));
  for (const b of utf8) out.push(b);
}

/**
 * Appends JSON data (what `JSON.parse` gives) in core's wire form
 * (`telltale_core::flags::engine::read_wire_value`), numbers typed as serde_json reads the
 * text `JSON.stringify` writes for them: an integer below 1e21 is written in digits, which
 * are a u64 (an i64 when negative) while they fit, and anything else is an f64. Throws on a
 * string with a lone surrogate, which JSON cannot hold.
 */
function writeValue(out, value) {
  if (value === null) out.push(0);
  else if (value === false || value === true) out.push(value ? 2 : 1);
  else if (typeof value === 'number') {
    const digits = Number.isInteger(value) && Math.abs(value) < 1e21 ? BigInt(String(value)) : undefined;
    if (digits !== undefined && digits >= 0n && digits <= U64_MAX) {
      out.push(3);
      varint(out, digits);
    } else if (digits !== undefined && digits < 0n && digits >= I64_MIN) {
      out.push(4);
      varint(out, BigInt.asUintN(64, (digits << 1n) ^ (digits >> 63n)));
    } else {
      out.push(5);
      const f = new DataView(new ArrayBuffer(8));
      f.setFloat64(0, value, true);
      for (let i = 0; i < 8; i++) out.push(f.getUint8(i));
    }
  } else if (typeof value === 'string') {
    if (!wellFormed(value)) throw new TypeError('lone surrogate');
    out.push(6);
    writeText(out, value);
  } else if (Array.isArray(value)) {
    out.push(7);
    varint(out, BigInt(value.length));
    for (const item of value) writeValue(out, item);
  } else {
    const keys = Object.keys(value);
    out.push(8);
    varint(out, BigInt(keys.length));
    for (const key of keys) {
      if (!wellFormed(key)) throw new TypeError('lone surrogate');
      writeText(out, key);
      writeValue(out, value[key]);
    }
  }
}

/**
 * The values of attributes `names` in `context`, as JSON would carry them: the context's
 * own `toJSON` applied, own enumerable properties only, objects and arrays (and what has
 * `toJSON`, such as a Date) and integers beyond 2^53 as `{wire}` bytes of what their JSON
 * holds, and what JSON cannot hold (undefined, functions, symbols, BigInt, NaN,
 * infinities, strings with a lone surrogate) absent. A context that throws while it is
 * read (a getter, a Proxy) is an empty one.
 */
function attributeValues(names, context) {
  try {
    if (typeof context?.toJSON === 'function') context = context.toJSON('');
    const plain = context !== null && typeof context === 'object' && !Array.isArray(context);
    return names.map((name) => {
      let value = plain && isEnumerable.call(context, name) ? context[name] : undefined;
      if ((typeof value === 'object' && value !== null) || (Number.isInteger(value) && !Number.isSafeInteger(value))) {
        const json = jsonText(value);
        if (json === undefined || json === 'null') return undefined;
        try {
          const wire = [];
          writeValue(wire, JSON.parse(json));
          return { wire };
        } catch {
          return undefined;
        }
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
  let header = 0, texts = '', wireBytes = 0;
  for (const value of values) {
    if (typeof value === 'string') texts += value;
    else if (value?.wire) wireBytes += value.wire.length;
    header += 1 + (typeof value === 'string' || value?.wire ? 4 : typeof value === 'number' ? 8 : 0);
  }
  const room = header + texts.length * 3 + wireBytes;
  const at = wasm.contextBuffer(room);
  if (memory.buffer !== wholeBuffer) {
    wholeBuffer = memory.buffer;
    bytes = new Uint8Array(wholeBuffer);
    view = new DataView(wholeBuffer);
  }
  const { written } = encoder.encodeInto(texts, bytes.subarray(at + header, at + room));
  const ascii = written === texts.length;
  let o = at, w = at + header + written;
  for (const value of values) {
    if (typeof value === 'string') {
      bytes[o] = STRING;
      view.setUint32(o + 1, ascii ? value.length : utf8Length(value), true);
      o += 5;
    } else if (value?.wire) {
      bytes[o] = VALUE;
      view.setUint32(o + 1, value.wire.length, true);
      o += 5;
      bytes.set(value.wire, w);
      w += value.wire.length;
    } else if (typeof value === 'number') {
      bytes[o] = NUMBER;
      view.setFloat64(o + 1, value, true);
      o += 9;
    } else {
      bytes[o++] = value === true ? TRUE : value === false ? FALSE : ABSENT;
    }
  }
  return w - at;
}

/** Probe states `{name: state}` (or `{name: {state}}`, as served) as `[name, state, ...]`,
 * read as their JSON: what JSON cannot hold, or an object that throws while it is read, is
 * no states (undefined: the served ones decide). A state that is not a string is unknown. */
function probePairs(probes) {
  let plain;
  try { plain = JSON.parse(jsonText(probes) ?? 'null'); } catch { return undefined; }
  if (!plain || typeof plain !== 'object' || Array.isArray(plain)) return undefined;
  const word = (s) => (typeof s === 'string' ? s : 'unknown');
  return Object.entries(plain).flatMap(([name, state]) => [name, word(state && typeof state === 'object' ? state.state : state)]);
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

/** The bytes of base64 text (the served ruleset's `compiled` field). */
function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * A ruleset as the collector serves it (`GET /v1/flags/compiled`), decided by the
 * collector's own engine in wasm. The collector compiled it: this module reads the compiled
 * form (the `compiled` field) and decides. `evaluate` and `evaluateAll` pass the context
 * once and decode packed decisions; for many decisions per context use `setContext` and
 * `decide` directly.
 */
export class FlagEngine {
  #wasm; #tables; #index; #attributes;

  /** Reads a served ruleset (the JSON of `GET /v1/flags/compiled`, or of `POST
   * /v1/flags/compile` for a ruleset of one's own); throws when it is not JSON or has no
   * valid `compiled` field. @param {string} rulesetJson */
  constructor(rulesetJson) {
    const ruleset = parsed(rulesetJson);
    if (typeof ruleset?.compiled !== 'string') {
      throw new TypeError('not a compiled ruleset: it has no `compiled` field (use GET /v1/flags/compiled, or POST /v1/flags/compile for a ruleset of your own)');
    }
    let bytes;
    try { bytes = fromBase64(ruleset.compiled); } catch { throw new TypeError('the ruleset\'s `compiled` field is not base64'); }
    if (!memory) throw new Error('load the engine with init() or initSync() from telltale/engine first');
    const served = probePairs(ruleset.probes) ?? [];
    this.#wasm = new WasmFlagEngine(bytes, served);
    this.#tables = deepFreeze(tablesOf(this.#wasm, ruleset));
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
    const pairs = probes === undefined ? undefined : probePairs(probes);
    this.#wasm.setContextEncoded(encodeContext(this.#wasm, this.#attributes, context), pairs);
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

/** Decides one flag of a served ruleset in one call (reads it each time: keep a
 * `FlagEngine` to decide many).
 * @param {string} rulesetJson @param {string} key @param {Record<string, unknown>} context @param {ProbeStates | undefined} probes @param {number} nowMs @returns {FlagDecision} */
export function evaluateRuleset(rulesetJson, key, context, probes, nowMs) {
  const engine = new FlagEngine(rulesetJson);
  try {
    return engine.evaluate(key, context, probes, nowMs);
  } finally {
    engine.free();
  }
}
