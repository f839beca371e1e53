// What every page shares: who is signed in, the page's teardown, the way
// back to the router, messages to the user, and number and time formats.

import { get, setCsrf, ApiError } from './api.js';
import { h } from './dom.js';

export const RANK = { viewer: 0, operator: 1, admin: 2 };

/// The signed-in user (`GET /me`), or null. Pages read it; `loadMe` and
/// `setMe` change it.
export let me = null;
export function setMe(m) { me = m; }

export const main = () => document.getElementById('main');

/// A new page section in the main area, and the cameras the user may see;
/// on failure the section says why and the cameras are null.
export async function pageWithCameras() {
  const root = h('section', { class: 'page' });
  main().replaceChildren(root);
  try {
    return { root, cams: (await get('cameras')).cameras };
  } catch (e) {
    root.append(errorBox(e));
    return { root, cams: null };
  }
}

// ---------------------------------------------------------------- session

export async function loadMe() {
  try {
    me = await get('me');
    setCsrf(me.csrf_token);
  } catch (e) {
    if (e.status === 401) me = null;
    else throw e;
  }
}

// ---------------------------------------------------------------- page life

let cleanup = null;

/// Registers what to stop (timers, players, feeds) when the user leaves the
/// page now shown.
export function onLeave(f) { cleanup = f; }

/// Stops the page now shown; the router calls it before showing another.
export function leave() {
  if (cleanup) { cleanup(); cleanup = null; }
}

// The router lives in app.js, which imports every page; pages reach it
// through here instead of importing app.js back.
let router = null;
export function setRouter(f) { router = f; }
export function route() { return router(); }

// ---------------------------------------------------------------- messages

export function toast(msg, bad) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = bad ? 'bad' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

export function errorBox(e) {
  return h('div', { class: 'error', role: 'alert' }, e instanceof ApiError ? e.message : String(e));
}

// ---------------------------------------------------------------- formats

export const fmtBytes = (b) => {
  if (b == null) return '–';
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (b >= 1000 && i < u.length - 1) { b /= 1000; i++; }
  return `${b.toFixed(i ? 1 : 0)} ${u[i]}`;
};
export const fmtTime = (ms) => new Date(ms).toLocaleString();
export const fmtSecs = (s) => {
  if (s == null) return '–';
  const d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600), mm = Math.floor(s % 3600 / 60);
  return d ? `${d} d ${hh} h` : hh ? `${hh} h ${mm} min` : `${mm} min ${Math.floor(s % 60)} s`;
};
