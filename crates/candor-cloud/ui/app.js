// Candor Cloud: sites, pairing, alarms, installers. Hash routes: #sites
// (default), #pair, #site=<id>, #alarms, #account, #login, #orgs,
// #fleet=<org id>.
import { h } from './dom.js';
import { orgsView, fleetView, leaveFleet, linkCard } from './installers.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let me = null;
let sites = new Map();
let alarms = [];
let ws = null;

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (me && method !== 'GET') headers['x-csrf-token'] = me.csrf;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  const data = text ? JSON.parse(text) : {};
  if (!r.ok) { const e = new Error(data.message || r.statusText); e.code = data.code; e.status = r.status; throw e; }
  return data;
}

function toast(text, alarm = false) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.classList.toggle('alarm', alarm);
  t.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('show'), 6000);
}

function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

const SHARING = { online_only: 'Online only', health: 'Health', health_and_events: 'Health + event details' };

function statusLines(site) {
  const st = site.status;
  const out = [];
  if (!st || site.sharing === 'online_only') { out.push(h('div', { class: 'dim' }, 'The recorder shares only whether it is online.')); return out; }
  if (st.cameras) {
    const down = st.cameras.filter((c) => !c.streaming);
    out.push(h('div', { 'data-testid': 'cameras' }, `${st.cameras.length - down.length}/${st.cameras.length} cameras streaming`,
      down.length ? h('span', { class: 'bad' }, ` — down: ${down.map((c) => c.name).join(', ')}`) : ''));
  }
  if (st.disk_used_percent != null) out.push(h('div', { class: 'dim' }, `Disk ${st.disk_used_percent.toFixed(0)}% used · ${st.footage_days?.toFixed(1) ?? '?'} days of footage`));
  if (st.last_event_at) out.push(h('div', { class: 'dim' }, `Last event ${ago(st.last_event_at)} ago`));
  return out;
}

function siteCard(site) {
  return h('div', { class: 'card', 'data-site': site.id },
    h('div', { class: 'row' },
      h('a', { href: `#site=${encodeURIComponent(site.id)}` }, h('strong', {}, site.name)),
      h('span', { 'data-testid': 'online' }, h('span', { class: `dot ${site.online ? 'on' : 'off'}` }),
        `${site.online ? 'Online' : 'Offline'} for ${ago(site.since)}`)),
    // The recorder's own web app, through the relay: this app never sees
    // inside that connection (it is TLS to the recorder).
    site.remote && site.online ? h('a', { class: 'button', href: site.remote, target: '_blank', rel: 'noopener', 'data-testid': 'open-site' }, 'Open') : '',
    ...statusLines(site));
}

function alarmItem(a, withSite) {
  const ack = a.acked_by
    ? h('span', { class: 'dim', 'data-testid': 'acked' }, `Acknowledged by ${a.acked_by}${a.ack_recorded ? ' · recorded on the recorder' : ''}`)
    : h('button', { class: 'secondary', 'data-testid': 'ack', onclick: async () => {
      try { await api('POST', `/api/sites/${encodeURIComponent(a.site)}/alarms/${a.id}/ack`); } catch (e) { toast(e.message); }
    } }, 'Acknowledge');
  // What happened, then when: a late marker sits with the time, so a late
  // alarm's row has the same shape as an on-time one.
  return h('li', { 'data-alarm': `${a.site}/${a.id}` },
    h('div', { class: 'alarm' },
      h('span', { class: 'what' }, withSite ? h('strong', {}, a.site_name + ' ') : '',
        a.camera ? `${a.kind} on ${a.camera}` : 'Alarm (details stay on the recorder)'),
      h('span', { class: 'dim when' }, h('span', {}, new Date(a.at).toLocaleString()),
        a.late ? [' ', h('span', { class: 'late' }, '· delivered late')] : '')),
    ack);
}

function renderNav() {
  nav.replaceChildren(...(me ? [
    h('a', { href: '#sites' }, 'Sites'), h('a', { href: '#alarms' }, 'Alarms'),
    h('a', { href: '#pair' }, 'Add site'), h('a', { href: '#orgs' }, 'Installers'),
    h('a', { href: '#account' }, 'Account'),
  ] : []));
}

