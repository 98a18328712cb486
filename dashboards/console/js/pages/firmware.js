// Firmware and rollouts: upload with checksum; create a rollout with a target filter that
// shows the live count of matching boxes, waves, rate, thresholds, health gate, maintenance
// window; live progress per wave; pause, resume, abort.
import { h, replace, table, fmtTime, fmtNum, field, showFieldError, clearFieldErrors, confirmDialog, debounce } from '../dom.js';
import { api, can, qs } from '../api.js';

async function sha256Hex(buf) {
  if (!(window.crypto && crypto.subtle)) return null; // not a secure context: type it in
  const d = await crypto.subtle.digest('SHA-256', buf);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The rollout's last health verdict (`healthy`, `insufficientData`,
 *  `regression(metric: "app_crash", updatedRate: 1.2, controlRate: 0.3, z: 3.1)`) in words. */
function healthText(v) {
  if (!v) return '—';
  if (v === 'healthy') return 'healthy: updated boxes no worse than the others';
  if (v === 'insufficientData') return 'not enough box-hours yet to compare';
  const m = /^regression\(metric: "([^"]*)", updatedRate: ([\d.eE+-]+), controlRate: ([\d.eE+-]+), z: ([\d.eE+-]+)\)$/.exec(v);
  if (!m) return v;
  const f = (x) => Number(x).toFixed(3);
  return `regression in ${m[1]}: ${f(m[2])} per box-hour on updated boxes against ${f(m[3])} on the others (z = ${Number(m[4]).toFixed(1)})`;
}

