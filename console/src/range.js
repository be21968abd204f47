// The time range control shared by the overview and the explorer: 24 h, 7 d, 30 d or a
// custom UTC range. Returns {from, to, interval} for the API.
import { h } from './dom.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export function rangeParams(state) {
  const now = Date.now();
  const to = Math.ceil(now / HOUR) * HOUR;
  switch (state.range) {
    case '7d': return { from: to - 7 * DAY, to, interval: 'hour' };
    case '30d': return { from: Math.floor((now - 30 * DAY) / DAY) * DAY, to: Math.ceil(now / DAY) * DAY, interval: 'day' };
    case 'custom': {
      const from = Date.parse(`${state.customFrom}T00:00:00Z`);
      const end = Date.parse(`${state.customTo}T00:00:00Z`) + DAY;
      if (Number.isFinite(from) && Number.isFinite(end) && end > from) {
        return { from, to: end, interval: end - from > 14 * DAY ? 'day' : 'hour' };
      }
      return { from: to - DAY, to, interval: 'hour' };
    }
    default: return { from: to - DAY, to, interval: 'hour' };
  }
}

export function rangeControl(state, onChange) {
  const today = new Date().toISOString().slice(0, 10);
  state.customFrom ||= new Date(Date.now() - 7 * DAY).toISOString().slice(0, 10);
  state.customTo ||= today;
  const custom = h('span.row', { hidden: state.range !== 'custom' },
    h('label', {}, 'From (UTC) ', h('input#range-from', { type: 'date', value: state.customFrom, on: { change: (e) => { state.customFrom = e.target.value; onChange(); } } })),
    h('label', {}, 'To (UTC) ', h('input#range-to', { type: 'date', value: state.customTo, on: { change: (e) => { state.customTo = e.target.value; onChange(); } } })));
  return h('div.row.range', {},
    h('label', {}, 'Range ', h('select#range', {
      on: { change: (e) => { state.range = e.target.value; custom.hidden = state.range !== 'custom'; onChange(); } },
    }, [['24h', 'Last 24 h'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['custom', 'Custom…']]
      .map(([v, label]) => h('option', { value: v, selected: state.range === v }, label)))),
    custom);
}
