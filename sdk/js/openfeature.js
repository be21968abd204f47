// `telltale/openfeature`: an OpenFeature web provider over a Telltale client, for apps whose
// flag layer is `@openfeature/web-sdk` (a peer dependency, imported only by this module).
// It decides as the client does, in its remote or local mode: the same decisions, reasons
// and variants, `$exposure` events from the client, and PROVIDER_CONFIGURATION_CHANGED
// whenever the client's decisions change.
import { OpenFeatureEventEmitter, ProviderEvents } from '@openfeature/web-sdk';

/** An OpenFeature evaluation context as a Telltale context: `targetingKey` is `user_id`. */
export function telltaleContext(context = {}) {
  const { targetingKey, ...attributes } = context;
  return targetingKey === undefined || 'user_id' in attributes ? attributes : { ...attributes, user_id: targetingKey };
}

const TYPE_OF = { boolean: 'boolean', string: 'string', number: 'number', object: 'object' };

export class TelltaleProvider {
  metadata = { name: 'telltale' };
  runsOn = 'client';
  events = new OpenFeatureEventEmitter();
  #client; #failed = false;

  /** `client`: a `Telltale` (remote or local flag mode); the provider sets its context. */
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
   * READY when decisions arrive. */
  async initialize(context) {
    if (!(await this.#client.setContext(telltaleContext(context)))) {
      this.#failed = true;
      throw new Error('telltale: the collector did not answer with flag decisions; cached and bootstrap values serve meanwhile');
    }
  }

  /** The app changed the context: decisions are reloaded for it (RECONCILING until then). */
  async onContextChange(_old, next) {
    await this.#client.setContext(telltaleContext(next));
  }

  resolveBooleanEvaluation(key, defaultValue) { return this.#resolve(key, defaultValue, 'boolean'); }
  resolveStringEvaluation(key, defaultValue) { return this.#resolve(key, defaultValue, 'string'); }
  resolveNumberEvaluation(key, defaultValue) { return this.#resolve(key, defaultValue, 'number'); }
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