export default async function firmware(ctx) {
  const sections = [h('h1', {}, 'Firmware & rollouts')];
  const fwBox = h('div', { id: 'firmware-list' });
  const rolloutBox = h('div', { id: 'rollout-list' });
  let catalogue = [];

  // Upload: the file's SHA-256 is computed here and sent with the catalogue entry; the hub
  // checks the image against it.
  const fwVersion = h('input', { id: 'fw-version', size: 10 }), fwModels = h('input', { id: 'fw-models', size: 16, placeholder: 'model-a,model-b' });
  const fwFile = h('input', { id: 'fw-file', type: 'file' }), fwSha = h('input', { id: 'fw-sha256', size: 40, placeholder: 'computed from the file' });
  const fwStatus = h('p', { id: 'fw-status', class: 'muted' });
  let fileBuf = null;
  fwFile.addEventListener('change', async () => {
    const f = fwFile.files[0];
    if (!f) return;
    fileBuf = await f.arrayBuffer();
    const sha = await sha256Hex(fileBuf);
    if (sha) fwSha.value = sha;
    fwStatus.textContent = `${f.name}: ${fmtNum(f.size)} bytes${sha ? ', sha256 computed' : '; type its sha256 (this page is not a secure context)'}`;
  });
  const fwForm = h('form', { class: 'form', id: 'firmware-form' }, field('version', fwVersion, 'version'), field('models', fwModels, 'models[]'),
    field('image', fwFile, 'size'), field('sha256', fwSha, 'sha256'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'fw-upload' }, 'Add and upload'), h('span', { class: 'field-error', 'data-error-for': '' })));
  fwForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(fwForm);
    if (!fileBuf) { showFieldError(fwForm, 'size', 'Choose an image file.'); return; }
    const version = fwVersion.value.trim();
    const models = fwModels.value.split(',').map((s) => s.trim()).filter(Boolean);
    try {
      await api('POST', 'firmware', { version, models, size: fileBuf.byteLength, sha256: fwSha.value.trim() });
      fwStatus.textContent = 'catalogue entry added; uploading…';
      await api('PUT', `firmware/${encodeURIComponent(version)}/image`, new Blob([fileBuf]));
      fwStatus.textContent = `firmware ${version} uploaded and verified`;
      await loadFirmware();
    } catch (err) { showFieldError(fwForm, err.field, err.message); }
  });

  if (can('GET', 'firmware')) sections.push(h('section', { class: 'card' }, h('h2', {}, 'Firmware catalogue'), can('POST', 'firmware') ? [fwForm, fwStatus] : null, fwBox));

  // Rollout creation.
  const r = {
    firmware: h('select', { id: 'ro-firmware' }), model: h('input', { id: 'ro-model', size: 12 }), fwFrom: h('input', { id: 'ro-from-firmware', size: 10 }),
    tag: h('input', { id: 'ro-tag', size: 10 }), online: h('select', { id: 'ro-online' }, h('option', { value: '' }, 'any'), h('option', { value: 'true' }, 'online only')),
    waves: h('input', { id: 'ro-waves', value: '1,10,50,100', size: 12 }), rate: h('input', { id: 'ro-rate', type: 'number', value: '60', min: 1 }),
    success: h('input', { id: 'ro-success', type: 'number', step: '0.01', value: '0.95' }), failure: h('input', { id: 'ro-failure', type: 'number', step: '0.01', value: '0.1' }),
    minFail: h('input', { id: 'ro-minfail', type: 'number', value: '5' }), onFailure: h('select', { id: 'ro-onfailure' }, h('option', { value: 'pause' }, 'pause'), h('option', { value: 'abort' }, 'abort')),
    health: h('input', { id: 'ro-health', type: 'checkbox' }), hWindow: h('input', { id: 'ro-health-window', type: 'number', value: '60' }),
    hExposure: h('input', { id: 'ro-health-exposure', type: 'number', step: '0.1', value: '1' }), hIncrease: h('input', { id: 'ro-health-increase', type: 'number', step: '0.1', value: '0.5' }),
    window: h('input', { id: 'ro-window', type: 'checkbox' }), wStart: h('input', { id: 'ro-window-start', type: 'time', value: '02:00' }), wEnd: h('input', { id: 'ro-window-end', type: 'time', value: '05:00' }),
  };
  const matchCount = h('strong', { id: 'ro-match-count' }, '…');
  const roForm = h('form', { class: 'form', id: 'rollout-form' },
    field('firmware', r.firmware, 'firmware'), field('target model', r.model, 'target.query.model'), field('target firmware now', r.fwFrom, 'target.query.firmware'),
    field('target tag', r.tag, 'target.query.tag'), field('online', r.online, 'target.query.online'),
    h('div', { class: 'span-all' }, 'Matching boxes: ', matchCount),
    field('waves (cumulative %)', r.waves, 'waves'), field('rate (boxes/min)', r.rate, 'ratePerMinute'), field('success threshold', r.success, 'successThreshold'),
    field('failure threshold', r.failure, 'failureThreshold'), field('min failures', r.minFail, 'minFailureCount'), field('on failure', r.onFailure, 'onFailure'),
    field('health gate', r.health, 'health'), field('health window min', r.hWindow), field('min exposure h', r.hExposure), field('max relative increase', r.hIncrease),
    field('maintenance window (UTC)', r.window, 'window'), field('from', r.wStart), field('to', r.wEnd),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'ro-create' }, 'Create rollout'), h('span', { class: 'field-error', 'data-error-for': '' })));
  function query() {
    const q = {};
    if (r.model.value.trim()) q.model = r.model.value.trim();
    if (r.fwFrom.value.trim()) q.firmware = r.fwFrom.value.trim();
    if (r.tag.value.trim()) q.tag = r.tag.value.trim();
    if (r.online.value) q.online = true;
    return q;
  }
  const recount = debounce(async () => {
    try { matchCount.textContent = fmtNum((await api('GET', 'devices:count' + qs(query()))).count); } catch (e) { matchCount.textContent = e.message; }
  }, 250);
  [r.model, r.fwFrom, r.tag].forEach((x) => x.addEventListener('input', recount));
  r.online.addEventListener('change', recount);
  roForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(roForm);
    const q = query();
    const minutes = (t) => { const [hh, mm] = t.split(':').map(Number); return hh * 60 + mm; };
    const body = {
      firmware: r.firmware.value, target: Object.keys(q).length ? { query: q } : { all: true },
      waves: r.waves.value.split(',').map((s) => Number(s.trim())).filter((x) => !Number.isNaN(x)),
      ratePerMinute: Number(r.rate.value), successThreshold: Number(r.success.value), failureThreshold: Number(r.failure.value),
      minFailureCount: Number(r.minFail.value), onFailure: r.onFailure.value,
    };
    if (r.health.checked) body.health = { windowMinutes: Number(r.hWindow.value), minExposureHours: Number(r.hExposure.value), maxRelativeIncrease: Number(r.hIncrease.value) };
    if (r.window.checked) body.window = { startMinute: minutes(r.wStart.value), endMinute: minutes(r.wEnd.value) };
    const n = matchCount.textContent;
    if (!(await confirmDialog('Create rollout', `Roll firmware ${body.firmware} out to ${n} boxes in waves ${body.waves.join(', ')} %?`, 'Create rollout'))) return;
    try { await api('POST', 'rollouts', body); await loadRollouts(); } catch (err) { showFieldError(roForm, err.field, err.message); }
  });
  if (can('POST', 'rollouts')) sections.push(h('section', { class: 'card', id: 'rollout-create' }, h('h2', {}, 'New rollout'), roForm));
  if (can('GET', 'rollouts')) sections.push(h('section', { class: 'card' }, h('h2', {}, 'Rollouts (live progress per wave)'), rolloutBox));
  if (sections.length === 1) sections.push(h('p', { class: 'muted' }, 'Your role has no firmware or rollout access.'));
  replace(ctx.main, ...sections);

  async function loadFirmware() {
    const list = await api('GET', 'firmware');
    catalogue = list.items || [];
    replace(fwBox, table([
      { title: 'version', get: (f) => f.version }, { title: 'models', get: (f) => (f.models || []).join(', ') || 'any' },
      { title: 'size', get: (f) => fmtNum(f.size) }, { title: 'sha256', get: (f) => h('code', {}, f.sha256) },
      { title: 'status', get: (f) => f.status + (f.uploaded ? '' : ' (no image)') + (f.problem ? ': ' + f.problem : '') }, { title: 'added', get: (f) => fmtTime(f.createdAt) },
    ], catalogue, { empty: 'the catalogue is empty' }));
    const current = r.firmware.value;
    replace(r.firmware, catalogue.map((f) => h('option', { value: f.version, selected: f.version === current }, f.version)));
  }

  function waveRow(ro) {
    return (ro.waves || []).map((w, i) => h('div', { class: 'wave', 'data-wave': i },
      `wave ${i + 1} (${w.percent}%): `, h('progress', { max: Math.max(w.target, 1), value: w.succeeded + w.failed }),
      ` ${w.succeeded} ok, ${w.failed} failed, ${w.started} started of ${w.target}`, i === ro.currentWave ? ' ← current' : ''));
  }
  async function act(ro, action) {
    if (!(await confirmDialog(`${action} rollout`, `${action} rollout ${ro.id} (${ro.firmware})?`, action, action === 'abort'))) return;
    try { await api('POST', `rollouts/${encodeURIComponent(ro.id)}/${action}`, {}); await loadRollouts(); } catch (e) { rolloutBox.prepend(h('p', { class: 'error' }, e.message)); }
  }
  async function loadRollouts() {
    const list = await api('GET', 'rollouts');
    const canAct = (a) => can('POST', `rollouts/{id}/${a}`);
    replace(rolloutBox, table([
      { title: 'rollout', get: (ro) => [h('div', {}, ro.id), h('div', { class: 'muted' }, `by ${ro.createdBy}`)] },
      { title: 'firmware', get: (ro) => ro.firmware }, { title: 'state', get: (ro) => h('span', { class: 'rollout-state', 'data-rollout': ro.id }, ro.state + (ro.reason ? ': ' + ro.reason : '')) },
      { title: 'progress', get: (ro) => [h('div', {}, `${ro.succeeded} ok · ${ro.failed} failed · ${ro.inFlight} in flight · ${ro.remaining} waiting of ${ro.targetCount}`), waveRow(ro)] },
      { title: 'health gate: updated vs not yet updated', get: (ro) => healthText(ro.lastHealth) },
      { title: '', get: (ro) => ['pause', 'resume', 'abort'].filter(canAct).map((a) => h('button', { type: 'button', class: 'rollout-' + a, 'data-rollout': ro.id, onClick: () => act(ro, a) }, a)) },
    ], list.items || [], { empty: 'no rollouts', rowAttrs: (ro) => ({ 'data-rollout': ro.id }) }));
  }
  const loads = [];
  if (can('GET', 'firmware')) loads.push(loadFirmware());
  if (can('GET', 'rollouts')) loads.push(loadRollouts());
  await Promise.all(loads);
  if (can('POST', 'rollouts')) recount();
  ctx.ready();
  if (can('GET', 'rollouts')) ctx.every(2000, () => loadRollouts().catch(() => {}));
}
