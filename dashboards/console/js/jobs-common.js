// A job's progress by state, polled once a second until no execution is open.
import { h, replace, fmtNum } from './dom.js';
import { api } from './api.js';

export const STATES = ['QUEUED', 'SENT', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELED', 'EXPIRED', 'REJECTED'];
const OPEN = ['QUEUED', 'SENT', 'IN_PROGRESS'];

export function progressView(job) {
  const ex = job.executions || {};
  const total = Object.values(ex).reduce((a, b) => a + b, 0) || job.count || 0;
  const done = total - OPEN.reduce((a, s) => a + (ex[s] || 0), 0);
  return h('div', { class: 'job-progress', 'data-job': job.id },
    h('div', {}, h('strong', {}, job.name), ' ', h('span', { class: 'muted' }, job.id), ' · ', job.state,
      ' · ', h('progress', { max: Math.max(total, 1), value: done }), ' ', `${fmtNum(done)} / ${fmtNum(total)} finished`),
    h('div', {}, STATES.filter((s) => ex[s]).map((s) => h('span', { class: 'pill state-' + s, 'data-state': s }, `${s} ${fmtNum(ex[s])}`))));
}

export function isFinished(job) {
  const ex = job.executions || {};
  const total = Object.values(ex).reduce((a, b) => a + b, 0);
  return job.state === 'canceled' || (total > 0 && OPEN.every((s) => !ex[s]) && (job.count === undefined || total >= job.count));
}

/** Follows a job in `el` until it finishes; returns a stop function. */
export function follow(jobId, el, ctx) {
  let stopped = false;
  async function tick() {
    if (stopped) return;
    try {
      const job = await api('GET', 'commands/' + encodeURIComponent(jobId));
      replace(el, progressView(job));
      if (isFinished(job)) { el.dataset.finished = 'true'; return; }
    } catch (e) {
      replace(el, h('p', { class: 'error' }, 'job ' + jobId + ': ' + e.message));
    }
    setTimeout(tick, 1000);
  }
  tick();
  const stop = () => { stopped = true; };
  if (ctx) ctx.cleanup(stop);
  return stop;
}
