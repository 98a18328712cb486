// Fleet overview: online now, connects and disconnects per minute and the ingest rate pushed
// once a second over the fleet live stream; boxes by model and firmware; raised alarms.
import { h, replace, table, fmtNum, fmtTime } from '../dom.js';
import { api, can, canStream } from '../api.js';
import { lineChart, hhmmss } from '../charts.js';

export default async function fleet(ctx) {
  const stat = (id, label) => h('div', { class: 'card stat' }, h('div', { class: 'label' }, label), h('div', { class: 'value', id }, '—'));
  const status = h('span', { class: 'live-status', id: 'fleet-live' }, 'fleet stream: not connected');
  const byModel = h('div', { id: 'by-model' });
  const byFirmware = h('div', { id: 'by-firmware' });
  const alarmsBox = h('div', { id: 'fleet-alarms' });
  const chartBox = h('div', {});
  replace(ctx.main,
    h('h1', {}, 'Fleet ', status),
    h('div', { class: 'grid' },
      stat('online-now', 'Online now'), stat('registered', 'Registered'), stat('connects-min', 'Connects / min'),
      stat('disconnects-min', 'Disconnects / min'), stat('ingest-rate', 'Ingest msg/s'), stat('alarms-raised', 'Raised alarms')),
    h('section', { class: 'card' }, h('h2', {}, 'Online boxes and ingest rate (live)'), chartBox),
    h('div', { class: 'cols' },
      h('section', { class: 'card' }, h('h2', {}, 'Boxes by model'), byModel),
      h('section', { class: 'card' }, h('h2', {}, 'Boxes by firmware (release)'), byFirmware)),
    h('section', { class: 'card' }, h('h2', {}, 'Raised alarms'), alarmsBox));
  const chart = lineChart(chartBox, ['online', 'ingest msg/s'], {
    axes: ['y', 'y1'],
    scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true, position: 'left' }, y1: { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false } } },
  });
  ctx.cleanup(() => chart.destroy());
  const set = (id, v) => { const el = document.getElementById(id); if (el) el.textContent = v; };

  function breakdown(el, counts, total) {
    const rows = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
    replace(el, table([
      { title: 'value', get: (r) => r[0] || '(none)' },
      { title: 'boxes', get: (r) => fmtNum(r[1]) },
      { title: 'share', get: (r) => h('meter', { min: 0, max: Math.max(total, 1), value: r[1], title: `${r[1]} of ${total}` }) },
    ], rows));
  }

  async function summary() {
    const s = await api('GET', 'fleet/summary?maxAgeSec=60');
    set('registered', fmtNum(s.total));
    if (!liveSeen) set('online-now', fmtNum(s.online));
    breakdown(byModel, s.byModel, s.total);
    breakdown(byFirmware, s.byFirmware, s.total);
  }

  async function alarms() {
    if (!can('GET', 'alarms')) { replace(alarmsBox, h('p', { class: 'muted' }, 'Your role does not read alarms.')); return; }
    const a = await api('GET', 'alarms?state=raised');
    set('alarms-raised', fmtNum(a.items.length));
    replace(alarmsBox, table([
      { title: 'raised', get: (r) => fmtTime(r.raisedAt) },
      { title: 'rule', get: (r) => r.rule },
      { title: 'target', get: (r) => r.target },
    ], a.items.slice(0, 20), { empty: 'no raised alarms' }));
  }

  // Connects and disconnects per minute: the counters' increase over the last 60 s of ticks.
  const window60 = [];
  let liveSeen = false;
  if (canStream('fleet')) {
    ctx.live('fleet=1', (m) => {
      if (m.type === 'alarm') { alarms().catch(() => {}); return; }
      if (m.type !== 'fleet') return;
      liveSeen = true;
      window60.push({ ts: m.ts, c: m.connects || 0, d: m.disconnects || 0 });
      while (window60.length && m.ts - window60[0].ts > 60000) window60.shift();
      const first = window60[0];
      const span = Math.max(1, (m.ts - first.ts) / 1000);
      set('online-now', fmtNum(m.sessions));
      set('connects-min', window60.length > 1 ? fmtNum(((m.connects || 0) - first.c) * 60 / span, 0) : '…');
      set('disconnects-min', window60.length > 1 ? fmtNum(((m.disconnects || 0) - first.d) * 60 / span, 0) : '…');
      set('ingest-rate', fmtNum(m.acceptedPerSec));
      chart.push(hhmmss(m.ts), [m.sessions, m.acceptedPerSec]);
    }, status, 'fleet stream');
  } else {
    status.textContent = 'your role has no fleet stream';
  }
  await Promise.all([summary(), alarms()]);
  ctx.ready();
  ctx.every(30000, () => { summary().catch(() => {}); });
}
