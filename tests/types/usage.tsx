// An app's TypeScript against the published declarations (generated from the JSDoc),
// checked by `npm test` with `tsc --strict`: what users import type-checks, and misuse
// does not (each @ts-expect-error must be an error).
import init, { Telltale, type FlagDetails, type TelltaleOptions } from 'telltale';
import initEngine, { FlagEngine, decodeDecision, readTables, type FlagDecision } from 'telltale/engine';
import { TelltaleProvider as OpenFeatureProvider } from 'telltale/openfeature';
import { TelltaleProvider, useFlag, useFlagDetails, useProbe, useTrack } from 'telltale/react';
import { OpenFeature } from '@openfeature/web-sdk';
import type { JSX } from 'react';

export async function app(): Promise<string> {
  await init();
  const options: TelltaleOptions = { endpoint: 'https://collect.example.com', key: 'tt_ik_x', flagMode: 'local', bootstrap: { banner: 'hi' } };
  const tt = new Telltale(options);
  tt.track('search', { query: 'rust', page: 2, exact: true, note: null });
  const on: boolean = tt.isEnabled('checkout', false);
  const size: number = tt.value('page-size', 20);
  const details: FlagDetails = tt.details('checkout');
  const why: string | undefined = details.rule ?? details.probe ?? details.error_message;
  const bucket: number | undefined = details.bucket;
  tt.onChange((keys: string[]) => keys.length);
  const state: 'up' | 'down' | 'unknown' = tt.probe('payments');
  const delivered: number = await tt.flush();
  // @ts-expect-error flushAt is a number
  new Telltale({ endpoint: 'x', key: 'k', flushAt: 'many' });
  // @ts-expect-error props are flat
  tt.track('x', { nested: { a: 1 } });

  await initEngine();
  const engine = new FlagEngine('{"flags": []}');
  engine.setContext({ user_id: 'u' }, { payments: 'down' });
  const decision: FlagDecision = decodeDecision(readTables(engine), engine.indexOf('x'), engine.decide(0, Date.now()));

  await OpenFeature.setProviderAndWait(new OpenFeatureProvider(tt));
  return `${on}${size}${why}${bucket}${state}${delivered}${decision.reason}`;
}

export function Checkout(): JSX.Element {
  const enabled: boolean = useFlag('checkout', false);
  const label: string = useFlag('label', 'Buy');
  const reason: string = useFlagDetails('checkout').reason;
  const payments = useProbe('payments');
  const track = useTrack();
  return <button onClick={() => track('buy', { label })}>{enabled ? label : reason}{payments}</button>;
}

export function Root({ tt }: { tt: Telltale }): JSX.Element {
  return <TelltaleProvider client={tt} bootstrap={{ checkout: true }}><Checkout /></TelltaleProvider>;
}
