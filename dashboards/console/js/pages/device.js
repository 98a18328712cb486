// One box: presence, a live health chart over the live WebSocket, events, logs with a level
// filter, commands with their state history, debug (log pull download, live log tail with
// stop, diagnostics), what it is watching now (operators), and its recommendations.
import { h, replace, table, fmtTime, fmtNum, saveFile, confirmDialog } from '../dom.js';
import { api, can, canCommand, canStream, qs } from '../api.js';
import { lineChart, hhmmss } from '../charts.js';
import { follow } from '../jobs-common.js';

const HEALTH = [['cpu', 'CPU %'], ['mem', 'memory %'], ['tempC', 'temperature °C'], ['rttMs', 'RTT ms'], ['bitrateKbps', 'bitrate kbps'], ['underruns', 'underruns']];

export default async function device(ctx) {
  const id = ctx.params[0] || '';
  const enc = encodeURIComponent(id);
  const d = await api('GET', 'devices/' + enc);
  const liveStatus = h('span', { class: 'live-status', id: 'device-live' }, can('GET', 'devices/{id}') && canStream('device') ? '' : 'live telemetry: operators only');
  const overview = h('dl', { class: 'kv', id: 'device-overview' });
  const chartBox = h('div', {});
  const latest = h('div', { class: 'grid', id: 'health-latest' });
  const eventsBox = h('div', { id: 'device-events' });
  const logsBox = h('div', { id: 'device-logs' });
  const level = h('select', { id: 'log-level' }, ['', 'debug', 'info', 'warn', 'error'].map((l) => h('option', { value: l }, l || 'any level')));
  const commandsBox = h('div', { id: 'device-commands' });
  const tailBox = h('div', { class: 'logbox', id: 'tail-lines', hidden: true });
  const debugOut = h('div', { id: 'debug-output' });
  const watching = h('div', { id: 'watching-now' });
  const recsBox = h('div', { id: 'device-recommendations' });
  const sections = [
    h('h1', {}, 'Device ', h('span', { id: 'device-id' }, id), ' ', liveStatus),
    h('div', { class: 'cols' },
      h('section', { class: 'card' }, h('h2', {}, 'Presence'), overview),
      h('section', { class: 'card' }, h('h2', {}, 'Health (live)'), latest, chartBox)),
  ];
  const commandButtons = [];
  if (canCommand('reboot')) commandButtons.push(h('button', { type: 'button', id: 'cmd-reboot', onClick: () => send('reboot') }, 'Reboot'));
  if (canCommand('reload_portal')) commandButtons.push(h('button', { type: 'button', id: 'cmd-reload', onClick: () => send('reload_portal') }, 'Reload portal'));
  if (canCommand('message')) {
    const text = h('input', { id: 'cmd-message-text', placeholder: 'message text', size: 24 });
    commandButtons.push(text, h('button', { type: 'button', id: 'cmd-message', onClick: () => text.value.trim() ? send('message', { text: text.value.trim() }) : (debugOut.textContent = 'Type the message first.') }, 'Send message'));
  }
  const debugButtons = [];
  if (canCommand('log_pull')) debugButtons.push(h('button', { type: 'button', id: 'log-pull', onClick: logPull }, 'Pull logs (download)'));
  if (canCommand('log_tail')) debugButtons.push(h('button', { type: 'button', id: 'tail-start', onClick: startTail }, 'Start live log tail'), h('button', { type: 'button', id: 'tail-stop', disabled: true, onClick: stopTail }, 'Stop tail'));
  if (canCommand('diagnostics')) debugButtons.push(h('button', { type: 'button', id: 'diagnostics', onClick: diagnostics }, 'Run diagnostics'));
  if (commandButtons.length || debugButtons.length) {
    sections.push(h('section', { class: 'card', id: 'debug-section' }, h('h2', {}, 'Commands and debug'),
      h('div', { class: 'toolbar' }, commandButtons), h('div', { class: 'toolbar' }, debugButtons), debugOut, tailBox));
  }
  if (can('GET', 'devices/{id}/events')) sections.push(h('section', { class: 'card' }, h('h2', {}, 'Watching now'), watching), h('section', { class: 'card' }, h('h2', {}, 'Events (last hour)'), eventsBox));
  if (can('GET', 'devices/{id}/logs')) sections.push(h('section', { class: 'card' }, h('h2', {}, 'Logs (last hour) '), h('div', { class: 'toolbar' }, h('label', {}, 'level', level)), logsBox));
  if (can('GET', 'devices/{id}/executions')) sections.push(h('section', { class: 'card' }, h('h2', {}, 'Commands'), commandsBox));
  if (can('GET', 'devices/{id}/recommendations')) sections.push(h('section', { class: 'card' }, h('h2', {}, 'Recommendations preview'), recsBox));
  replace(ctx.main, ...sections);

  function renderOverview(x) {
    const rows = [['online', x.online ? 'online' : 'offline'], ['model', x.model], ['firmware', x.firmware], ['tags', (x.tags || []).join(', ')],
      ['connected since', fmtTime(x.connectedAt)], ['last seen', fmtTime(x.lastSeen)], ['address', x.remoteAddress], ['node', x.node],
      ['session', x.session], ['boot', x.bootId], ['registered', fmtTime(x.createdAt)], ['revoked', x.revoked ? 'yes' : 'no']];
    replace(overview, rows.map(([k, v]) => [h('dt', {}, k), h('dd', { 'data-field': k }, v === undefined || v === null || v === '' ? '—' : String(v))]));
  }
  renderOverview(d);
  ctx.every(10000, async () => { try { renderOverview(await api('GET', 'devices/' + enc)); } catch (_) { /* shown on the next try */ } });

  // Health: the last hour from the store, then each metrics frame as it arrives.
  const chart = lineChart(chartBox, HEALTH.map((x) => x[1]), {
    axes: HEALTH.map(([k]) => (k === 'bitrateKbps' ? 'y1' : 'y')),
    scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true, position: 'left' }, y1: { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false }, title: { display: true, text: 'kbps' } } },
  });
  ctx.cleanup(() => chart.destroy());
  function showLatest(m) {
    replace(latest, HEALTH.map(([k, label]) => h('div', { class: 'card stat' }, h('div', { class: 'label' }, label), h('div', { class: 'value', 'data-metric': k }, fmtNum(m[k], 1)))));
  }
  try {
    const series = await api('GET', `devices/${enc}/metrics?step=60`);
    const pts = series.points || [];
    chart.set(pts.map((p) => hhmmss(Date.parse(p.t))), HEALTH.map(([k]) => pts.map((p) => (p.values || {})[k] ?? null)));
    if (series.latest) showLatest(series.latest.values || {});
  } catch (e) { replace(latest, h('p', { class: 'error' }, e.message)); }

  // Live: metrics to the chart, log lines to the tail, viewing events to "watching now".
  let tailJob = null;
  function onFrame(frame, at) {
    if (frame.type === 'batch') { for (const m of frame.messages || []) onFrame(m, at); return; }
    if (frame.type === 'metrics') { showLatest(frame); chart.push(hhmmss(frame.ts || at), HEALTH.map(([k]) => frame[k] ?? null)); }
    if (frame.type === 'log' && tailJob) {
      tailBox.appendChild(h('div', { class: 'tail-line' }, `${fmtTime(frame.ts)} ${frame.level || ''} ${frame.source || ''}: ${frame.text || ''}`));
      while (tailBox.childNodes.length > 2000) tailBox.removeChild(tailBox.firstChild);
      tailBox.scrollTop = tailBox.scrollHeight;
    }
    if (frame.type === 'event' && ['tune', 'leave', 'standby_on', 'standby_off'].includes(frame.event)) {
      replace(watching, frame.event === 'tune' ? h('p', { id: 'watching-channel' }, `${frame.channel || '?'} (${frame.mode || 'live'}) since ${fmtTime(frame.ts)}`) : h('p', {}, `${frame.event} at ${fmtTime(frame.ts)}`));
    }
  }
  if (canStream('device')) ctx.live('device=' + enc, (m) => { if (m.type === 'telemetry' && m.frame) onFrame(m.frame, Date.now()); }, liveStatus, 'live telemetry');

  async function loadEvents() {
    const ev = await api('GET', `devices/${enc}/events?limit=200`);
    const items = ev.items || [];
    replace(eventsBox, table([
      { title: 'time', get: (e) => fmtTime(e.t) }, { title: 'event', get: (e) => e.event }, { title: 'channel', get: (e) => e.channel || '' },
      { title: 'code', get: (e) => e.code || '' }, { title: 'mode', get: (e) => e.mode || '' },
    ], items.slice(0, 100), { empty: 'no events in the last hour' }));
    const tune = items.find((e) => ['tune', 'leave', 'standby_on', 'standby_off'].includes(e.event)); // newest first
    if (tune && !watching.firstChild) replace(watching, tune.event === 'tune' ? h('p', { id: 'watching-channel' }, `${tune.channel} (${tune.mode || 'live'}) since ${fmtTime(tune.t)}`) : h('p', {}, `${tune.event} at ${fmtTime(tune.t)}`));
    if (!watching.firstChild) replace(watching, h('p', { class: 'muted' }, 'nothing watched in the last hour'));
  }
  async function loadLogs() {
    const lg = await api('GET', `devices/${enc}/logs` + qs({ limit: 200, level: level.value }));
    replace(logsBox, table([
      { title: 'time', get: (l) => fmtTime(l.t) }, { title: 'level', get: (l) => l.level }, { title: 'source', get: (l) => l.source || '' },
      { title: 'line', get: (l) => h('span', { class: 'log-text' }, l.text) },
    ], lg.items || [], { empty: 'no log lines' }));
  }
  level.addEventListener('change', () => loadLogs().catch((e) => replace(logsBox, h('p', { class: 'error' }, e.message))));
  async function loadCommands() {
    const ex = await api('GET', `devices/${enc}/executions?limit=30`);
    replace(commandsBox, table([
      { title: 'job', get: (e) => h('span', { class: 'muted' }, e.job) }, { title: 'command', get: (e) => e.name || '' },
      { title: 'state', get: (e) => h('span', { class: 'state-' + e.state, 'data-exec-state': e.state }, e.state) },
      { title: 'history', get: (e) => (e.history || []).map((x) => h('div', {}, `${fmtTime(x.at)} ${x.state}${x.progress ? ' · ' + x.progress : ''}${x.reason ? ' · ' + x.reason : ''}`)) },
    ], ex.items || [], { empty: 'no commands for this box' }));
  }
  async function loadRecs() {
    const r = await api('GET', `devices/${enc}/recommendations?n=10`);
    replace(recsBox, r.modelVersion ? table([
      { title: 'channel', get: (x) => x.channel }, { title: 'score', get: (x) => fmtNum(x.score, 3) },
      { title: 'why', get: (x) => x.reason ? `${x.reason.kind}${x.reason.channel ? ' ' + x.reason.channel : ''}` : '' },
    ], r.items || []) : h('p', { class: 'muted' }, 'No recommendation model has been trained yet.'));
  }
  const loaders = [];
  if (can('GET', 'devices/{id}/events')) loaders.push(loadEvents);
  if (can('GET', 'devices/{id}/logs')) loaders.push(loadLogs);
  if (can('GET', 'devices/{id}/executions')) loaders.push(loadCommands);
  if (can('GET', 'devices/{id}/recommendations')) loaders.push(loadRecs);
  await Promise.all(loaders.map((f) => f().catch((e) => { /* a section that fails says so */ debugOut.appendChild(h('p', { class: 'error' }, e.message)); })));
  if (can('GET', 'devices/{id}/executions')) ctx.every(3000, () => loadCommands().catch(() => {}));
  ctx.ready();

  async function send(name, params) {
    if (!(await confirmDialog(`${name} ${id}`, `Send ${name} to box ${id}?`, name))) return;
    try {
      const job = await api('POST', 'commands', { name, target: { device: id }, ...(params ? { params } : {}) });
      const el = h('div', {});
      debugOut.prepend(el);
      follow(job.id, el, ctx);
    } catch (e) { debugOut.prepend(h('p', { class: 'error' }, e.message)); }
  }

  async function waitResult(jobId) {
    for (let i = 0; i < 120; i++) {
      const x = await api('GET', `commands/${jobId}/executions/${enc}`);
      if (['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELED', 'EXPIRED', 'REJECTED'].includes(x.state)) return x;
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error('no answer from the box within 2 minutes');
  }
  async function logPull() {
    try {
      const job = await api('POST', 'commands', { name: 'log_pull', target: { device: id }, params: { lines: 1000 } });
      replace(debugOut, h('p', { id: 'log-pull-status' }, 'log pull sent; waiting for the box…'));
      const x = await waitResult(job.id);
      if (x.state !== 'SUCCEEDED') { replace(debugOut, h('p', { class: 'error' }, `log pull ${x.state}: ${x.reason || ''}`)); return; }
      const blob = await api('GET', `commands/${job.id}/executions/${enc}/result`, null, { blob: true });
      saveFile(`${id}-logs.txt`, blob);
      replace(debugOut, h('p', { class: 'ok', id: 'log-pull-status' }, `log pull SUCCEEDED: ${blob.size} bytes downloaded as ${id}-logs.txt`));
    } catch (e) { replace(debugOut, h('p', { class: 'error' }, e.message)); }
  }
  async function startTail() {
    try {
      const job = await api('POST', 'commands', { name: 'log_tail', target: { device: id }, params: { durationSec: 300 } });
      tailJob = job.id;
      tailBox.hidden = false;
      tailBox.replaceChildren(h('div', { class: 'muted' }, `live tail ${job.id} started (5 min at most)`));
      document.getElementById('tail-start').disabled = true;
      document.getElementById('tail-stop').disabled = false;
    } catch (e) { replace(debugOut, h('p', { class: 'error' }, e.message)); }
  }
  async function stopTail() {
    if (!tailJob) return;
    const j = tailJob;
    tailJob = null;
    document.getElementById('tail-start').disabled = false;
    document.getElementById('tail-stop').disabled = true;
    try { await api('POST', `commands/${j}/cancel`, {}); tailBox.appendChild(h('div', { class: 'muted', id: 'tail-stopped' }, 'tail stopped')); } catch (e) { tailBox.appendChild(h('div', { class: 'error' }, e.message)); }
  }
  ctx.cleanup(() => { if (tailJob) api('POST', `commands/${tailJob}/cancel`, {}).catch(() => {}); });
  async function diagnostics() {
    try {
      const job = await api('POST', 'commands', { name: 'diagnostics', target: { device: id } });
      replace(debugOut, h('p', {}, 'diagnostics sent; waiting for the box…'));
      const x = await waitResult(job.id);
      const full = await api('GET', `commands/${job.id}/executions/${enc}`);
      replace(debugOut, h('p', { id: 'diagnostics-state', class: 'state-' + x.state }, `diagnostics ${x.state}`), h('pre', { id: 'diagnostics-result' }, JSON.stringify(full.result ?? full.reason ?? null, null, 2)));
    } catch (e) { replace(debugOut, h('p', { class: 'error' }, e.message)); }
  }
}
