// The device list: filters, free search (id = serial, or address), server-side sort and
// paging, columns to pick, CSV export, and bulk actions on a selection or on the whole filter
// result with a confirmation that states the number of boxes, then the job's live progress.
import { h, replace, table, fmtTime, field, saveFile, csv, confirmDialog, debounce, showFieldError, clearFieldErrors } from '../dom.js';
import { api, can, canCommand, qs, role } from '../api.js';
import { follow } from '../jobs-common.js';

const PAGE = 50;
const COLUMNS = [
  { key: 'id', title: 'id', get: (d) => h('a', { href: '#/device/' + encodeURIComponent(d.id), class: 'device-link' }, d.id), csv: (d) => d.id },
  { key: 'online', title: 'online', get: (d) => h('span', { class: 'pill ' + (d.online ? 'on' : 'off') }, d.online ? 'online' : 'offline'), csv: (d) => d.online },
  { key: 'model', title: 'model', get: (d) => d.model, csv: (d) => d.model },
  { key: 'firmware', title: 'firmware', get: (d) => d.firmware || '—', csv: (d) => d.firmware },
  { key: 'tags', title: 'tags', get: (d) => (d.tags || []).map((t) => h('span', { class: 'pill' }, t)), csv: (d) => (d.tags || []).join(' ') },
  { key: 'remoteAddress', title: 'address', get: (d) => d.remoteAddress || '—', csv: (d) => d.remoteAddress },
  { key: 'lastSeen', title: 'last seen', get: (d) => fmtTime(d.lastSeen), csv: (d) => d.lastSeen },
  { key: 'node', title: 'node', get: (d) => d.node || '—', csv: (d) => d.node },
  { key: 'connectedAt', title: 'connected', get: (d) => fmtTime(d.connectedAt), csv: (d) => d.connectedAt },
  { key: 'revoked', title: 'revoked', get: (d) => (d.revoked ? 'revoked' : ''), csv: (d) => d.revoked },
];
const SORTS = [['id', 'id ↑'], ['-id', 'id ↓'], ['-lastSeen', 'last seen, newest'], ['lastSeen', 'last seen, oldest'], ['model', 'model'], ['firmware', 'firmware']];
const shown = new Set(JSON.parse(sessionStorage.getItem('argus.columns') || 'null') || ['id', 'online', 'model', 'firmware', 'tags', 'remoteAddress', 'lastSeen']);

