// Seeds the demo app's flag config on a collector where it has none published: a probe on
// the demo partner endpoint, a flag that requires it, a flag for teachers, and an A/B test
// of the Enroll button's label (a 50/50 split) with its experiment.
export async function seedDemoConfig(baseUrl, adminKey, { disableWindowMs, enableWindowMs, minSamples, intervalS } = {}) {
  const headers = { Authorization: `Bearer ${adminKey}`, 'Content-Type': 'application/json', 'X-Telltale-Actor': 'npm start' };
  const call = async (method, path, body) => {
    const res = await fetch(`${baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = await res.json().catch(() => ({}));
    return { status: res.status, json };
  };
  if ((await call('GET', '/v1/apps/demo/config/commits/published')).status === 200) return false;
  const probe = {
    description: 'the demo partner API (switch it with PUT /demo-partner/health)',
    url: `${baseUrl}/demo-partner/health`, body_json: { pointer: '/status', equals: 'green' },
    ...(intervalS ? { interval_s: intervalS } : {}),
    ...(minSamples ? { min_samples: minSamples } : {}),
    ...(disableWindowMs ? { disable_window_ms: disableWindowMs } : {}),
    ...(enableWindowMs ? { enable_window_ms: enableWindowMs } : {}),
  };
  const steps = [
    ['PUT', '/v1/apps/demo/config/stage/probes/partner-api', probe],
    ['PUT', '/v1/apps/demo/config/stage/flags/partner-deals', {
      description: 'partner deals on the catalogue; off while the partner API is down',
      variants: [{ key: 'on', value: true }, { key: 'off', value: false }], default_variant: 'on', off_variant: 'off', requires_probe: 'partner-api',
    }],
    ['PUT', '/v1/apps/demo/config/stage/flags/course-badges', {
      description: 'course badges for teachers, and a 30% canary for everyone else',
      variants: [{ key: 'on', value: true }, { key: 'off', value: false }], default_variant: 'off',
      rules: [{ id: 'teachers', conditions: [{ attribute: 'role', op: 'eq', value: 'teacher' }], serve: { variant: 'on' } },
        { id: 'canary', serve: { variant: 'on', rollout_percent: 30 } }],
    }],
    ['PUT', '/v1/apps/demo/config/stage/flags/enroll-cta', {
      description: "the Enroll button's label, tested 50/50",
      variants: [{ key: 'plain', value: 'Enroll' }, { key: 'free-lesson', value: 'Enroll: first lesson free' }], default_variant: 'plain',
      rules: [{ id: 'ab', serve: { split: [{ variant: 'plain', weight: 50 }, { variant: 'free-lesson', weight: 50 }] } }],
    }],
    ['PUT', '/v1/apps/demo/config/stage/experiments/enroll-cta-test', {
      description: 'does offering a free first lesson make more visitors enroll?',
      flag: 'enroll-cta', control: 'plain',
      primary_metric: { kind: 'conversion', event: 'enroll', window_days: 7 },
      secondary_metrics: [{ kind: 'count', event: 'enroll' }, { kind: 'count', event: 'course_click' }],
      start: new Date().toISOString().slice(0, 10),
    }],
    ['POST', '/v1/apps/demo/config/commits', { message: 'demo config' }],
    ['POST', '/v1/apps/demo/config/publish', {}],
  ];
  for (const [method, path, body] of steps) {
    const res = await call(method, path, body);
    if (res.status >= 300) throw new Error(`seeding the demo config: ${method} ${path} answered ${res.status} ${JSON.stringify(res.json)}`);
  }
  return true;
}
