// Overview: totals and distinct users over the range, top events with sparklines, ingest
// health (spool, client drops, rejected events by code) and the probes' states.
import { api, qs } from '../api.js';
import { timeChart, sparkline } from '../charts.js';
import { fmt, h, listOr, mount, table, utc } from '../dom.js';
import { rangeControl, rangeParams } from '../range.js';

export async function overviewView(el, ctx) {
  const content = h('div');
  const draw = async () => {
    const range = rangeParams(ctx.state);
    const [overview, pipeline, probes] = await Promise.all([
      api('GET', `/v1/overview${qs({ app: ctx.app, ...range })}`),
      api('GET', '/v1/admin/pipeline'),
      api('GET', `/v1/apps/${encodeURIComponent(ctx.app)}/probes`),
    ]);
    const total = overview.series.reduce((s, p) => s + p.count, 0);
    const chart = h('div.chart#overview-chart', { role: 'img', 'aria-label': 'events and users per bucket' });
    const rejected = overview.rejected || [];
    mount(content,
      h('div.totals', {},
        h('div.card', {}, h('strong#total-events', {}, fmt.format(total)), h('span.muted', {}, ' events')),
        h('div.card', {}, h('strong#total-users', {}, fmt.format(overview.users)), h('span.muted', {}, ' distinct users'))),
      h('section.card', {}, h('h3', {}, `Events and users per ${range.interval} (UTC)`),
        total ? chart : h('p.empty', {}, 'No events in this range. Send some with the SDK (see Apps for the snippet), or widen the range.')),
      h('div.grid2', {},
        h('section.card', {}, h('h3', {}, 'Top events'),
          ...(overview.events.length
            ? [table(['Event', 'Events', 'Users', 'Trend'], overview.events.map((e) => [
              h('a', { href: `#/events`, on: { click: () => { ctx.state.event = e.name; } } }, e.name),
              fmt.format(e.count), fmt.format(e.users), h('span.spark', { dataset: { event: e.name } })]), { numeric: [1, 2] })]
            : [h('p.empty', {}, 'No events yet in this app.')])),
        h('section.card', {}, h('h3', {}, 'Ingest health'),
          table(['Signal', 'Value'], [
            ['Batches waiting in the spool (all apps)', fmt.format(pipeline.spooled_parts)],
            ['Events clients dropped (storage budget)', fmt.format(pipeline.client_dropped[ctx.app] || 0)],
            ...rejected.map((r) => [`Rejected: ${r.code}`, fmt.format(r.count)]),
          ], { numeric: [1] }),
          rejected.length ? null : h('p.muted.small', {}, 'No rejected events in this range.')),
        h('section.card', {}, h('h3', {}, 'Probes'),
          ...listOr(probes.probes, (p) => h('p', {}, h('span', { class: `badge ${p.state}` }, p.state), ' ',
            h('a', { href: `#/probes/${encodeURIComponent(p.name)}` }, p.name), p.since ? h('span.muted.small', {}, ` since ${utc(p.since)}`) : ''),
          'No probes in this app. Stage one under Flags & segments to switch features off when a dependency fails.'))));
    if (total) timeChart(chart, overview.series.map((p) => Date.parse(p.t)), [
      { label: 'events', values: overview.series.map((p) => p.count) },
      { label: 'users', values: overview.series.map((p) => p.users) },
    ]);
    for (const span of content.querySelectorAll('.spark')) {
      const e = overview.events.find((x) => x.name === span.dataset.event);
      if (e) sparkline(span, e.series);
    }
  };
  mount(el, h('h2', {}, 'Overview'), rangeControl(ctx.state, draw), content);
  await draw();
}
