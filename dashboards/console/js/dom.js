// DOM helpers. Everything is built with createElement and textContent: text from a box or a
// user (model, firmware, tags, log lines, reasons) is never parsed as HTML.

/** h('td', {class: 'x', onClick: fn}, 'text', child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected' || k === 'required') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
export function replace(el, ...children) { clear(el); append(el, children); return el; }

export function fmtTime(t) {
  if (t === undefined || t === null || t === '') return '—';
  const d = typeof t === 'number' ? new Date(t) : new Date(String(t));
  if (isNaN(d.getTime())) return String(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtNum(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits });
}

/** A table: columns [{title, get(row) -> node|string, sort?}], rows. */
export function table(columns, rows, opts = {}) {
  const head = h('tr', {}, columns.map((c) => h('th', {}, c.head ? c.head() : c.title)));
  const body = h('tbody', {}, rows.map((r) => {
    const tr = h('tr', opts.rowAttrs ? opts.rowAttrs(r) : {}, columns.map((c) => h('td', {}, c.get(r))));
    return tr;
  }));
  if (rows.length === 0) body.appendChild(h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, opts.empty || 'nothing to show')));
  return h('table', {}, h('thead', {}, head), body);
}

export function field(label, input, errorFor) {
  return h('label', {}, label, input, h('span', { class: 'field-error', 'data-error-for': errorFor || '' }));
}

/** Shows `message` next to the field whose data-error-for is `name` (or the form's general slot). */
export function showFieldError(form, name, message) {
  for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
  const slot = form.querySelector(`.field-error[data-error-for="${CSS.escape(name || '')}"]`) || form.querySelector('.field-error[data-error-for=""]');
  if (slot) slot.textContent = message;
}

export function clearFieldErrors(form) { for (const e of form.querySelectorAll('.field-error')) e.textContent = ''; }

/** Saves text as a file through an object URL (CSV exports, log pulls). */
export function saveFile(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 1000);
}

/** CSV with every cell quoted; cells that a spreadsheet would run as formulas are prefixed with '. */
export function csv(header, rows) {
  const cell = (v) => {
    let s = v === undefined || v === null ? '' : Array.isArray(v) ? v.join(' ') : String(v);
    if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return '"' + s.replace(/"/g, '""') + '"';
  };
  return [header, ...rows].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n';
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog(title, message, confirmLabel = 'Confirm', danger = false) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { id: 'confirm' },
      h('h2', {}, title), h('p', { class: 'confirm-message' }, message),
      h('div', { class: 'toolbar' },
        h('button', { type: 'button', class: danger ? 'danger' : 'primary', id: 'confirm-ok', onClick: () => { dlg.close(); resolve(true); } }, confirmLabel),
        h('button', { type: 'button', id: 'confirm-cancel', onClick: () => { dlg.close(); resolve(false); } }, 'Cancel')));
    dlg.addEventListener('close', () => { dlg.remove(); resolve(false); });
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}

export function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}
