// The Candor web app: a small hash-routed single page. Every string from
// the server goes into the DOM as text (see `h`), never as HTML. This file
// is the shell: the header and its nav, the router and start-up; each page
// is a module under pages/, and what they share is in common.js.

import { get, post } from './api.js';
import { RANK, me, setMe, main, loadMe, leave, setRouter, errorBox } from './common.js';
import { loginPage, setupPage, enrollPage } from './pages/auth.js';
import { sharePage } from './pages/share.js';
import { livePage } from './pages/live.js';
import { playbackPage } from './pages/playback.js';
import { eventsPage } from './pages/events.js';
import { systemPage } from './pages/system.js';
import { addCameraPage } from './pages/add-camera.js';
import { motionPage } from './pages/motion.js';
import { usersPage } from './pages/users.js';
import { accountPage } from './pages/account.js';
import { auditPage } from './pages/audit.js';
import { cloudPage } from './pages/cloud.js';
import { configPage } from './pages/config.js';
import { accessPage } from './pages/access.js';

function showChrome() {
  const top = document.getElementById('top');
  top.hidden = !me;
  if (!me) return;
  // A technician sees the pages their grant covers, and until when.
  const g = me.grant;
  document.getElementById('who').textContent = g
    ? `${me.username} (technician until ${new Date(g.expires_at).toLocaleTimeString()})`
    : `${me.username} (${me.role})`;
  for (const a of document.querySelectorAll('#nav a')) {
    const min = a.dataset.min;
    a.hidden = g ? !(a.dataset.scope ?? '').split(' ').some((sc) => sc && g.scopes.includes(sc)) : (min && RANK[me.role] < RANK[min]);
  }
}

// ---------------------------------------------------------------- router

async function route() {
  leave();
  const hash = location.hash.slice(1);
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query ?? '');
  if (path.startsWith('share=')) {
    // A share link: no account, only what was shared.
    let token = '';
    try { token = decodeURIComponent(path.slice(6)); } catch { /* a mangled link: the page says it does not work */ }
    main().replaceChildren(await sharePage(token));
    return;
  }
  if (path.startsWith('enroll=')) {
    // A technician's one-time enrolment code, handed over by the owner.
    let code = '';
    try { code = decodeURIComponent(path.slice(7)); } catch { /* a mangled link: the page says it does not work */ }
    main().replaceChildren(enrollPage(code));
    return;
  }
  if (path.startsWith('setup=')) {
    main().replaceChildren(setupPage(decodeURIComponent(path.slice(6))));
    showChrome();
    return;
  }
  if (!me) {
    main().replaceChildren(loginPage());
    showChrome();
    return;
  }
  showChrome();
  if (path.startsWith('alarm=')) {
    // A tapped alarm notification (through the cloud): that event's clip,
    // from 5 s before it started.
    try {
      const e = await get(`alarms/${encodeURIComponent(path.slice(6))}`);
      location.replace(`#playback?cams=${encodeURIComponent(e.camera)}&t=${Date.parse(e.start) - 5000}&play=1&event=${e.id}`);
    } catch (err) {
      main().replaceChildren(errorBox(err));
    }
    return;
  }
  const [page, arg] = path.split('/');
  for (const a of document.querySelectorAll('#top a[data-page]')) a.classList.toggle('active', a.dataset.page === (page || 'live'));
  try {
    switch (page) {
      case 'playback': await playbackPage(params); break;
      case 'events': await eventsPage(params); break;
      case 'system': await systemPage(); break;
      case 'motion': await motionPage(params); break;
      case 'add-camera': await addCameraPage(params); break;
      case 'config': await configPage(params); break;
      case 'access': await accessPage(); break;
      case 'users': await usersPage(); break;
      case 'audit': await auditPage(params); break;
      case 'cloud': await cloudPage(params); break;
      case 'account': await accountPage(); break;
      default: await livePage(arg ? decodeURIComponent(arg) : null);
    }
  } catch (e) {
    if (e.status === 401) { setMe(null); route(); return; }
    main().replaceChildren(errorBox(e));
  }
}

async function start() {
  document.getElementById('logout').addEventListener('click', async () => {
    try { await post('logout'); } catch { /* already gone */ }
    setMe(null);
    location.hash = '';
    route();
  });
  window.addEventListener('hashchange', route);
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
  try {
    await loadMe();
  } catch (e) {
    main().replaceChildren(errorBox(e));
    return;
  }
  route();
}

setRouter(route);
start();
