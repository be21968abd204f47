// The flag benchmark's inputs: 1,000 contexts, and the bench ruleset
// (tests/spec/flags/bench-ruleset.json) translated into GrowthBook's and Unleash's own
// formats, so that all three engines decide the same rules. Only what that ruleset uses is
// translated (on/off and three-way variants; eq, in, semver_gte and semver_lt conditions;
// segments; rollouts and splits by user id); anything else throws.

/** Deterministic contexts: every attribute the bench rules read. */
export function benchContexts(n = 1000) {
  const pick = (list, i) => list[i % list.length];
  return Array.from({ length: n }, (_, i) => ({
    user_id: `user-${i}`,
    role: pick(['student', 'student', 'teacher', 'student', 'admin'], i),
    plan: pick(['free', 'pro', 'team', 'free'], i * 7),
    country: pick(['DE', 'US', 'FR', 'NL', 'BR', 'IN'], i * 3),
    course_id: `course-${i % 37}`,
    app_version: pick(['1.2.0', '1.5.0', '2.0.0', '2.3.1', '1.9.9'], i * 11),
  }));
}

function unsupported(what) {
  throw new Error(`the bench translators do not handle ${what}`);
}

/** A Telltale condition as a GrowthBook condition fragment. */
function growthbookCondition(c) {
  switch (c.op) {
    case 'eq': return { [c.attribute]: c.value };
    case 'in': return { [c.attribute]: { $in: c.values } };
    case 'semver_gte': return { [c.attribute]: { $vgte: c.value } };
    case 'semver_lt': return { [c.attribute]: { $vlt: c.value } };
    default: return unsupported(`operator ${c.op}`);
  }
}

/** The ruleset as a GrowthBook payload (`features`), attributes as Telltale names them
 * (GrowthBook hashes `user_id` by `hashAttribute`). */
export function growthbookPayload(ruleset) {
  const segments = Object.fromEntries(ruleset.segments.map((s) => [s.key, s.conditions]));
  const features = {};
  for (const flag of ruleset.flags) {
    const value = (variant) => flag.variants.find((v) => v.key === variant).value;
    const rules = (flag.rules || []).map((rule) => {
      const conditions = [...(rule.conditions || []), ...(rule.segments || []).flatMap((s) => segments[s])];
      const condition = conditions.length ? Object.assign({}, ...conditions.map(growthbookCondition)) : undefined;
      if (rule.serve.split) {
        const total = rule.serve.split.reduce((sum, s) => sum + s.weight, 0);
        return { key: flag.key, condition, hashAttribute: 'user_id', variations: rule.serve.split.map((s) => value(s.variant)), weights: rule.serve.split.map((s) => s.weight / total) };
      }
      const force = { condition, force: value(rule.serve.variant), hashAttribute: 'user_id' };
      if (rule.serve.rollout_percent != null) force.coverage = rule.serve.rollout_percent / 100;
      return force;
    });
    features[flag.key] = { defaultValue: value(flag.default_variant), rules };
  }
  return { features };
}

/** A Telltale condition as Unleash constraints (semver_gte is greater-than or equal). */
function unleashConstraints(c) {
  switch (c.op) {
    case 'eq': return [[{ contextName: c.attribute, operator: 'IN', values: [String(c.value)] }]];
    case 'in': return [[{ contextName: c.attribute, operator: 'IN', values: c.values.map(String) }]];
    case 'semver_gte': return [
      [{ contextName: c.attribute, operator: 'SEMVER_GT', value: c.value }],
      [{ contextName: c.attribute, operator: 'SEMVER_EQ', value: c.value }],
    ];
    case 'semver_lt': return [[{ contextName: c.attribute, operator: 'SEMVER_LT', value: c.value }]];
    default: return unsupported(`operator ${c.op}`);
  }
}

/** The ruleset as Unleash client features (bootstrap data). A flag is on/off
 * (`isEnabled`) or, with three variants, a variant flag (`getVariant`). Segments are
 * inlined as constraints: Unleash's bootstrap carries features only. */
export function unleashFeatures(ruleset) {
  const segments = Object.fromEntries(ruleset.segments.map((s) => [s.key, s.conditions]));
  return ruleset.flags.map((flag) => {
    const onOff = flag.variants.length === 2 && flag.variants.every((v) => typeof v.value === 'boolean');
    if (!onOff) {
      const split = flag.rules?.[0]?.serve.split || unsupported(`flag ${flag.key}`);
      return {
        name: flag.key, enabled: true, type: 'release', project: 'default',
        strategies: [{ name: 'default', parameters: {}, constraints: [] }],
        variants: split.map((s) => ({ name: s.variant, weight: s.weight * 10, weightType: 'variable', stickiness: 'userId', payload: { type: 'string', value: flag.variants.find((v) => v.key === s.variant).value } })),
      };
    }
    const defaultOn = flag.variants.find((v) => v.key === flag.default_variant).value === true;
    if (!flag.rules?.length) {
      return { name: flag.key, enabled: defaultOn, type: 'release', project: 'default', strategies: [{ name: 'default', parameters: {}, constraints: [] }], variants: [] };
    }
    const strategies = flag.rules.flatMap((rule) => {
      const conditions = [...(rule.conditions || []), ...(rule.segments || []).flatMap((s) => segments[s])];
      // Each condition may need alternatives (semver_gte): one strategy per combination.
      let sets = [[]];
      for (const c of conditions) sets = sets.flatMap((set) => unleashConstraints(c).map((alt) => [...set, ...alt]));
      const rollout = String(rule.serve.rollout_percent ?? 100);
      return sets.map((constraints) => ({ name: 'flexibleRollout', parameters: { rollout, stickiness: 'userId', groupId: flag.key }, constraints }));
    });
    return { name: flag.key, enabled: true, type: 'release', project: 'default', strategies, variants: [] };
  });
}

/** A Telltale context as Unleash's (user id first-class, the rest as properties). */
export function unleashContext(ctx) {
  const { user_id: userId, ...properties } = ctx;
  return { userId, properties };
}
