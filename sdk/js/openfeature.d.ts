import type { EvaluationContext, JsonValue, Provider, ResolutionDetails, OpenFeatureEventEmitter } from '@openfeature/web-sdk';
import type { Telltale } from './telltale.js';

/** An OpenFeature evaluation context as a Telltale context: `targetingKey` becomes `user_id`. */
export function telltaleContext(context?: EvaluationContext): Record<string, unknown>;

/**
 * An OpenFeature web provider over a Telltale client (remote or local flag mode): the
 * client's decisions, reasons and variants (`flagMetadata`: rule, bucket, probe, version),
 * `$exposure` events from the client, and PROVIDER_CONFIGURATION_CHANGED when decisions change.
 */
export class TelltaleProvider implements Provider {
  constructor(client: Telltale);
  readonly metadata: { name: 'telltale' };
  readonly runsOn: 'client';
  readonly events: OpenFeatureEventEmitter;
  initialize(context?: EvaluationContext): Promise<void>;
  onContextChange(oldContext: EvaluationContext, newContext: EvaluationContext): Promise<void>;
  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean): ResolutionDetails<boolean>;
  resolveStringEvaluation(flagKey: string, defaultValue: string): ResolutionDetails<string>;
  resolveNumberEvaluation(flagKey: string, defaultValue: number): ResolutionDetails<number>;
  resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T): ResolutionDetails<T>;
}