function loginView() {
  const err = h('div', { class: 'error' });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const pw = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const code = h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', placeholder: 'only if asked' });
  const submit = async (e, create) => {
    e.preventDefault();
    err.textContent = '';
    try {
      if (create) await api('POST', '/api/accounts', { email: email.value, password: pw.value });
      me = await api('POST', '/api/login', { email: email.value, password: pw.value, code: code.value || undefined });
      await start();
    } catch (x) { err.textContent = x.message; }
  };
  main.replaceChildren(h('form', { class: 'card', id: 'login', onsubmit: (e) => submit(e, false) },
    h('h2', {}, 'Sign in'),
    h('label', {}, 'E-mail'), email, h('label', {}, 'Password'), pw,
    h('label', {}, 'Authenticator code'), code, err,
    h('div', { class: 'row' }, h('button', { type: 'submit', id: 'signin' }, 'Sign in'),
      h('button', { type: 'button', class: 'secondary', id: 'create', onclick: (e) => submit(e, true) }, 'Create account'))));
}

function sitesView() {
  const list = [...sites.values()];
  main.replaceChildren(h('h2', {}, 'Sites'),
    list.length ? h('div', { id: 'sites' }, list.map(siteCard))
      : h('p', {}, 'No sites yet. ', h('a', { href: '#pair' }, 'Add one'), ' with the code its recorder shows.'));
}

function pairView(prefill) {
  const err = h('div', { class: 'error' });
  const code = h('input', { name: 'code', autocomplete: 'off', autocapitalize: 'characters', placeholder: 'e.g. K7QXM-2P9RT', required: true, value: prefill });
  const out = h('div', {});
  main.replaceChildren(h('form', { class: 'card', id: 'pair', onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = '';
    try {
      const c = await api('POST', '/api/pair', { code: code.value });
      out.replaceChildren(h('div', { class: 'card' },
        h('p', {}, `Recorder “${c.recorder}”. Check that its screen shows the same confirmation code:`),
        h('div', { class: 'code', 'data-testid': 'confirmation' }, c.confirmation),
        h('p', { 'data-testid': 'pair-state' }, 'If it matches, press Confirm on the recorder. If it does not, press Cancel there: someone else may have entered the code.')));
      const poll = async () => {
        const s = await api('GET', `/api/pair/${encodeURIComponent(c.claim)}`);
        if (s.state === 'paired') { location.hash = `#site=${encodeURIComponent(s.site)}`; toast('Site added'); return; }
        if (s.state === 'gone') { out.replaceChildren(h('p', { class: 'error' }, 'Pairing ended without confirmation. Start again on the recorder.')); return; }
        if (location.hash.startsWith('#pair')) setTimeout(poll, 1000);
      };
      setTimeout(poll, 1000);
    } catch (x) { err.textContent = x.message; }
  } },
  h('h2', {}, 'Add a site'),
  h('p', {}, 'On the recorder, sign in as an admin, open Cloud and press “Connect to cloud”. Enter the code it shows:'),
  code, err, h('button', { type: 'submit' }, 'Continue')), out);
}

async function siteView(id) {
  let site = sites.get(id);
  if (!site) { try { site = await api('GET', `/api/sites/${encodeURIComponent(id)}`); } catch { main.replaceChildren(h('p', {}, 'No such site.')); return; } }
  const list = (await api('GET', `/api/alarms?site=${encodeURIComponent(id)}`)).alarms;
  const sel = h('select', { name: 'sharing' }, Object.entries(SHARING).map(([k, v]) => h('option', { value: k, selected: k === site.sharing }, v)));
  main.replaceChildren(siteCard(site),
    h('div', { class: 'card' }, h('h3', {}, 'Sharing'),
      h('p', { class: 'dim' }, 'The recorder decides what it sends. A change here is a request its admin accepts on the recorder.'),
      h('div', { class: 'row' }, sel, h('button', { class: 'secondary', onclick: async () => {
        try { toast((await api('PUT', `/api/sites/${encodeURIComponent(id)}/sharing`, { sharing: sel.value })).message); } catch (e) { toast(e.message); }
      } }, 'Request'))),
    h('div', { class: 'card' }, h('h3', {}, 'Alarms'), h('ul', { class: 'alarms', id: 'alarms' }, list.map((a) => alarmItem(a, false)))),
    await linkCard(ctx, site),
    h('button', { class: 'danger', onclick: async () => {
      if (!confirm(`Unpair ${site.name}? This is final: the recorder must be paired again with a new code.`)) return;
      try { await api('DELETE', `/api/sites/${encodeURIComponent(id)}`); sites.delete(id); location.hash = '#sites'; } catch (e) { toast(e.message); }
    } }, 'Unpair'));
}

