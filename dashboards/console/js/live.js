// Live views over the hub's WebSocket (/api/v1/live). A view that drops reconnects with
// exponential backoff (1 s doubling to 30 s, jittered) and says so through `onStatus`.
import { token } from './api.js';

export function openLive(query, onMessage, onStatus = () => {}) {
  let ws = null, closed = false, attempt = 0, timer = null;
  const url = () => (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/live?' + query + '&token=' + encodeURIComponent(token() || '');
  function connect() {
    if (closed) return;
    onStatus({ state: attempt === 0 ? 'connecting' : 'reconnecting', attempt });
    ws = new WebSocket(url());
    ws.onopen = () => { attempt = 0; onStatus({ state: 'up' }); };
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch (_) { return; }
      onMessage(m);
    };
    ws.onclose = (e) => {
      ws = null;
      if (closed) return;
      attempt += 1;
      const delay = Math.min(30000, 1000 * 2 ** Math.min(attempt - 1, 5)) * (0.8 + Math.random() * 0.4);
      onStatus({ state: 'down', attempt, delay, code: e.code, reason: e.reason });
      timer = setTimeout(connect, delay);
    };
  }
  connect();
  return {
    close() { closed = true; clearTimeout(timer); if (ws) ws.close(1000); },
  };
}

/** The text a live status shows. */
export function statusText(s, what) {
  switch (s.state) {
    case 'up': return `${what}: live`;
    case 'connecting': return `${what}: connecting…`;
    case 'reconnecting': return `${what}: reconnecting (attempt ${s.attempt})…`;
    case 'down': return `${what}: connection lost${s.code ? ' (' + s.code + (s.reason ? ' ' + s.reason : '') + ')' : ''}; reconnecting in ${Math.round(s.delay / 1000)} s`;
    default: return what;
  }
}
