// `telltale/openfeature`: an OpenFeature web provider over a Telltale client, for apps whose
// flag layer is `@openfeature/web-sdk` (a peer dependency, imported only by this module).
// It decides as the client does, in its remote or local mode: the same decisions, reasons
// and variants, `$exposure` events from the client, and PROVIDER_CONFIGURATION_CHANGED
// whenever the client's decisions change.
// @ts-check
// The published types (openfeature.d.ts) are generated from this file's JSDoc.
import { OpenFeatureEventEmitter, ProviderEvents } from '@openfeature/web-sdk';

/** @typedef {import('@openfeature/web-sdk').EvaluationContext} EvaluationContext
 * @typedef {import('@openfeature/web-sdk').JsonValue} JsonValue */
/** @template T @typedef {import('@openfeature/web-sdk').ResolutionDetails<T>} ResolutionDetails
 * @typedef {import('@openfeature/web-sdk').Provider} Provider */

/** An OpenFeature evaluation context as a Telltale context: `targetingKey` is `user_id`.
 * @param {EvaluationContext} [context] @returns {Record<string, unknown>} */
export function telltaleContext(context = {}) {
  const { targetingKey, ...attributes } = context;
  return targetingKey === undefined || 'user_id' in attributes ? attributes : { ...attributes, user_id: targetingKey };
}

const TYPE_OF = { boolean: 'boolean', string: 'string', number: 'number', object: 'object' };

export class TelltaleProvider {
  metadata = { name: 'telltale' };
  /** @type {'client'} */
  runsOn = 'client';
  events = new OpenFeatureEventEmitter();
  #client; #failed = false;

  /** `client`: a `Telltale` (remote or local flag mode); the provider sets its context.
   * @param {import('./telltale.js').Telltale} client */
  constructor(client) {
    if (!client || typeof client.details !== 'function' || typeof client.onChange !== 'function') {
      throw new TypeError('telltale/openfeature: pass a Telltale client');
    }
    this.#client = client;
    client.onChange((flagsChanged) => {
      if (this.#failed) { // decisions arrived after all
        this.#failed = false;
        this.events.emit(ProviderEvents.Ready);
      }
      this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged });
    });
  }

  /** Loads decisions for the context. When the collector does not answer it fails (the
   * provider's ERROR state) while cached and bootstrap decisions still serve, and turns
   * READY when decisions arrive.
   * @param {EvaluationContext} [context] @returns {Promise<void>} */
  async initialize(context) {
    if (!(await this.#client.setContext(telltaleContext(context)))) {
      this.#failed = true;
      throw new Error('telltale: the collector did not answer with flag decisions; cached and bootstrap values serve meanwhile');
    }
  }

  /** The app changed the context: decisions are reloaded for it (RECONCILING until then).
   * @param {EvaluationContext} _old @param {EvaluationContext} next @returns {Promise<void>} */
  async onContextChange(_old, next) {
    await this.#client.setContext(telltaleContext(next));
  }

  /** @param {string} key @param {boolean} defaultValue @returns {ResolutionDetails<boolean>} */
  resolveBooleanEvaluation(key, defaultValue) { return this.#resolve(key, defaultValue, 'boolean'); }
  /** @param {string} key @param {string} defaultValue @returns {ResolutionDetails<string>} */
  resolveStringEvaluation(key, defaultValue) { return this.#resolve(key, defaultValue, 'string'); }
  /** @param {string} key @param {number} defaultValue @returns {ResolutionDetails<number>} */
  resolveNumberEvaluation(key, defaultValue) { return this.#resolve(key, defaultValue, 'number'); }
  /** @template {JsonValue} T @param {string} key @param {T} defaultValue @returns {ResolutionDetails<T>} */
  resolveObjectEvaluation(key, defaultValue) { return this.#resolve(key, defaultValue, 'object'); }

  #resolve(key, defaultValue, type) {
    const d = this.#client.details(key); // records the $exposure, as the client's own reads do
    if (d.error_code) {
      return { value: defaultValue, reason: 'ERROR', errorCode: d.error_code, errorMessage: d.error_message ?? `flag \`${key}\`: ${d.error_code}` };
    }
    const value = d.value;
    const actual = value === null ? 'null' : Array.isArray(value) ? 'object' : typeof value;
    if (TYPE_OF[type] !== actual) {
      return { value: defaultValue, reason: 'ERROR', errorCode: 'TYPE_MISMATCH', errorMessage: `flag \`${key}\` is a ${actual}, not a ${type}` };
    }
    const flagMetadata = {};
    for (const field of ['rule', 'bucket', 'probe', 'version']) if (d[field] != null) flagMetadata[field] = d[field];
    return { value, variant: d.variant, reason: d.reason, flagMetadata };
  }
}
