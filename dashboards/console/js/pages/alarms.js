// Alarms: the list by state, acknowledge, and live changes from the fleet stream.
import { h, replace, table, fmtTime } from '../dom.js';
import { api, can, canStream } from '../api.js';

export default async function alarms(ctx) {
  const stateSel = h('select', { id: 'alarm-state' }, ['raised', 'acknowledged', 'cleared', ''].map((s) => h('option', { value: s }, s || 'any')));
  const status = h('span', { class: 'live-status', id: 'alarms-live' });
  const box = h('div', { id: 'alarm-list' });
  const err = h('p', { class: 'error' });
  replace(ctx.main, h('h1', {}, 'Alarms ', status), h('div', { class: 'toolbar' }, h('label', {}, 'state', stateSel)), err, box);
  async function load() {
    const a = await api('GET', 'alarms' + (stateSel.value ? '?state=' + stateSel.value : ''));
    replace(box, table([
      { title: 'raised', get: (r) => fmtTime(r.raisedAt) }, { title: 'state', get: (r) => h('span', { class: 'pill ' + r.state }, r.state) },
      { title: 'rule', get: (r) => r.rule }, { title: 'target', get: (r) => r.target },
      { title: 'details', get: (r) => Object.entries(r.details || {}).map(([k, v]) => `${k}=${v}`).join(' ') },
      { title: 'acknowledged', get: (r) => r.acknowledgedAt ? `${fmtTime(r.acknowledgedAt)} by ${r.acknowledgedBy || '?'}` : '' },
      { title: '', get: (r) => r.state === 'raised' && can('POST', 'alarms/{id}/ack') ? h('button', { type: 'button', class: 'ack', 'data-alarm': r.id, onClick: () => ack(r) }, 'Acknowledge') : '' },
    ], a.items, { empty: 'no alarms' }));
  }
  async function ack(r) {
    try { await api('POST', `alarms/${encodeURIComponent(r.id)}/ack`, {}); err.textContent = ''; await load(); } catch (e) { err.textContent = e.message; }
  }
  stateSel.addEventListener('change', () => load().catch((e) => { err.textContent = e.message; }));
  if (canStream('fleet')) ctx.live('fleet=1', (m) => { if (m.type === 'alarm') load().catch(() => {}); }, status, 'alarm changes');
  await load();
  ctx.ready();
}
