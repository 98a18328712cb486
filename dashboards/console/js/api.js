// The operator API from the browser: the token from sessionStorage as a Bearer header, errors
// as ApiError with the API's message; a 401 sends the user back to sign-in with a message.
const KEY = 'argus.token';
let onUnauthorized = () => {};

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(t) { sessionStorage.setItem(KEY, t); }
export function forgetToken() { sessionStorage.removeItem(KEY); }
export function whenUnauthorized(fn) { onUnauthorized = fn; }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
  /** The parameter the API names at the start of its message (`to: …`, `target.devices …`, `name must …`). */
  get field() {
    const m = /^([A-Za-z][\w.\[\]]*)(:| must| is| holds)/.exec(this.message);
    return m ? m[1] : '';
  }
}

async function errorMessage(res) {
  const text = await res.text();
  try {
    const j = JSON.parse(text);
    if (j && j.error) return typeof j.error === 'string' ? j.error : j.error.message || JSON.stringify(j.error);
    if (j && j.message) return j.message;
  } catch (_) { /* not JSON */ }
  return text || `HTTP ${res.status}`;
}

/** api('GET', 'devices?limit=10'); api('POST', 'commands', {...}). Returns parsed JSON, text, or null. */
export async function api(method, path, body, opts = {}) {
  const headers = { Authorization: 'Bearer ' + (opts.token || token() || '') };
  let payload;
  if (body !== undefined && body !== null) {
    if (body instanceof Blob || body instanceof ArrayBuffer) { payload = body; headers['Content-Type'] = 'application/octet-stream'; }
    else { payload = JSON.stringify(body); headers['Content-Type'] = 'application/json'; }
  }
  let res;
  try {
    res = await fetch('/api/v1/' + path, { method, headers, body: payload, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'the hub cannot be reached: ' + e.message);
  }
  if (res.status === 401 && !opts.noSignOut) {
    const msg = await errorMessage(res);
    onUnauthorized('Your token was refused (' + msg + '): it may have expired or been revoked. Sign in again.');
    throw new ApiError(401, msg);
  }
  if (!res.ok) throw new ApiError(res.status, await errorMessage(res));
  if (opts.blob) return res.blob();
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? '?' + s : '';
}

// The access table (GET /api/v1/access): what this token may do.
let access = null;
export async function loadAccess(t) {
  access = await api('GET', 'access', null, { token: t, noSignOut: true });
  return access;
}
export function role() { return access ? access.role : ''; }
export function tokenName() { return access && access.token ? access.token.name : ''; }
/** can('GET', 'devices/{id}') — the route's pattern as in the matrix. */
export function can(method, pattern) {
  if (!access) return false;
  const r = access.routes.find((x) => x.kind === 'route' && x.method === method && x.path === '/api/v1/' + pattern);
  return !!(r && r.allowed);
}
export function canStream(kind) {
  if (!access) return false;
  const r = access.routes.find((x) => x.kind === 'stream' && x.path.includes('?' + kind + '='));
  return !!(r && r.allowed);
}
export function canCommand(name) {
  if (!access) return false;
  const c = access.commands.find((x) => x.name === name);
  return !!(c && c.allowed && can('POST', 'commands'));
}
