// Tokens (admin): create (the token is shown once), list, revoke.
import { h, replace, table, fmtTime, field, showFieldError, clearFieldErrors, confirmDialog } from '../dom.js';
import { api } from '../api.js';

export default async function tokens(ctx) {
  const name = h('input', { id: 'token-new-name', size: 16 });
  const roleSel = h('select', { id: 'token-new-role' }, ['viewer', 'analyst', 'support', 'operator', 'admin'].map((r) => h('option', { value: r }, r)));
  const created = h('div', { id: 'token-created' });
  const box = h('div', { id: 'token-list' });
  const form = h('form', { class: 'form card', id: 'token-form' }, field('name', name, 'name'), field('role', roleSel, 'role'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'token-create' }, 'Create token'), h('span', { class: 'field-error', 'data-error-for': '' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    try {
      const t = await api('POST', 'tokens', { name: name.value.trim(), role: roleSel.value });
      replace(created, h('div', { class: 'card' }, h('p', {}, `Token for ${t.name} (${t.role}); copy it now, it is not shown again:`), h('code', { id: 'token-secret' }, t.token)));
      name.value = '';
      await load();
    } catch (err) { showFieldError(form, err.field, err.message); }
  });
  replace(ctx.main, h('h1', {}, 'Tokens'), form, created, box);
  async function load() {
    const list = await api('GET', 'tokens');
    replace(box, table([
      { title: 'id', get: (t) => t.id }, { title: 'name', get: (t) => t.name }, { title: 'role', get: (t) => t.role },
      { title: 'created', get: (t) => `${fmtTime(t.createdAt)} by ${t.createdBy || '?'}` }, { title: 'state', get: (t) => (t.revoked ? 'revoked' : 'active') },
      { title: '', get: (t) => t.revoked ? '' : h('button', { type: 'button', class: 'revoke-token', 'data-token': t.id, onClick: () => revoke(t) }, 'Revoke') },
    ], list.items, { rowAttrs: (t) => ({ 'data-token': t.id }) }));
  }
  async function revoke(t) {
    if (!(await confirmDialog('Revoke token', `Revoke ${t.name} (${t.role})? Whoever uses it is refused at once.`, 'Revoke', true))) return;
    try { await api('DELETE', 'tokens/' + encodeURIComponent(t.id)); await load(); } catch (e) { replace(created, h('p', { class: 'error' }, e.message)); }
  }
  await load();
  ctx.ready();
}
