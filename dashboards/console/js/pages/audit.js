// Audit: filter by actor, action and time (entries before a time), newest first.
import { h, replace, table, fmtTime, field, showFieldError, clearFieldErrors } from '../dom.js';
import { api, qs } from '../api.js';

export default async function audit(ctx) {
  const actor = h('input', { id: 'audit-actor', size: 14 }), action = h('input', { id: 'audit-action', size: 16, placeholder: 'e.g. command.create' });
  const before = h('input', { id: 'audit-before', type: 'datetime-local' });
  const box = h('div', { id: 'audit-list' });
  const form = h('form', { class: 'toolbar', id: 'audit-filters' }, field('actor', actor, 'actor'), field('action', action, 'action'), field('before (UTC)', before, 'before'),
    h('button', { type: 'submit', class: 'primary' }, 'Apply'), h('span', { class: 'field-error', 'data-error-for': '' }));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  replace(ctx.main, h('h1', {}, 'Audit'), form, box);
  async function load() {
    clearFieldErrors(form);
    try {
      const b = before.value ? new Date(before.value + 'Z').toISOString() : '';
      const a = await api('GET', 'audit' + qs({ actor: actor.value.trim(), action: action.value.trim(), before: b, limit: 200 }));
      replace(box, table([
        { title: 'at', get: (x) => fmtTime(x.at) }, { title: 'actor', get: (x) => x.actor }, { title: 'role', get: (x) => x.role },
        { title: 'action', get: (x) => x.action }, { title: 'target', get: (x) => x.target || '' },
        { title: 'parameters', get: (x) => Object.entries(x.parameters || {}).map(([k, v]) => `${k}=${v}`).join(' ') },
        { title: 'result', get: (x) => x.result }, { title: 'node', get: (x) => x.node },
      ], a.items, { empty: 'no entries' }));
    } catch (e) { showFieldError(form, e.field, e.message); }
  }
  await load();
  ctx.ready();
}
