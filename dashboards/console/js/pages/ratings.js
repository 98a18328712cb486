// Ratings: top channels now (refreshed as the builder moves on), AMR over time, dayparts,
// programmes, a segment filter, CSV, and a box's recommendations preview.
import { h, replace, table, fmtNum, fmtTime, field, saveFile, showFieldError, clearFieldErrors } from '../dom.js';
import { api, can, qs } from '../api.js';
import { lineChart } from '../charts.js';

const HOUR = 3600000;
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

export default async function ratings(ctx) {
  const liveBox = h('div', { id: 'ratings-live' });
  const liveNote = h('p', { class: 'muted', id: 'ratings-live-minute' });
  const hours = h('select', { id: 'r-range' }, [['24', 'last 24 h'], ['6', 'last 6 h'], ['168', 'last 7 days']].map(([v, t]) => h('option', { value: v }, t)));
  const daypart = h('input', { id: 'r-daypart', size: 10, placeholder: 'e.g. peak' });
  const segment = h('input', { id: 'r-segment', size: 18, placeholder: 'model:acme-4k' });
  const form = h('form', { class: 'toolbar', id: 'ratings-filters' }, field('range', hours, 'from'), field('daypart', daypart, 'daypart'), field('segment', segment, 'segment'),
    h('button', { type: 'submit', class: 'primary' }, 'Apply'), h('button', { type: 'button', id: 'ratings-csv', onClick: exportCSV }, 'CSV'), h('span', { class: 'field-error', 'data-error-for': '' }));
  form.addEventListener('submit', (e) => { e.preventDefault(); loadSeries(); loadProgrammes(); });
  const chartBox = h('div', {});
  const tableBox = h('div', { id: 'ratings-table' });
  const progBox = h('div', { id: 'ratings-programmes' });
  const recId = h('input', { id: 'rec-device', size: 16, placeholder: 'box id' });
  const recBox = h('div', { id: 'rec-preview' });
  const recForm = h('form', { class: 'toolbar', id: 'rec-form' }, field('box', recId, 'device'), h('button', { type: 'submit' }, 'Preview'), h('span', { class: 'field-error', 'data-error-for': '' }));
  recForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(recForm);
    try {
      const r = await api('GET', `devices/${encodeURIComponent(recId.value.trim())}/recommendations?n=10`);
      replace(recBox, r.modelVersion ? table([{ title: 'channel', get: (x) => x.channel }, { title: 'score', get: (x) => fmtNum(x.score, 3) },
        { title: 'why', get: (x) => x.reason ? `${x.reason.kind}${x.reason.channel ? ' ' + x.reason.channel : ''}` : '' }], r.items || []) : h('p', { class: 'muted' }, 'No model trained yet.'));
    } catch (err) { showFieldError(recForm, 'device', err.message); }
  });
  replace(ctx.main, h('h1', {}, 'Ratings'),
    h('section', { class: 'card' }, h('h2', {}, 'Top channels now'), liveNote, liveBox),
    h('section', { class: 'card' }, h('h2', {}, 'Average minute audience over time'), form, chartBox, tableBox),
    h('section', { class: 'card' }, h('h2', {}, 'Programmes'), progBox),
    can('GET', 'devices/{id}/recommendations') ? h('section', { class: 'card' }, h('h2', {}, 'A box\'s recommendations'), recForm, recBox) : null);
  let chart = null;
  ctx.cleanup(() => chart && chart.destroy());

  function range() {
    const to = Math.floor(Date.now() / HOUR) * HOUR + HOUR;
    return { from: iso(to - Number(hours.value) * HOUR), to: iso(to) };
  }
  function params(extra) {
    return qs({ ...range(), daypart: daypart.value.trim(), segment: segment.value.trim(), ...extra });
  }
  async function loadLive() {
    if (!can('GET', 'ratings/live')) return;
    const l = await api('GET', 'ratings/live');
    liveNote.textContent = l.minute ? `minute ${fmtTime(l.minute)}, built ${fmtTime(l.builtAt)}; refreshed every 15 s` : 'no viewing credited yet today';
    replace(liveBox, table([
      { title: 'channel', get: (c) => c.channel }, { title: 'boxes', get: (c) => c.suppressed ? 'suppressed' : fmtNum(c.boxes) },
      { title: 'rating %', get: (c) => c.suppressed ? '' : fmtNum(c.ratingPct, 2) },
    ], (l.channels || []).slice(0, 15), { empty: 'no audience in the last complete minute' }));
  }
  async function loadSeries() {
    clearFieldErrors(form);
    try {
      const bucket = Number(hours.value) > 48 ? 'day' : 'hour';
      const r = await api('GET', 'ratings' + params({ bucket, top: 5, measures: 'amr,rating,share' }));
      const series = r.series || [];
      const channels = [...new Set(series.flatMap((row) => (row.channels || []).map((c) => c.channel)))].slice(0, 5);
      if (chart) chart.destroy();
      chartBox.replaceChildren();
      chart = lineChart(chartBox, channels.length ? channels : ['(no viewing)'], { points: true });
      chart.set(series.map((row) => fmtTime(row.from).slice(5, 16)), (channels.length ? channels : ['']).map((ch) => series.map((row) => {
        const c = (row.channels || []).find((x) => x.channel === ch);
        if (!c) return 0; // no viewing of this channel in the bucket
        return c.suppressed ? null : c.amr;
      })));
      const total = await api('GET', 'ratings' + params({ top: 20, measures: 'amr,rating,share' }));
      const rows = ((total.series || [])[0] || {}).channels || [];
      replace(tableBox, h('p', { class: 'muted' }, `universe ${total.universe ? total.universe.kind + ' ' + total.universe.size : ''}, k = ${total.k}`),
        table([{ title: 'channel', get: (c) => c.channel }, { title: 'AMR', get: (c) => c.suppressed ? 'suppressed' : fmtNum(c.amr, 2) },
          { title: 'rating %', get: (c) => fmtNum(c.ratingPct, 2) }, { title: 'share %', get: (c) => fmtNum(c.sharePct, 2) }], rows, { empty: 'no viewing in this range' }));
    } catch (e) { showFieldError(form, e.field, e.message); }
  }
  async function loadProgrammes() {
    if (!can('GET', 'ratings/programmes')) return;
    try {
      const p = await api('GET', 'ratings/programmes' + qs({ ...range(), top: 20 }));
      replace(progBox, table([
        { title: 'channel', get: (x) => x.channel }, { title: 'title', get: (x) => x.title }, { title: 'start', get: (x) => fmtTime(x.start) },
        { title: 'AMR', get: (x) => fmtNum(x.amr, 2) }, { title: 'rating %', get: (x) => fmtNum(x.ratingPct, 2) }, { title: 'share %', get: (x) => fmtNum(x.sharePct, 2) },
      ], p.programmes || [], { empty: 'no programme guide or no viewing' }));
    } catch (e) { replace(progBox, h('p', { class: 'error' }, e.message)); }
  }
  async function exportCSV() {
    try {
      const blob = await api('GET', 'ratings' + params({ bucket: Number(hours.value) > 48 ? 'day' : 'hour', format: 'csv' }), null, { blob: true });
      saveFile('ratings.csv', blob);
    } catch (e) { showFieldError(form, e.field, e.message); }
  }
  await Promise.all([loadLive().catch((e) => replace(liveBox, h('p', { class: 'error' }, e.message))), loadSeries(), loadProgrammes()]);
  ctx.ready();
  ctx.every(15000, () => loadLive().catch(() => {}));
}