async function alarmsView() {
  alarms = (await api('GET', '/api/alarms')).alarms;
  main.replaceChildren(h('h2', {}, 'Alarms'), h('div', { class: 'card' },
    h('ul', { class: 'alarms', id: 'alarms' }, alarms.map((a) => alarmItem(a, true)))));
}

function b64url(s) {
  const pad = '='.repeat((4 - (s.length % 4)) % 4);
  const raw = atob((s + pad).replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function enablePush() {
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) throw new Error('This browser has no Web Push.');
  const reg = await navigator.serviceWorker.register('/sw.js');
  const perm = await Notification.requestPermission();
  if (perm !== 'granted') throw new Error('Notifications are blocked for this site in the browser settings.');
  const { key } = await api('GET', '/api/push');
  const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64url(key) });
  await api('POST', '/api/push', sub.toJSON());
}

function accountView() {
  const err = h('div', { class: 'error' });
  const totp = h('div', {});
  main.replaceChildren(h('div', { class: 'card' }, h('h3', {}, me.email),
    h('button', { class: 'secondary', id: 'push', onclick: async () => {
      try { await enablePush(); toast('Alarms will be pushed to this device'); } catch (e) { err.textContent = e.message; }
    } }, 'Notify this device of alarms'), err),
  h('div', { class: 'card' }, h('h3', {}, 'Two-factor sign-in'),
    me.totp ? h('p', {}, 'On.') : h('button', { class: 'secondary', onclick: async () => {
      const t = await api('POST', '/api/totp/begin');
      const code = h('input', { inputmode: 'numeric', placeholder: '6-digit code' });
      totp.replaceChildren(h('p', {}, 'Add this secret to your authenticator app: ', h('code', {}, t.secret)), code,
        h('button', { onclick: async () => {
          try { await api('POST', '/api/totp/confirm', { secret: t.secret, code: code.value }); me.totp = true; accountView(); } catch (e) { toast(e.message); }
        } }, 'Turn on'));
    } }, 'Turn on'), totp),
  h('button', { class: 'secondary', onclick: async () => { await api('POST', '/api/logout'); location.reload(); } }, 'Sign out'));
}

const ctx = { api, toast, main };

function route() {
  renderNav();
  leaveFleet();
  if (!me) return loginView();
  const hash = location.hash.slice(1);
  if (hash === 'orgs') return orgsView(ctx);
  if (hash.startsWith('fleet=')) return fleetView(ctx, decodeURIComponent(hash.slice(6)));
  if (hash.startsWith('site=')) return siteView(decodeURIComponent(hash.slice(5)));
  if (hash === 'pair') return pairView();
  if (hash.startsWith('pair=')) return pairView(decodeURIComponent(hash.slice(5)));
  if (hash === 'alarms') return alarmsView();
  if (hash === 'account') return accountView();
  return sitesView();
}

function connect() {
  ws = new WebSocket(`wss://${location.host}/api/ws`);
  ws.onmessage = (m) => {
    const n = JSON.parse(m.data);
    if (n.type === 'site') { sites.set(n.site.id, n.site); refreshSite(n.site); }
    else if (n.type === 'unpaired') { sites.delete(n.site); if (location.hash === '' || location.hash === '#sites') route(); }
    else if (n.type === 'alarm') {
      const a = n.alarm;
      toast(`Alarm at ${a.site_name}${a.camera ? `: ${a.kind} on ${a.camera}` : ''}${a.late ? ' (late)' : ''}`, true);
      const ul = document.getElementById('alarms');
      const here = location.hash === '#alarms' || location.hash === `#site=${encodeURIComponent(a.site)}`;
      if (ul && here) ul.prepend(alarmItem(a, location.hash === '#alarms'));
    } else if (n.type === 'ack' || n.type === 'ack_recorded' || n.type === 'resync') {
      if (location.hash === '#alarms' || location.hash.startsWith('#site=')) route();
    }
  };
  ws.onclose = () => setTimeout(connect, 2000);
}

function refreshSite(site) {
  const old = document.querySelector(`[data-site="${CSS.escape(site.id)}"]`);
  if (old) old.replaceWith(siteCard(site));
  else if (location.hash === '' || location.hash === '#sites') route();
}

async function start() {
  me = me?.email ? { ...me, ...(await api('GET', '/api/me')) } : await api('GET', '/api/me');
  sites = new Map((await api('GET', '/api/sites')).sites.map((s) => [s.id, s]));
  if (!ws) connect();
  route();
}

window.addEventListener('hashchange', route);
if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
start().catch(() => { me = null; route(); });
