// A tiny DOM builder. Data only ever becomes text (`textContent`) or attribute values:
// event names, props and flag descriptions are user input, and nothing here parses HTML.

/** h('tag.class#id', {attrs, on: {click}}, ...children): children are nodes or text. */
export function h(spec, attrs = {}, ...children) {
  // 'tag', then any mix of '.class' and '#id' parts, in any order.
  const parts = spec.match(/^[^.#]*|[.#][^.#]+/g) || [];
  const el = document.createElement(parts[0] || 'div');
  const classes = parts.slice(1).filter((p) => p[0] === '.').map((p) => p.slice(1));
  const id = parts.slice(1).find((p) => p[0] === '#');
  if (classes.length) el.className = classes.join(' ');
  if (id) el.id = id.slice(1);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'on') {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== 'string') {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Shows a status line: `kind` is `ok` or `error` (its style). */
export function say(el, kind, text) {
  el.className = kind;
  el.textContent = text;
}

/** A list that is empty shows what to do next instead. */
export function listOr(items, render, emptyText) {
  return items.length ? items.map(render) : [h('p.empty', {}, emptyText)];
}

/** A table from header labels and rows of cells (text or nodes). */
export function table(headers, rows, { numeric = [] } = {}) {
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((label, i) => h(numeric.includes(i) ? 'th.num' : 'th', {}, label)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell, i) => h(numeric.includes(i) ? 'td.num' : 'td', {}, cell))))));
}

/** Asks before a change; resolves true when the user confirms. */
export function confirmAction(text) {
  return window.confirm(text);
}

/** Formats UTC ms or RFC 3339 as `2026-11-23 07:00 UTC`. */
export function utc(value, { seconds = false } = {}) {
  const d = new Date(typeof value === 'number' ? value : Date.parse(value));
  if (Number.isNaN(d.getTime())) return '—';
  const iso = d.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, seconds ? 19 : 16)} UTC`;
}

export const fmt = new Intl.NumberFormat('en-US');