export default async function devices(ctx) {
  const state = { offset: 0, items: [], more: false, selected: new Set(), total: null };
  const f = {
    online: h('select', { id: 'f-online' }, h('option', { value: '' }, 'any'), h('option', { value: 'true' }, 'online'), h('option', { value: 'false' }, 'offline')),
    model: h('input', { id: 'f-model', size: 12 }), firmware: h('input', { id: 'f-firmware', size: 10 }), tag: h('input', { id: 'f-tag', size: 10 }),
    q: h('input', { id: 'f-q', size: 18, placeholder: 'id / serial / IP prefix' }),
    sort: h('select', { id: 'f-sort' }, SORTS.map(([v, t]) => h('option', { value: v }, t))),
  };
  const filters = () => ({ online: f.online.value, model: f.model.value.trim(), firmware: f.firmware.value.trim(), tag: f.tag.value.trim(), q: f.q.value.trim() });
  const listBox = h('div', { id: 'device-table' });
  const countEl = h('span', { id: 'match-count', class: 'muted' });
  const pageEl = h('span', { id: 'page-info', class: 'muted' });
  const selEl = h('span', { id: 'selection-info' });
  const jobBox = h('div', { id: 'bulk-progress' });
  const filterForm = h('form', { class: 'toolbar', id: 'device-filters' },
    field('online', f.online), field('model', f.model, 'model'), field('firmware', f.firmware, 'firmware'), field('tag', f.tag, 'tag'),
    field('search', f.q, 'q'), field('sort', f.sort, 'sort'),
    h('button', { type: 'submit', class: 'primary', id: 'apply-filters' }, 'Apply'),
    h('button', { type: 'button', id: 'export-csv', onClick: exportCSV }, 'Export CSV'),
    h('span', { class: 'field-error', 'data-error-for': '' }));
  filterForm.addEventListener('submit', (e) => { e.preventDefault(); state.offset = 0; state.selected.clear(); load(); });

  // Bulk actions: only those the role may send.
  const actions = [
    ['reboot', 'Reboot', () => canCommand('reboot')],
    ['message', 'Show a message', () => canCommand('message')],
    ['reload_portal', 'Reload portal', () => canCommand('reload_portal')],
    ['tag', 'Add tag', () => can('POST', 'devices:tags')],
    ['untag', 'Remove tag', () => can('POST', 'devices:tags')],
    ['firmware_update', 'Firmware update', () => canCommand('firmware_update')],
    ['factory_reset', 'Factory reset (admin)', () => canCommand('factory_reset')],
  ].filter((a) => a[2]());
  const scope = h('select', { id: 'bulk-scope' }, h('option', { value: 'selection' }, 'the selected boxes'), h('option', { value: 'filter' }, 'every box the filter matches'));
  const action = h('select', { id: 'bulk-action' }, actions.map(([v, t]) => h('option', { value: v }, t)));
  const arg = h('input', { id: 'bulk-arg', size: 18, placeholder: 'text / tag / version' });
  const sendButton = h('button', { type: 'submit', class: 'primary', id: 'bulk-send' }, 'Send…');
  const bulkForm = h('form', { class: 'toolbar', id: 'bulk-form' }, field('action', action), field('on', scope), field('parameter', arg, 'params'), sendButton,
    h('span', { class: 'field-error', 'data-error-for': '' }));
  bulkForm.addEventListener('submit', (e) => { e.preventDefault(); bulk(); });
  [scope, action].forEach((x) => x.addEventListener('change', updateSend));

  const columnPicker = h('div', { class: 'columns', id: 'column-picker' }, 'Columns: ', COLUMNS.map((c) => h('label', {},
    h('input', { type: 'checkbox', checked: shown.has(c.key), 'data-column': c.key, onChange: (e) => {
      if (e.target.checked) shown.add(c.key); else shown.delete(c.key);
      sessionStorage.setItem('argus.columns', JSON.stringify([...shown]));
      render();
    } }), c.title)));

  replace(ctx.main, h('h1', {}, 'Devices ', countEl), filterForm, columnPicker,
    actions.length ? h('section', { class: 'card' }, h('h2', {}, 'Bulk action'), bulkForm, selEl, jobBox) : h('p', { class: 'muted', id: 'no-bulk' }, 'Your role sends no commands.'),
    listBox, h('div', { class: 'pager' },
      h('button', { type: 'button', id: 'prev-page', onClick: () => { state.offset = Math.max(0, state.offset - PAGE); load(); } }, '← Previous'),
      h('button', { type: 'button', id: 'next-page', onClick: () => { state.offset += PAGE; load(); } }, 'Next →'), pageEl));

  function updateSend() {
    const n = scope.value === 'selection' ? state.selected.size : state.total;
    sendButton.disabled = !n;
    selEl.textContent = scope.value === 'selection' ? `${state.selected.size} selected` : `${state.total ?? '…'} boxes match the filter`;
  }

  function render() {
    const cols = COLUMNS.filter((c) => shown.has(c.key));
    const all = h('input', { type: 'checkbox', id: 'select-page', title: 'select this page', checked: state.items.length > 0 && state.items.every((d) => state.selected.has(d.id)),
      onChange: (e) => { for (const d of state.items) { if (e.target.checked) state.selected.add(d.id); else state.selected.delete(d.id); } render(); } });
    const sel = { title: '', head: () => all, get: (d) => h('input', { type: 'checkbox', class: 'select-device', 'data-device': d.id, checked: state.selected.has(d.id),
      onChange: (e) => { if (e.target.checked) state.selected.add(d.id); else state.selected.delete(d.id); e.target.closest('tr').classList.toggle('selected', e.target.checked); updateSend(); } }) };
    replace(listBox, table([sel, ...cols], state.items, { empty: 'no box matches', rowAttrs: (d) => ({ class: state.selected.has(d.id) ? 'selected' : '', 'data-device': d.id }) }));
    pageEl.textContent = state.items.length ? `boxes ${state.offset + 1}–${state.offset + state.items.length}` : '';
    document.getElementById('prev-page').disabled = state.offset === 0;
    document.getElementById('next-page').disabled = !state.more;
    updateSend();
  }

  function listQuery(extra) {
    const x = filters();
    return qs({ online: x.online, model: x.model, firmware: x.firmware, tag: x.tag, q: x.q, ...extra });
  }

  async function load() {
    clearFieldErrors(filterForm);
    try {
      const page = await api('GET', 'devices' + listQuery({ sort: f.sort.value, offset: state.offset, limit: PAGE }));
      state.items = page.items;
      state.more = page.nextOffset !== undefined && page.nextOffset !== null;
      render();
      count();
    } catch (e) {
      showFieldError(filterForm, e.field, e.message);
    }
  }
  async function count() {
    state.total = null;
    countEl.textContent = '';
    try {
      const c = await api('GET', 'devices:count' + listQuery({}));
      state.total = c.count;
      countEl.textContent = `${c.count} boxes match`;
      updateSend();
    } catch (e) { countEl.textContent = e.message; }
  }

  async function exportCSV() {
    const rows = [];
    let offset = 0;
    for (;;) {
      const page = await api('GET', 'devices' + listQuery({ sort: f.sort.value, offset, limit: 1000 }));
      rows.push(...page.items);
      if (page.nextOffset === undefined || page.nextOffset === null) break;
      offset = page.nextOffset;
    }
    const cols = COLUMNS.filter((c) => shown.has(c.key));
    saveFile('devices.csv', new Blob([csv(cols.map((c) => c.key), rows.map((d) => cols.map((c) => c.csv(d))))], { type: 'text/csv' }));
  }

  function target() {
    if (scope.value === 'selection') return { devices: [...state.selected] };
    const x = filters();
    if (x.q) throw new Error('A free search cannot be a command target; select the boxes instead.');
    const query = {};
    if (x.model) query.model = x.model;
    if (x.firmware) query.firmware = x.firmware;
    if (x.tag) query.tag = x.tag;
    if (x.online) query.online = x.online === 'true';
    return Object.keys(query).length ? { query } : { all: true };
  }

  async function bulk() {
    clearFieldErrors(bulkForm);
    const n = scope.value === 'selection' ? state.selected.size : state.total;
    if (!n) { showFieldError(bulkForm, '', 'Select at least one box.'); return; }
    let t;
    try { t = target(); } catch (e) { showFieldError(bulkForm, '', e.message); return; }
    const a = action.value, label = action.options[action.selectedIndex].textContent, value = arg.value.trim();
    if (['message', 'tag', 'untag', 'firmware_update'].includes(a) && !value) { showFieldError(bulkForm, 'params', 'This action needs a parameter.'); return; }
    const ok = await confirmDialog(`${label}: ${n} boxes`, `${label}${value ? ' (' + value + ')' : ''} will be sent to ${n} box${n === 1 ? '' : 'es'}. Continue?`, `${label} ${n} boxes`, a === 'factory_reset');
    if (!ok) return;
    try {
      if (a === 'tag' || a === 'untag') {
        const r = await api('POST', 'devices:tags', { target: t, [a === 'tag' ? 'add' : 'remove']: [value] });
        replace(jobBox, h('p', { class: 'ok' }, `${a === 'tag' ? 'Tagged' : 'Untagged'} ${r.matched} boxes.`));
        load();
        return;
      }
      const params = a === 'message' ? { text: value } : a === 'firmware_update' ? { version: value } : undefined;
      const job = await api('POST', 'commands', { name: a, target: t, ...(params ? { params } : {}) });
      const el = h('div', { class: 'card' });
      jobBox.prepend(el);
      follow(job.id, el, ctx);
    } catch (e) {
      showFieldError(bulkForm, e.field && e.field.startsWith('params') ? 'params' : '', e.message);
    }
  }

  f.q.addEventListener('input', debounce(() => { state.offset = 0; load(); }, 300));
  f.sort.addEventListener('change', () => { state.offset = 0; load(); });
  await load();
  ctx.ready();
  void role;
}
