// The console's shell: sign-in, the navigation the token's role allows (from GET
// /api/v1/access), and a hash router (#/fleet, #/devices, #/device/ID, …).
import { h, replace } from './dom.js';
import { api, can, forgetToken, loadAccess, role, setToken, token, tokenName, whenUnauthorized, ApiError } from './api.js';
import { openLive, statusText } from './live.js';

const pages = [
  { path: 'fleet', title: 'Fleet', allowed: () => can('GET', 'fleet/summary'), load: () => import('./pages/fleet.js') },
  { path: 'devices', title: 'Devices', allowed: () => can('GET', 'devices'), load: () => import('./pages/devices.js') },
  { path: 'device', title: 'Device', hidden: true, allowed: () => can('GET', 'devices/{id}'), load: () => import('./pages/device.js') },
  { path: 'jobs', title: 'Jobs', allowed: () => can('GET', 'commands'), load: () => import('./pages/jobs.js') },
  { path: 'firmware', title: 'Firmware & rollouts', allowed: () => can('GET', 'firmware') || can('GET', 'rollouts'), load: () => import('./pages/firmware.js') },
  { path: 'alarms', title: 'Alarms', allowed: () => can('GET', 'alarms'), load: () => import('./pages/alarms.js') },
  { path: 'ratings', title: 'Ratings', allowed: () => can('GET', 'ratings') || can('GET', 'ratings/live'), load: () => import('./pages/ratings.js') },
  { path: 'audit', title: 'Audit', allowed: () => can('GET', 'audit'), load: () => import('./pages/audit.js') },
  { path: 'tokens', title: 'Tokens', allowed: () => can('GET', 'tokens'), load: () => import('./pages/tokens.js') },
];

const main = document.getElementById('view');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const signoutButton = document.getElementById('signout');
const banner = document.getElementById('banner');
let cleanups = [];
let signedIn = false;

function showBanner(text, bad = false) {
  banner.textContent = text;
  banner.className = 'banner' + (bad ? ' bad' : '');
  banner.hidden = !text;
}

function signOut(message) {
  forgetToken();
  signedIn = false;
  teardown();
  nav.replaceChildren();
  who.replaceChildren();
  signoutButton.hidden = true;
  if (location.hash !== '#/signin') history.replaceState(null, '', '#/signin');
  renderSignIn(message || '');
}
whenUnauthorized((message) => signOut(message));
signoutButton.addEventListener('click', () => signOut('Signed out.'));

function renderSignIn(message) {
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', placeholder: 'argus_…', required: true });
  const error = h('p', { class: 'error', id: 'signin-error' }, message && !message.startsWith('Signed out') ? message : '');
  const note = h('p', { class: 'muted', id: 'signin-note' }, message && message.startsWith('Signed out') ? message : '');
  const form = h('form', { class: 'card signin', id: 'signin' },
    h('h1', {}, 'Sign in to Argus'),
    h('p', { class: 'muted' }, 'Paste an API token. It is kept in this tab only (sessionStorage) and sent as a Bearer header.'),
    note, input, error,
    h('p', {}, h('button', { type: 'submit', class: 'primary', id: 'signin-submit' }, 'Sign in')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) { error.textContent = 'Enter a token.'; return; }
    try {
      await loadAccess(t);
      setToken(t);
      await start();
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401 ? 'This token is not valid (unknown, expired or revoked).' : err.message;
    }
  });
  main.dataset.state = 'signin';
  replace(main, form);
  input.focus();
}

function teardown() {
  for (const fn of cleanups.splice(0)) { try { fn(); } catch (_) { /* already gone */ } }
  showBanner('');
}

function renderNav(current) {
  nav.replaceChildren(...pages.filter((p) => !p.hidden && p.allowed()).map((p) =>
    h('a', { href: '#/' + p.path, class: p.path === current ? 'active' : '', 'data-page': p.path }, p.title)));
  who.replaceChildren(h('span', { id: 'token-name' }, tokenName()), h('span', { class: 'role', id: 'role' }, role()));
  signoutButton.hidden = false;
}

/** What a page gets: where to draw, its parameters, and helpers whose work ends with the page. */
function context(params) {
  const liveViews = new Map();
  return {
    main, params,
    cleanup(fn) { cleanups.push(fn); },
    every(ms, fn) { const t = setInterval(fn, ms); cleanups.push(() => clearInterval(t)); },
    /** Opens a live stream; `statusEl` shows its state, and the banner says when it is down. */
    live(query, onMessage, statusEl, what) {
      const conn = openLive(query, onMessage, (s) => {
        if (statusEl) { statusEl.textContent = statusText(s, what); statusEl.className = 'live-status ' + (s.state === 'up' ? 'up' : 'down'); }
        liveViews.set(query, s.state);
        const down = [...liveViews.values()].some((x) => x === 'down' || x === 'reconnecting');
        if (s.state === 'down') showBanner(statusText(s, what), true);
        else if (!down) showBanner('');
      });
      cleanups.push(() => conn.close());
      return conn;
    },
    ready() { main.dataset.state = 'ready'; performance.mark('argus-data-ready'); },
    banner: showBanner,
  };
}

async function route() {
  if (!token()) { renderSignIn(''); return; }
  if (!signedIn) { await start(); return; }
  const [, name = '', ...rest] = location.hash.split('/');
  const page = pages.find((p) => p.path === name && p.allowed()) || pages.find((p) => !p.hidden && p.allowed());
  teardown();
  renderNav(page ? page.path : '');
  if (!page) { replace(main, h('p', {}, 'This token\'s role (' + role() + ') may not use any console page.')); return; }
  if (page.path !== name) { history.replaceState(null, '', '#/' + page.path); }
  main.dataset.state = 'loading';
  main.dataset.page = page.path;
  replace(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const mod = await page.load();
    await mod.default(context(rest.map(decodeURIComponent)));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    main.dataset.state = 'error';
    replace(main, h('p', { class: 'error' }, 'This page failed: ' + err.message));
  }
}

async function start() {
  try {
    await loadAccess(token());
  } catch (err) {
    signOut(err instanceof ApiError && err.status === 401
      ? 'Your token was refused: it may have expired or been revoked. Sign in again.'
      : 'The hub cannot be reached: ' + err.message);
    return;
  }
  signedIn = true;
  if (!location.hash || location.hash === '#/signin') history.replaceState(null, '', '#/fleet');
  await route();
}

window.addEventListener('hashchange', () => { if (location.hash !== '#/signin') route(); });
route();
export { api };
