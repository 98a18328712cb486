// Jobs: the newest command jobs with their progress by state, and cancel.
import { h, replace, table, fmtTime, confirmDialog } from '../dom.js';
import { api, canCommand } from '../api.js';
import { progressView, isFinished } from '../jobs-common.js';

export default async function jobs(ctx) {
  const box = h('div', { id: 'job-list' });
  const note = h('p', { class: 'muted' }, 'Progress is refreshed every 2 s.');
  replace(ctx.main, h('h1', {}, 'Jobs'), note, box);
  async function load() {
    const list = await api('GET', 'commands?limit=30');
    const detailed = await Promise.all(list.items.map((j) => api('GET', 'commands/' + encodeURIComponent(j.id)).catch(() => j)));
    replace(box, table([
      { title: 'created', get: (j) => fmtTime(j.createdAt) },
      { title: 'by', get: (j) => j.createdBy },
      { title: 'target', get: (j) => JSON.stringify(j.target || j.spec || {}) },
      { title: 'progress', get: (j) => progressView(j) },
      { title: '', get: (j) => (!isFinished(j) && j.state === 'active' && canCommand(j.name)) ? h('button', { type: 'button', class: 'cancel-job', 'data-job': j.id, onClick: () => cancel(j) }, 'Cancel') : '' },
    ], detailed, { empty: 'no jobs yet', rowAttrs: (j) => ({ 'data-job': j.id }) }));
  }
  async function cancel(j) {
    if (!(await confirmDialog('Cancel job', `Cancel ${j.name} job ${j.id}? Boxes that have not run it will not.`, 'Cancel job', true))) return;
    try { await api('POST', `commands/${encodeURIComponent(j.id)}/cancel`, {}); await load(); } catch (e) { note.textContent = e.message; note.className = 'error'; }
  }
  await load();
  ctx.ready();
  ctx.every(2000, () => load().catch(() => {}));
}
