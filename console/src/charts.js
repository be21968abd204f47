// Charts with uPlot (bundled): time on the x axis in UTC, values on hover in the legend.
import uPlot from 'uplot';

const COLORS = ['#3257d6', '#17a673', '#d9822b', '#a23bb8'];
const utcDate = (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC');

function width(el) {
  return Math.max(320, Math.floor(el.clientWidth || el.parentElement?.clientWidth || 800));
}

/** A time series chart: `series` is [{label, values}], `times` UTC ms. */
export function timeChart(el, times, series, { height = 260, bars = false } = {}) {
  el.replaceChildren();
  const opts = {
    width: width(el),
    height,
    tzDate: utcDate,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    // 24-hour UTC labels: dates when the range spans days, hours within a day.
    axes: [{ label: 'UTC', values: (u, ticks) => {
      const span = ticks.length > 1 ? ticks[ticks.length - 1] - ticks[0] : 0;
      return ticks.map((t) => { const iso = new Date(t * 1e3).toISOString(); return span > 2 * 86400 ? iso.slice(5, 10) : iso.slice(11, 16); });
    } }, { label: '' }],
    series: [
      { label: 'time (UTC)', value: (u, v) => (v == null ? '—' : new Date(v * 1e3).toISOString().slice(0, 16).replace('T', ' ')) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        fill: bars ? `${COLORS[i % COLORS.length]}33` : undefined,
        paths: bars ? uPlot.paths.bars({ size: [0.6, 40] }) : undefined,
        points: { show: times.length < 60 },
      })),
    ],
  };
  return new uPlot(opts, [times.map((t) => t / 1000), ...series.map((s) => s.values)], el);
}

/** A small line without axes, for lists. */
export function sparkline(el, values) {
  el.replaceChildren();
  const xs = values.map((_, i) => i);
  return new uPlot({
    width: 140, height: 32, legend: { show: false }, cursor: { show: false },
    scales: { x: { time: false } }, axes: [{ show: false }, { show: false }],
    series: [{}, { stroke: COLORS[0], width: 1.5, fill: `${COLORS[0]}22`, points: { show: false } }],
  }, [xs, values], el);
}

/** Counts per category as bars (the x axis counts categories; labels below). */
export function barChart(el, labels, values, { height = 220 } = {}) {
  el.replaceChildren();
  const xs = labels.map((_, i) => i);
  return new uPlot({
    width: width(el), height, legend: { show: false },
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{ values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(labels[t] ?? '').slice(0, 14) : '')) }, {}],
    series: [{}, { label: 'count', stroke: COLORS[0], fill: `${COLORS[0]}55`, paths: uPlot.paths.bars({ size: [0.7, 60] }), points: { show: false } }],
  }, [xs, values], el);
}

/** A probe's timeline: latency as a line, failures as red points, transitions as lines. */
export function probeTimeline(el, results, transitions, { height = 260 } = {}) {
  el.replaceChildren();
  const times = results.map((r) => Date.parse(r.ended_at) / 1000);
  const latency = results.map((r) => r.latency_ms);
  const failed = results.map((r) => (r.ok ? null : r.latency_ms));
  const marks = transitions.map((t) => ({ at: Date.parse(t.at) / 1000, to: t.to }));
  return new uPlot({
    width: width(el), height, tzDate: utcDate,
    scales: { x: { time: true } },
    axes: [{ label: 'UTC', values: (u, ticks) => ticks.map((t) => new Date(t * 1e3).toISOString().slice(5, 16).replace('T', ' ')) }, { label: 'latency (ms)' }],
    series: [
      { label: 'time (UTC)', value: (u, v) => (v == null ? '—' : new Date(v * 1e3).toISOString().slice(0, 19).replace('T', ' ')) },
      { label: 'latency (ms)', stroke: COLORS[0], width: 1.5, points: { show: results.length < 120 } },
      { label: 'failed', stroke: '#c62828', width: 0, points: { show: true, size: 7, fill: '#c62828' } },
    ],
    hooks: {
      draw: [(u) => {
        const ctx = u.ctx;
        for (const mark of marks) {
          const x = u.valToPos(mark.at, 'x', true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.save();
          ctx.strokeStyle = mark.to === 'down' ? '#c62828' : '#17a673';
          ctx.setLineDash([4, 4]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        }
      }],
    },
  }, [times, latency, failed], el);
}
