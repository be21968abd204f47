// The events explorer: one event (and optionally a second to compare) over time, a
// breakdown by one property, the CSV the API gives for exactly this query, and a live
// tail of the app's latest raw events.
import { api, qs } from '../api.js';
import { barChart, timeChart } from '../charts.js';
import { fmt, h, mount, table, utc } from '../dom.js';
import { rangeControl, rangeParams } from '../range.js';

let tailTimer = null;

export async function eventsView(el, ctx) {
  clearInterval(tailTimer);
  const { events } = await api('GET', `/v1/catalog${qs({ app: ctx.app })}`);
  if (!events.length) {
    mount(el, h('h2', {}, 'Events'), h('p.empty', {}, 'This app has no events yet. Install the SDK (Apps shows the snippet) and track one.'));
    return;
  }
  const s = ctx.state;
  if (!events.some((e) => e.name === s.event)) s.event = events[0].name;
  if (s.compare && !events.some((e) => e.name === s.compare)) s.compare = '';
  const propsOf = (name) => (events.find((e) => e.name === name) || { props: [] }).props;
  if (s.by && !propsOf(s.event).includes(s.by)) s.by = '';

  const eventSelect = h('select#event', { 'aria-label': 'Event' }, events.map((e) => h('option', { value: e.name, selected: e.name === s.event }, e.name)));
  const compareSelect = h('select#compare', { 'aria-label': 'Compare with' }, h('option', { value: '' }, '(none)'),
    events.map((e) => h('option', { value: e.name, selected: e.name === s.compare }, e.name)));
  const bySelect = h('select#by', { 'aria-label': 'Break down by' }, h('option', { value: '' }, '(none)'),
    propsOf(s.event).map((p) => h('option', { value: p, selected: p === s.by }, p)));
  const result = h('div');
  const tail = h('div');

  const query = () => {
    const range = rangeParams(s);
    return { app: ctx.app, event: s.event, from: range.from, to: range.to, interval: range.interval };
  };
  const draw = async () => {
    const base = query();
    const [main, other, breakdown] = await Promise.all([
      api('GET', `/v1/stats${qs(base)}`),
      s.compare ? api('GET', `/v1/stats${qs({ ...base, event: s.compare })}`) : null,
      s.by ? api('GET', `/v1/stats${qs({ ...base, by: s.by, limit: 20 })}`) : null,
    ]);
    const chart = h('div.chart#events-chart', { role: 'img', 'aria-label': `${s.event} over time` });
    const series = [{ label: `${s.event}: events`, values: main.series.map((p) => p.count) },
      { label: `${s.event}: users`, values: main.series.map((p) => p.users) }];
    if (other) series.push({ label: `${s.compare}: events`, values: other.series.map((p) => p.count) });
    const total = main.series.reduce((sum, p) => sum + p.count, 0);
    const barsEl = h('div.chart#breakdown-chart', { role: 'img', 'aria-label': `${s.event} by ${s.by}` });
    mount(result,
      h('p#event-total', {}, h('strong', {}, fmt.format(total)), ` ${s.event} events from ${utc(main.from)} to ${utc(main.to)}`,
        other ? ` · ${fmt.format(other.series.reduce((sum, p) => sum + p.count, 0))} ${s.compare}` : ''),
      h('section.card', {}, chart),
      breakdown ? h('section.card', {}, h('h3', {}, `By ${s.by} (top 20)`),
        breakdown.top.length ? barsEl : h('p.empty', {}, 'No values of this property in the range.'),
        table([s.by, 'Events'], breakdown.top.map((t) => [t.value, fmt.format(t.count)]), { numeric: [1] })) : null,
      h('section.card', {}, h('details#bucket-table', {}, h('summary', {}, `Per ${main.interval} (UTC), as a table`),
        table(['Bucket (UTC)', 'Events', 'Users'], main.series.map((p) => [utc(p.t), fmt.format(p.count), fmt.format(p.users)]), { numeric: [1, 2] }))));
    timeChart(chart, main.series.map((p) => Date.parse(p.t)), series);
    if (breakdown && breakdown.top.length) barChart(barsEl, breakdown.top.map((t) => t.value), breakdown.top.map((t) => t.count));
  };

  const download = async () => {
    const params = { ...query(), ...(s.by ? { by: s.by, limit: 20 } : {}), format: 'csv' };
    const text = await api('GET', `/v1/stats${qs(params)}`, undefined, { accept: 'text/csv' });
    const link = h('a#csv-link', { href: URL.createObjectURL(new Blob([text], { type: 'text/csv' })), download: `${ctx.app}-${s.event}${s.by ? `-by-${s.by}` : ''}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
  };

  const tailOn = h('input#tail-toggle', { type: 'checkbox', checked: !!s.tail });
  const refreshTail = async () => {
    const recent = await api('GET', `/v1/events/recent${qs({ app: ctx.app, limit: 50 })}`);
    mount(tail, recent.events.length
      ? table(['Received (UTC)', 'Event', 'Type', 'User', 'Props'], recent.events.map((e) => [
        utc(e.received_at, { seconds: true }), e.name, e.type, e.user_id || e.anonymous_id, JSON.stringify(e.props)]))
      : h('p.empty', {}, 'No raw events for this app yet.'));
  };
  tailOn.addEventListener('change', async () => {
    s.tail = tailOn.checked;
    clearInterval(tailTimer);
    if (s.tail) { await refreshTail(); tailTimer = setInterval(() => { if (!document.getElementById('tail-toggle')) clearInterval(tailTimer); else refreshTail().catch(() => {}); }, 2000); } else mount(tail);
  });

  for (const [select, key] of [[eventSelect, 'event'], [compareSelect, 'compare'], [bySelect, 'by']]) {
    select.addEventListener('change', () => { s[key] = select.value; if (key === 'event') s.by = ''; eventsView(el, ctx); });
  }
  mount(el, h('h2', {}, 'Events explorer'),
    h('div.row', {}, h('label', {}, 'Event ', eventSelect), h('label', {}, 'Compare with ', compareSelect),
      h('label', {}, 'Break down by ', bySelect), rangeControl(s, draw), h('button#csv.secondary', { type: 'button', on: { click: download } }, 'Download CSV')),
    result,
    h('section.card', {}, h('h3', {}, 'Live tail'), h('label.inline', {}, tailOn, ' Show the latest raw events (every 2 s)'), tail));
  await draw();
  if (s.tail) tailOn.dispatchEvent(new Event('change'));
}
