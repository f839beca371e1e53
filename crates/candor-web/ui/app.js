// The Candor web app: a small hash-routed single page. Every string from
// the server goes into the DOM as text (see `h`), never as HTML.

import { api, get, post, patch, del, setCsrf, iso, enc, ApiError } from './api.js';
import { LivePlayer } from './live.js';
import { Timeline } from './timeline.js';
import { h, s as svg } from './dom.js';

const RANK = { viewer: 0, operator: 1, admin: 2 };
let me = null;
let cleanup = null;
const main = () => document.getElementById('main');

function toast(msg, bad) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = bad ? 'bad' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

function errorBox(e) {
  return h('div', { class: 'error', role: 'alert' }, e instanceof ApiError ? e.message : String(e));
}

const fmtBytes = (b) => {
  if (b == null) return '–';
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (b >= 1000 && i < u.length - 1) { b /= 1000; i++; }
  return `${b.toFixed(i ? 1 : 0)} ${u[i]}`;
};
const fmtTime = (ms) => new Date(ms).toLocaleString();
const fmtSecs = (s) => {
  if (s == null) return '–';
  const d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600), mm = Math.floor(s % 3600 / 60);
  return d ? `${d} d ${hh} h` : hh ? `${hh} h ${mm} min` : `${mm} min ${Math.floor(s % 60)} s`;
};

// ---------------------------------------------------------------- session

async function loadMe() {
  try {
    me = await get('me');
    setCsrf(me.csrf_token);
  } catch (e) {
    if (e.status === 401) me = null;
    else throw e;
  }
}

function showChrome() {
  const top = document.getElementById('top');
  top.hidden = !me;
  if (!me) return;
  document.getElementById('who').textContent = `${me.username} (${me.role})`;
  for (const a of document.querySelectorAll('#nav a')) {
    const min = a.dataset.min;
    a.hidden = min && RANK[me.role] < RANK[min];
  }
}

function authCard(title, ...body) {
  return h('div', { class: 'auth' }, h('div', { class: 'card' },
    h('div', { class: 'auth-brand' }, h('img', { src: '/app/icon.svg', alt: '', width: 40, height: 40 }), h('h1', {}, 'Candor')),
    h('h2', {}, title), ...body));
}

function loginPage() {
  const err = h('div');
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const code = h('input', { name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', placeholder: '123456 or a recovery code' });
  const codeRow = h('label', { hidden: true }, 'Authenticator code', code);
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      err.replaceChildren();
      try {
        const body = { username: user.value, password: pass.value };
        if (!codeRow.hidden && code.value) body.totp = code.value;
        const r = await post('login', body);
        setCsrf(r.csrf_token);
        await loadMe();
        location.hash = '#live';
        route();
      } catch (x) {
        if (x.code === 'totp_required') {
          codeRow.hidden = false;
          code.focus();
        }
        err.replaceChildren(errorBox(x));
      }
    },
  }, h('label', {}, 'User name', user), h('label', {}, 'Password', pass), codeRow, err,
  h('button', { type: 'submit', class: 'primary' }, 'Log in'));
  return authCard('Log in', form);
}

function setupPage(token) {
  const err = h('div');
  const user = h('input', { name: 'username', value: 'admin', required: true, autocomplete: 'username' });
  const pass = h('input', { name: 'password', type: 'password', minlength: 10, required: true, autocomplete: 'new-password' });
  const again = h('input', { name: 'password2', type: 'password', minlength: 10, required: true, autocomplete: 'new-password' });
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      err.replaceChildren();
      if (pass.value !== again.value) {
        err.append(errorBox('The two passwords differ.'));
        return;
      }
      try {
        await post('setup', { token, username: user.value, password: pass.value });
        const r = await post('login', { username: user.value, password: pass.value });
        setCsrf(r.csrf_token);
        await loadMe();
        history.replaceState(null, '', '/#live');
        route();
      } catch (x) {
        err.append(errorBox(x));
      }
    },
  }, h('p', { class: 'muted' }, 'Create the first administrator. This link works once; the recorder printed it on its console.'),
  h('label', {}, 'User name', user), h('label', {}, 'Password (10 characters or more)', pass),
  h('label', {}, 'Password again', again), err, h('button', { type: 'submit', class: 'primary' }, 'Create administrator'));
  return authCard('Welcome to Candor', form);
}

// ---------------------------------------------------------------- live

async function livePage(single) {
  const root = h('section', { class: 'page' });
  main().replaceChildren(root);
  let cams;
  try {
    cams = (await get('cameras')).cameras;
  } catch (e) {
    root.append(errorBox(e));
    return;
  }
  if (single && !cams.some((c) => c.name === single)) {
    root.append(h('div', { class: 'empty' }, `No camera named “${single}”, or you may not see it. `, h('a', { href: '#live' }, 'Back to all cameras')));
    return;
  }
  const shown = single ? cams.filter((c) => c.name === single) : cams;
  root.append(h('div', { class: 'bar' }, h('h1', {}, single ? single : 'Live'),
    single ? h('a', { href: '#live', class: 'button ghost' }, '← All cameras') : h('span', { class: 'muted' }, `${cams.length} camera${cams.length === 1 ? '' : 's'}`),
    single ? h('a', { href: `#playback?cams=${enc(single)}`, class: 'button ghost' }, 'Playback') : null));
  if (!shown.length) {
    root.append(h('div', { class: 'empty' }, 'No cameras to show. An administrator adds cameras under [[cameras]] in candor.toml, and grants you access on the Users page.'));
    return;
  }
  const grid = h('div', { class: single ? 'grid single' : 'grid' });
  root.append(grid);
  const players = [];
  const tiles = new Map();
  for (const c of shown) {
    const video = h('video', { muted: true, autoplay: true, playsinline: true, 'data-camera': c.name });
    video.muted = true;
    const status = h('div', { class: 'overlay' }, 'Connecting…');
    const camStatus = h('div', { class: 'overlay camera-down', hidden: true });
    const dot = h('span', { class: `dot ${c.state}` });
    const tile = h('div', { class: 'tile', 'data-camera': c.name },
      video, status, camStatus, h('div', { class: 'tile-name' }, dot, c.name));
    if (!single) tile.addEventListener('click', () => { location.hash = `#live/${enc(c.name)}`; });
    grid.append(tile);
    tiles.set(c.name, { dot, camStatus });
    const p = new LivePlayer(video, c.name, (s, detail) => {
      status.hidden = s === 'playing';
      status.className = `overlay ${s}`;
      status.textContent = {
        connecting: 'Connecting…',
        reconnecting: 'Connection to the recorder lost; reconnecting…',
        unsupported: detail,
        error: `Playback error: ${detail}`,
      }[s] ?? '';
    });
    p.start();
    players.push(p);
  }
  // The recorder's view of each camera: a camera that is down says so on its
  // tile (the video stream stays open and resumes when the camera returns).
  const poll = async () => {
    try {
      for (const c of (await get('cameras')).cameras) {
        const t = tiles.get(c.name);
        if (!t) continue;
        t.dot.className = `dot ${c.state}`;
        t.camStatus.hidden = c.state === 'streaming';
        // The first clause of the error is what a person needs; the System
        // page and the tooltip have all of it.
        const why = (c.error ?? '').split(' conn:')[0].slice(0, 120);
        t.camStatus.title = c.error ?? '';
        t.camStatus.textContent = c.state === 'streaming' ? ''
          : `Camera ${c.state}${why ? ` (${why})` : ''}. The recorder keeps retrying; live view resumes when it is back.`;
      }
    } catch { /* the players show connection problems */ }
  };
  const timer = setInterval(poll, 3000);
  cleanup = () => {
    clearInterval(timer);
    players.forEach((p) => p.stop());
  };
}

// ---------------------------------------------------------------- playback

const WINDOW_MS = 30 * 60e3;

async function playbackPage(params) {
  const root = h('section', { class: 'page' });
  main().replaceChildren(root);
  let cams;
  try {
    cams = (await get('cameras')).cameras;
  } catch (e) {
    root.append(errorBox(e));
    return;
  }
  if (!cams.length) {
    root.append(h('h1', {}, 'Playback'), h('div', { class: 'empty' }, 'No cameras to play back. An administrator adds cameras in candor.toml and grants access on the Users page.'));
    return;
  }
  const wanted = params.get('cams')?.split(',').filter((n) => cams.some((c) => c.name === n));
  let selected = wanted?.length ? wanted : cams.slice(0, 4).map((c) => c.name);
  const fps = Object.fromEntries(cams.map((c) => [c.name, c.fps || 15]));
  const now = Date.now();
  let day = params.get('t') ? new Date(Number(params.get('t'))) : new Date(now);
  day.setHours(0, 0, 0, 0);
  const spans = new Map();
  // Per camera: where footage stops changing (see the spans API).
  const settled = new Map();
  const videos = new Map();
  let windowStart = new Map(); // camera → wall ms at video time 0
  let master = null;
  let rate = 1;
  let raf = 0;
  let sel = null;

  const clock = h('span', { class: 'clock' }, '–');
  const info = h('div', { class: 'muted small' });
  const timeline = new Timeline({
    onSeek: (t) => playFrom(t),
    onSelect: (a, b) => setSel(a, b),
  });
  const dayInput = h('input', { type: 'date', value: localDate(day), onchange: () => { day = new Date(dayInput.value + 'T00:00'); loadDay(); } });
  const camPick = h('div', { class: 'campick' }, cams.map((c) => h('label', { class: 'chip' },
    h('input', { type: 'checkbox', value: c.name, checked: selected.includes(c.name), onchange: (e) => {
      selected = [...camPick.querySelectorAll('input:checked')].map((i) => i.value);
      loadDay();
    } }), c.name)));
  const playBtn = h('button', { class: 'primary', onclick: () => togglePlay() }, 'Play');
  const speed = h('select', { 'aria-label': 'Speed', onchange: () => { rate = Number(speed.value); videos.forEach((v) => { v.playbackRate = rate; }); } },
    [1, 2, 4, 8, 16].map((s) => h('option', { value: s }, `${s}×`)));
  const stepBack = h('button', { class: 'ghost', title: 'Previous frame', onclick: () => step(-1) }, '‹ Frame');
  const stepFwd = h('button', { class: 'ghost', title: 'Next frame', onclick: () => step(1) }, 'Frame ›');
  const progress = h('progress', { max: 1, value: 0, hidden: true });
  const selText = h('span', { class: 'muted small' }, 'Shift-drag on the timeline, or mark in and out, to pick a range to export. Keys: space, ← →, + −.');
  const exportBtn = h('button', { disabled: true, onclick: () => doExport(), title: 'One MP4 per selected camera' }, 'Export MP4');
  const stage = h('div', { class: 'grid playback' });

  root.append(
    h('div', { class: 'bar' }, h('h1', {}, 'Playback'), dayInput,
      h('button', { class: 'ghost', onclick: () => shiftDay(-1) }, '◀ Day'),
      h('button', { class: 'ghost', onclick: () => shiftDay(1) }, 'Day ▶'), clock),
    camPick, stage,
    h('div', { class: 'controls' }, playBtn, speed, stepBack, stepFwd,
      h('button', { class: 'ghost', onclick: () => fit() }, 'Fit footage'),
      h('button', { class: 'ghost', onclick: () => timeline.zoom(1 / 2) }, 'Zoom in'),
      h('button', { class: 'ghost', onclick: () => timeline.zoom(2) }, 'Zoom out'),
      h('button', { class: 'ghost', onclick: () => timeline.pan(-0.5) }, '◀'),
      h('button', { class: 'ghost', onclick: () => timeline.pan(0.5) }, '▶')),
    timeline.el,
    h('div', { class: 'controls' },
      h('button', { class: 'ghost', onclick: () => setSel(timeline.head, sel?.[1] ?? timeline.head + 60e3) }, 'Mark in'),
      h('button', { class: 'ghost', onclick: () => setSel(sel?.[0] ?? timeline.head - 60e3, timeline.head) }, 'Mark out'),
      selText, exportBtn, progress),
    info);

  /// Zooms the timeline to the recorded footage of the day.
  function fit() {
    const all = [...spans.values()].flat();
    if (!all.length) return;
    const a = Math.min(...all.map((s) => s.start));
    const b = Math.max(...all.map((s) => s.end));
    const pad = Math.max((b - a) * 0.05, 5e3);
    timeline.setView(a - pad, b + pad);
  }

  function shiftDay(n) {
    day = new Date(day.getTime() + n * 864e5 + 3600e3);
    day.setHours(0, 0, 0, 0);
    dayInput.value = localDate(day);
    loadDay();
  }

  function setSel(a, b) {
    if (a == null || b == null || b <= a) return;
    sel = [a, b];
    timeline.setSelection(a, b);
    selText.textContent = `${fmtTime(a)} → ${new Date(b).toLocaleTimeString()} (${fmtSecs((b - a) / 1000)})`;
    exportBtn.disabled = false;
  }

  async function loadDay() {
    const start = day.getTime();
    const end = start + 864e5;
    timeline.rows.clear();
    timeline.setView(start, end);
    spans.clear();
    try {
      await Promise.all(selected.map(async (c) => {
        const r = await get(`cameras/${enc(c)}/spans?from=${iso(start)}&to=${iso(end)}`);
        const s = r.spans.map((x) => ({ start: Date.parse(x.start), end: Date.parse(x.end) }));
        settled.set(c, r.settled_end ? Date.parse(r.settled_end) : null);
        spans.set(c, s);
        timeline.setSpans(c, s);
        // Events of the day, marked on the camera's row.
        const ev = await get(`events?camera=${enc(c)}&since=${iso(start)}&limit=2000`).catch(() => ({ events: [] }));
        timeline.setMarks(c, ev.events
          .map((e) => ({ start: Date.parse(e.start), end: e.end ? Date.parse(e.end) : null, title: `${e.kind} ${e.start}` }))
          .filter((m) => m.start < end));
      }));
    } catch (e) {
      info.replaceChildren(errorBox(e));
      return;
    }
    const all = [...spans.values()].flat();
    if (!all.length) {
      stage.replaceChildren(h('div', { class: 'empty' }, 'Nothing recorded on this day for the chosen cameras. Pick another day, or check the System page for camera errors.'));
      return;
    }
    // A short recording would be a sliver on a day's timeline: show it whole.
    if (Math.max(...all.map((s) => s.end)) - Math.min(...all.map((s) => s.start)) < 2 * 3600e3) fit();
    const t = Number(params.get('t')) || Math.max(Math.min(...all.map((s) => s.start)), Math.max(...all.map((s) => s.end)) - 60e3);
    // Links from events say play=1: the user asked to see that moment.
    const autoplay = params.get('play') === '1';
    params.delete('t');
    params.delete('play');
    playFrom(t, autoplay);
  }

  /// Where a camera's footage is at or after `t`: `t` itself inside a span,
  /// else the start of the next span.
  function footageAt(cam, t) {
    for (const s of spans.get(cam) ?? []) {
      if (t < s.end - 500) return Math.max(t, s.start);
    }
    return null;
  }

  function playFrom(t, autoplay = true) {
    const starts = selected.map((c) => [c, footageAt(c, t)]).filter(([, s]) => s != null);
    if (!starts.length) {
      toast('No footage after that point.');
      return;
    }
    const t0 = Math.min(...starts.map(([, s]) => s));
    stage.replaceChildren();
    videos.clear();
    windowStart = new Map();
    master = null;
    for (const cam of selected) {
      const s = footageAt(cam, t0);
      const tile = h('div', { class: 'tile', 'data-camera': cam }, h('div', { class: 'tile-name' }, cam));
      stage.append(tile);
      if (s == null) {
        tile.append(h('div', { class: 'overlay' }, 'No footage from here on'));
        continue;
      }
      const last = Math.max(...spans.get(cam).map((x) => x.end));
      // Stop the window where footage is settled, so the file can't change
      // under the player's Range requests; only the still-open tail (the
      // last segment) is played from an unsettled file.
      const fixed = settled.get(cam);
      const to = Math.min(s + WINDOW_MS, fixed && fixed > s + 1000 ? fixed : last);
      const v = h('video', { muted: true, playsinline: true, preload: 'auto', 'data-camera': cam,
        src: `/api/v1/cameras/${enc(cam)}/export.mp4?from=${iso(s)}&to=${iso(to)}` });
      v.muted = true;
      v.playbackRate = rate;
      v.addEventListener('error', () => {
        const codec = cams.find((c) => c.name === cam)?.codec ?? '';
        const hevc = /^(hvc1|hev1)/.test(codec);
        tile.append(h('div', { class: 'overlay error' }, hevc
          ? 'This browser cannot play H.265 footage. Use Safari or Edge on a device with HEVC support, or export the MP4 and play it in VLC.'
          : 'This footage could not be played. Try again, or export it and play it in VLC.'));
      });
      tile.prepend(v);
      videos.set(cam, v);
      windowStart.set(cam, s);
      if (!master) {
        master = cam;
        v.addEventListener('ended', () => {
          if (to < last) playFrom(to);
          else setPlaying(false);
        });
      }
    }
    timeline.setPlayhead(t0);
    clock.textContent = fmtTime(t0);
    // Cameras whose footage starts later wait at their start.
    for (const [cam, v] of videos) v.dataset.offset = String(windowStart.get(cam) - t0);
    setPlaying(autoplay);
  }

  function masterWall() {
    const v = videos.get(master);
    return v ? windowStart.get(master) + v.currentTime * 1000 : null;
  }

  function setPlaying(on) {
    playBtn.textContent = on ? 'Pause' : 'Play';
    playBtn.dataset.playing = on ? '1' : '';
    cancelAnimationFrame(raf);
    for (const v of videos.values()) {
      if (on) v.play().catch(() => {});
      else v.pause();
    }
    if (on) raf = requestAnimationFrame(tick);
  }

  function togglePlay() {
    const v = videos.get(master);
    setPlaying(!v || v.paused);
  }

  function tick() {
    const w = masterWall();
    if (w != null) {
      timeline.setPlayhead(w);
      clock.textContent = fmtTime(w);
      stage.dataset.wall = String(Math.round(w));
      // Keep the others within a third of a second of the master.
      for (const [cam, v] of videos) {
        if (cam === master) continue;
        const want = (w - windowStart.get(cam)) / 1000;
        if (want < 0) { v.pause(); v.currentTime = 0; continue; }
        if (Math.abs(v.currentTime - want) > 0.33) v.currentTime = want;
        if (v.paused && !videos.get(master).paused) v.play().catch(() => {});
      }
    }
    raf = requestAnimationFrame(tick);
  }

  function step(n) {
    setPlaying(false);
    for (const [cam, v] of videos) v.currentTime = Math.max(0, v.currentTime + n / fps[cam]);
    setTimeout(() => {
      const w = masterWall();
      if (w != null) { timeline.setPlayhead(w); clock.textContent = fmtTime(w); }
    }, 50);
  }

  /// Exports the selection for every selected camera, one MP4 each.
  async function doExport() {
    if (!sel) return;
    exportBtn.disabled = true;
    try {
      for (const cam of selected) await exportOne(cam);
    } finally {
      exportBtn.disabled = false;
      progress.hidden = true;
    }
  }

  async function exportOne(cam) {
    const url = `/api/v1/cameras/${enc(cam)}/export.mp4?from=${iso(sel[0])}&to=${iso(sel[1])}&download=1`;
    progress.hidden = false;
    progress.value = 0;
    try {
      const r = await fetch(url, { credentials: 'same-origin' });
      if (!r.ok) {
        const v = await r.json().catch(() => ({}));
        throw new ApiError(r.status, v.code, v.message ?? `HTTP ${r.status}`);
      }
      const total = Number(r.headers.get('content-length')) || 0;
      // Large files go to the browser's own download manager, which streams to disk.
      if (total > 512e6) {
        r.body.cancel();
        h('a', { href: url, download: '' }).click();
        toast('The download continues in your browser’s downloads.');
        return;
      }
      const reader = r.body.getReader();
      const parts = [];
      let got = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        got += value.length;
        if (total) progress.value = got / total;
      }
      const name = /filename="([^"]+)"/.exec(r.headers.get('content-disposition') ?? '')?.[1] ?? 'candor-export.mp4';
      const a = h('a', { href: URL.createObjectURL(new Blob(parts, { type: 'video/mp4' })), download: name });
      document.body.append(a);
      a.click();
      a.remove();
      toast(`Exported ${name} (${fmtBytes(got)}).`);
    } catch (e) {
      toast(`${cam}: ${e.message}`, true);
    }
  }

  // Keyboard: space plays/pauses, arrows step a frame, + and - zoom.
  const keys = (e) => {
    if (e.target.closest('input, select, textarea')) return;
    const act = { ' ': () => togglePlay(), ArrowLeft: () => step(-1), ArrowRight: () => step(1),
      '+': () => timeline.zoom(1 / 2), '=': () => timeline.zoom(1 / 2), '-': () => timeline.zoom(2) }[e.key];
    if (act) { e.preventDefault(); act(); }
  };
  document.addEventListener('keydown', keys);
  cleanup = () => {
    document.removeEventListener('keydown', keys);
    cancelAnimationFrame(raf);
    videos.forEach((v) => { v.pause(); v.removeAttribute('src'); v.load(); });
  };
  loadDay();
}

function localDate(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

// ---------------------------------------------------------------- system

async function systemPage() {
  const root = h('section', { class: 'page' }, h('h1', {}, 'System'));
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  root.append(body);
  main().replaceChildren(root);
  const load = async () => {
    let s;
    try {
      s = await get('system');
    } catch (e) {
      body.replaceChildren(errorBox(e));
      return;
    }
    const st = s.storage;
    body.replaceChildren(
      h('div', { class: 'cards' },
        h('div', { class: 'card stat' }, h('div', { class: 'muted' }, 'Recorder'), h('strong', {}, `Candor ${s.version}`), h('div', {}, `up ${fmtSecs(s.uptime_secs)}`),
          me.role === 'admin' ? h('a', { class: 'button small', href: '#add-camera' }, 'Add camera') : null),
        h('div', { class: 'card stat' }, h('div', { class: 'muted' }, 'Storage used'), h('strong', {}, fmtBytes(st.used_bytes)),
          h('div', {}, st.max_bytes ? `of ${fmtBytes(st.max_bytes)} budget` : 'no budget set')),
        h('div', { class: 'card stat' }, h('div', { class: 'muted' }, 'Disk free'), h('strong', {}, fmtBytes(st.disk_free_bytes)), h('div', {}, `of ${fmtBytes(st.disk_total_bytes)}`)),
        h('div', { class: 'card stat' }, h('div', { class: 'muted' }, 'Live latency (server)'),
          h('strong', {}, s.live.latency_p50_us != null ? `p50 ≤ ${(s.live.latency_p50_us / 1000).toFixed(1)} ms` : '–'),
          h('div', {}, s.live.latency_p99_us != null ? `p99 ≤ ${(s.live.latency_p99_us / 1000).toFixed(1)} ms` : 'no live viewers yet'))),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Camera', 'State', 'Video', 'Bitrate', 'Stored', 'Footage kept', 'Forecast'].map((c) => h('th', {}, c)))),
        h('tbody', {}, s.cameras.map((c) => h('tr', { 'data-camera': c.name },
          h('td', {}, c.name),
          h('td', {}, h('span', { class: `dot ${c.state}` }), c.state, c.error ? h('div', { class: 'small bad' }, c.error) : null,
            c.state === 'streaming' ? h('div', { class: 'small muted' }, `since ${fmtTime(Date.parse(c.streaming_since))}`) : null),
          h('td', {}, c.codec ?? '–', c.resolution ? h('div', { class: 'small muted' }, `${c.resolution[0]}×${c.resolution[1]} · ${c.fps != null ? c.fps.toFixed(1) : '–'} fps`) : null,
            c.motion && c.motion.state !== 'off' ? h('div', { class: 'small muted', 'data-motion': c.motion.state }, `motion: ${c.motion.state}${c.motion.stream ? ` on ${c.motion.stream}` : ''} · ${c.motion.cpu_percent.toFixed(1)} % CPU`) : null,
            me.role === 'admin' ? h('a', { class: 'small', href: `#motion?camera=${enc(c.name)}` }, 'Motion settings…') : null),
          h('td', {}, c.bitrate != null ? `${(c.bitrate / 1e6).toFixed(2)} Mbit/s` : '–'),
          h('td', {}, fmtBytes(c.bytes)),
          h('td', {}, c.days_kept != null ? `${c.days_kept < 1 ? fmtSecs(c.days_kept * 86400) : c.days_kept.toFixed(1) + ' days'}` : 'none yet'),
          h('td', {}, c.forecast_days != null ? `${c.forecast_days.toFixed(1)} days` : '–', h('div', { class: 'small muted' }, c.forecast_limit !== 'none' ? `limited by ${c.forecast_limit}` : ''))))))),
      h('p', { class: 'muted small' }, 'The forecast is how many days of footage each camera will keep at its current bitrate under the configured limits (max_age, max_bytes, and its share of the storage budget).'));
  };
  await load();
  const timer = setInterval(load, 5000);
  cleanup = () => clearInterval(timer);
}

// ---------------------------------------------------------------- users & account

async function usersPage() {
  const root = h('section', { class: 'page' }, h('h1', {}, 'Users'));
  main().replaceChildren(root);
  const err = h('div');
  root.append(err);
  let users, cams, sessions, tokens;
  try {
    [users, cams, sessions, tokens] = await Promise.all([get('users'), get('cameras'), get('sessions'), get('tokens')]);
  } catch (e) {
    err.append(errorBox(e));
    return;
  }
  cams = cams.cameras.map((c) => c.name);
  const reload = () => route();
  const act = (f) => async (...a) => {
    try { await f(...a); reload(); } catch (e) { toast(e.message, true); }
  };
  const camEditor = (current, onSave) => {
    const boxes = cams.map((c) => h('label', { class: 'chip' }, h('input', { type: 'checkbox', value: c, checked: current == null || current.includes(c), disabled: current == null }), c));
    const all = h('input', { type: 'checkbox', checked: current == null, onchange: () => {
      for (const b of boxes) b.querySelector('input').disabled = all.checked;
    } });
    return h('div', { class: 'cam-edit' }, h('label', { class: 'chip' }, all, 'All cameras (present and future)'), ...boxes,
      onSave ? h('button', { class: 'small', onclick: () => onSave(all.checked ? null : boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value)) }, 'Save cameras') : null);
  };
  const readCams = (editor) => {
    const [all, ...rest] = editor.querySelectorAll('input');
    return all.checked ? null : rest.filter((i) => i.checked).map((i) => i.value);
  };
  root.append(h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, ['User', 'Role', 'Cameras', '2FA', 'Created', ''].map((c) => h('th', {}, c)))),
    h('tbody', {}, users.users.map((u) => h('tr', { 'data-user': u.name },
      h('td', {}, u.name),
      h('td', {}, h('select', { onchange: act((e) => patch(`users/${enc(u.name)}`, { role: e.target.value })) },
        ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r, selected: r === u.role }, r)))),
      h('td', {}, u.role === 'admin' ? h('span', { class: 'muted' }, 'all (admin)') : h('details', {}, h('summary', {}, u.cameras == null ? 'all' : u.cameras.join(', ') || 'none'),
        camEditor(u.cameras, act((c) => patch(`users/${enc(u.name)}`, { cameras: c }))))),
      h('td', {}, u.totp ? 'on' : 'off'),
      h('td', {}, fmtTime(u.created_at * 1000)),
      h('td', {}, u.name === me.username ? null : h('button', { class: 'danger small', onclick: act(async () => {
        if (confirm(`Delete user ${u.name}? Their sessions and API tokens end now.`)) await del(`users/${enc(u.name)}`);
      }) }, 'Delete'))))))));

  const nName = h('input', { name: 'new-name', required: true, pattern: '[A-Za-z0-9._\\-]{1,64}' });
  const nPass = h('input', { name: 'new-password', type: 'password', minlength: 10, required: true, autocomplete: 'new-password' });
  const nRole = h('select', { name: 'new-role' }, ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r }, r)));
  // Least privilege: a new user sees no camera until one is ticked.
  const nCams = camEditor([]);
  root.append(h('h2', {}, 'Add a user'), h('form', { class: 'inline-form', onsubmit: act(async (e) => {
    e.preventDefault();
    await post('users', { name: nName.value, password: nPass.value, role: nRole.value, cameras: readCams(nCams) });
    toast(`User ${nName.value} created.`);
  }) }, h('label', {}, 'Name', nName), h('label', {}, 'Password', nPass), h('label', {}, 'Role', nRole),
  h('div', {}, h('div', { class: 'muted small' }, 'Cameras (viewers and operators)'), nCams),
  h('button', { class: 'primary', type: 'submit' }, 'Add user')));
  root.append(...sessionsAndTokens(sessions, tokens, true, act));
}

function sessionsAndTokens(sessions, tokens, everyone, act) {
  const tName = h('input', { name: 'token-name', placeholder: 'e.g. prometheus', required: true });
  const tRole = h('select', {}, ['viewer', 'operator', 'admin'].filter((r) => RANK[r] <= RANK[me.role]).map((r) => h('option', { value: r }, r)));
  const shown = h('div');
  return [
    h('h2', {}, everyone ? 'Sessions' : 'Your sessions'),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['User', 'From', 'Started', 'Expires', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, sessions.sessions.map((s) => h('tr', {},
        h('td', {}, s.user), h('td', {}, s.ip ?? '–'), h('td', {}, fmtTime(s.created_at * 1000)), h('td', {}, fmtTime(s.expires_at * 1000)),
        h('td', {}, s.id === sessions.current ? h('span', { class: 'muted' }, 'this one')
          : h('button', { class: 'small', onclick: act(() => del(`sessions/${s.id}`)) }, 'Revoke'))))))),
    h('h2', {}, everyone ? 'API tokens' : 'Your API tokens'),
    h('p', { class: 'muted small' }, 'For scripts and Prometheus: send Authorization: Bearer <token>. A token never has more rights than its user.'),
    tokens.tokens.length ? h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['User', 'Name', 'Role', 'Cameras', 'Created', 'Last used', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, tokens.tokens.map((t) => h('tr', {},
        h('td', {}, t.user), h('td', {}, t.name), h('td', {}, t.role), h('td', {}, t.cameras == null ? 'all' : t.cameras.join(', ')),
        h('td', {}, fmtTime(t.created_at * 1000)), h('td', {}, t.last_used_at ? fmtTime(t.last_used_at * 1000) : 'never'),
        h('td', {}, h('button', { class: 'small', onclick: act(() => del(`tokens/${t.id}`)) }, 'Revoke'))))))) : h('p', { class: 'muted' }, 'No API tokens.'),
    h('form', { class: 'inline-form', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await post('tokens', { name: tName.value, role: tRole.value });
        shown.replaceChildren(h('div', { class: 'notice' }, 'Copy this token now; it is not shown again: ', h('code', { class: 'secret' }, r.token)));
      } catch (x) { toast(x.message, true); }
    } }, h('label', {}, 'New token name', tName), h('label', {}, 'Role', tRole), h('button', { type: 'submit' }, 'Create token')),
    shown,
  ];
}

async function accountPage() {
  const root = h('section', { class: 'page' }, h('h1', {}, 'Your account'));
  main().replaceChildren(root);
  const act = (f) => async (...a) => { try { await f(...a); route(); } catch (e) { toast(e.message, true); } };
  root.append(h('p', {}, `Signed in as ${me.username}, role ${me.role}. Cameras: ${me.cameras == null ? 'all' : me.cameras.join(', ') || 'none'}.`));
  const cur = h('input', { name: 'current-password', type: 'password', autocomplete: 'current-password', required: true });
  const nw = h('input', { name: 'new-password', type: 'password', autocomplete: 'new-password', minlength: 10, required: true });
  const nw2 = h('input', { name: 'new-password2', type: 'password', autocomplete: 'new-password', minlength: 10, required: true });
  root.append(h('h2', {}, 'Password'), h('form', { class: 'inline-form', onsubmit: async (e) => {
    e.preventDefault();
    if (nw.value !== nw2.value) { toast('The two new passwords differ.', true); return; }
    try {
      const r = await post('me/password', { current: cur.value, new: nw.value });
      setCsrf(r.csrf_token);
      cur.value = nw.value = nw2.value = '';
      toast('Password changed. Every other session has been logged out.');
    } catch (x) { toast(x.message, true); }
  } }, h('label', {}, 'Current password', cur), h('label', {}, 'New password (10+ characters)', nw),
  h('label', {}, 'New password again', nw2), h('button', { type: 'submit' }, 'Change password')));
  const totp = h('div', { class: 'card' });
  root.append(h('h2', {}, 'Two-factor authentication'), totp);
  if (me.totp) {
    const code = h('input', { inputmode: 'numeric', placeholder: 'current code', required: true });
    totp.append(h('p', {}, 'On. Logging in asks for a code from your authenticator app.'),
      h('form', { class: 'inline-form', onsubmit: act(async (e) => { e.preventDefault(); await del('me/totp', { code: code.value }); toast('Two-factor authentication is off.'); }) },
        code, h('button', { type: 'submit', class: 'danger' }, 'Turn off')));
  } else {
    totp.append(h('p', {}, 'Off. Turn it on to require a code from an authenticator app (any TOTP app) at each login.'),
      h('button', { class: 'primary', onclick: async () => {
        try {
          const r = await post('me/totp');
          const code = h('input', { inputmode: 'numeric', autocomplete: 'one-time-code', placeholder: '123456', required: true });
          totp.replaceChildren(
            h('p', {}, 'Scan this code with your authenticator app (or enter the key below), then type the 6-digit code it shows.'),
            h('img', { class: 'qr', src: r.qr, alt: 'QR code for your authenticator app', width: 220, height: 220 }),
            h('p', {}, h('code', { class: 'secret', 'data-totp-secret': r.secret }, r.secret.match(/.{1,4}/g).join(' '))),
            h('p', { class: 'small muted' }, h('a', { href: r.uri }, 'Open in an authenticator app on this device')),
            h('form', { class: 'inline-form', onsubmit: async (e) => {
              e.preventDefault();
              try {
                const c = await post('me/totp/confirm', { code: code.value });
                me.totp = true;
                totp.replaceChildren(h('p', {}, 'Two-factor authentication is on. Keep these one-time recovery codes somewhere safe; each works once if you lose your phone:'),
                  h('pre', { class: 'secret', 'data-recovery': '' }, c.recovery_codes.join('\n')),
                  h('button', { onclick: () => route() }, 'Done'));
              } catch (x) { toast(x.message, true); }
            } }, code, h('button', { type: 'submit', class: 'primary' }, 'Confirm')));
        } catch (x) { toast(x.message, true); }
      } }, 'Turn on'));
  }
  try {
    const [sessions, tokens] = await Promise.all([get('sessions'), get('tokens')]);
    if (me.role === 'admin') {
      sessions.sessions = sessions.sessions.filter((s) => s.user === me.username);
      tokens.tokens = tokens.tokens.filter((t) => t.user === me.username);
    }
    root.append(...sessionsAndTokens(sessions, tokens, false, act));
  } catch (e) {
    root.append(errorBox(e));
  }
}

// ---------------------------------------------------------------- audit

async function auditPage(params) {
  const root = h('section', { class: 'page' }, h('h1', {}, 'Audit log'));
  main().replaceChildren(root);
  const f = {
    user: h('input', { name: 'user', value: params.get('user') ?? '', placeholder: 'any' }),
    action: h('input', { name: 'action', value: params.get('action') ?? '', placeholder: 'e.g. login* or export', list: 'actions' }),
    since: h('input', { name: 'since', type: 'datetime-local', value: params.get('since') ?? '' }),
    until: h('input', { name: 'until', type: 'datetime-local', value: params.get('until') ?? '' }),
  };
  const q = () => {
    const p = new URLSearchParams();
    if (f.user.value) p.set('user', f.user.value);
    if (f.action.value) p.set('action', f.action.value);
    if (f.since.value) p.set('since', Math.floor(new Date(f.since.value).getTime() / 1000));
    if (f.until.value) p.set('until', Math.floor(new Date(f.until.value).getTime() / 1000));
    return p;
  };
  const table = h('div', { class: 'table-wrap' });
  const csv = h('a', { class: 'button ghost', download: 'candor-audit.csv' }, 'Download CSV');
  const load = async () => {
    const p = q();
    csv.href = `/api/v1/audit?${p}&format=csv`;
    try {
      const r = await get(`audit?${p}`);
      table.replaceChildren(r.entries.length ? h('table', {},
        h('thead', {}, h('tr', {}, ['Time', 'User', 'Action', 'Detail'].map((c) => h('th', {}, c)))),
        h('tbody', {}, r.entries.map((e) => h('tr', {}, h('td', {}, fmtTime(e.at * 1000)), h('td', {}, e.user ?? '–'), h('td', {}, h('code', {}, e.action)), h('td', {}, e.detail)))))
        : h('div', { class: 'empty' }, 'No entries match these filters.'));
    } catch (e) {
      table.replaceChildren(errorBox(e));
    }
  };
  root.append(h('datalist', { id: 'actions' }, ['login', 'login_failed', 'login_locked', 'logout', 'live', 'playback', 'export', 'user_created', 'user_changed', 'user_deleted', 'session_revoked', 'token_created', 'token_revoked', 'totp_enabled', 'totp_disabled', 'password_changed'].map((a) => h('option', { value: a }))),
    h('form', { class: 'inline-form', onsubmit: (e) => { e.preventDefault(); load(); } },
      h('label', {}, 'User', f.user), h('label', {}, 'Action', f.action), h('label', {}, 'Since', f.since), h('label', {}, 'Until', f.until),
      h('button', { type: 'submit', class: 'primary' }, 'Filter'), csv),
    table);
  load();
}

// ---------------------------------------------------------------- events

const KIND_LABEL = { motion: 'Motion', tamper: 'Tamper', input: 'Input' };

function eventRow(e) {
  const start = Date.parse(e.start);
  const end = e.end ? Date.parse(e.end) : null;
  const play = `#playback?cams=${enc(e.camera)}&t=${start - 5000}&play=1`;
  const thumb = e.snapshot
    ? h('a', { href: play, class: 'thumb-link', title: 'Play from 5 s before' },
      h('img', { class: 'thumb', src: `/api/v1/events/${e.id}/thumbnail.jpg`, alt: `${e.kind} on ${e.camera}`, loading: 'lazy' }))
    : h('span', { class: 'thumb none' });
  const extra = [e.zone ? `zone ${e.zone}` : null, e.score != null ? `${(e.score * 100).toFixed(1)} %` : null].filter(Boolean).join(' · ');
  return h('tr', { 'data-event': e.id, 'data-kind': e.kind },
    h('td', {}, thumb),
    h('td', {}, fmtTime(start), extra ? h('div', { class: 'small muted' }, extra) : null),
    h('td', {}, e.camera),
    h('td', {}, h('span', { class: `tag ${e.kind}` }, KIND_LABEL[e.kind] ?? e.kind)),
    h('td', {}, end ? fmtSecs((end - start) / 1000) : h('strong', { class: 'live-tag' }, 'ongoing')),
    h('td', { class: 'small muted' }, e.source === 'onvif' ? 'camera' : e.source === 'motion' ? 'recorder' : e.source),
    h('td', { class: 'actions' }, h('a', { class: 'button ghost small', href: play }, 'Play'),
      RANK[me.role] >= RANK.operator ? pinButton(e) : (e.pinned ? h('span', { class: 'tag' }, 'kept') : null)));
}

/// Operators keep an event's footage (pre/post capture included) past
/// retention; the server enforces the role and audits it.
function pinButton(e) {
  const b = h('button', { class: `small ${e.pinned ? 'primary' : 'ghost'}`, 'aria-pressed': String(!!e.pinned),
    title: 'Keep this event\'s footage when retention deletes older footage' }, e.pinned ? 'Kept' : 'Keep');
  b.addEventListener('click', async () => {
    try {
      const r = await api('PUT', `events/${e.id}/pinned`, { pinned: !e.pinned });
      e.pinned = r.pinned;
      b.replaceWith(pinButton(e));
      toast(e.pinned ? 'Footage around this event is kept until you release it.' : 'Released: retention may delete this footage.');
    } catch (err) {
      toast(err.message);
    }
  });
  return b;
}

async function eventsPage(params) {
  const root = h('section', { class: 'page' });
  main().replaceChildren(root);
  let cams;
  try {
    cams = (await get('cameras')).cameras.map((c) => c.name);
  } catch (e) {
    root.append(errorBox(e));
    return;
  }
  const cam = h('select', { name: 'camera' }, h('option', { value: '' }, 'All cameras'), cams.map((c) => h('option', { value: c, selected: c === params.get('camera') }, c)));
  const kind = h('select', { name: 'kind' }, h('option', { value: '' }, 'All kinds'), Object.entries(KIND_LABEL).map(([k, l]) => h('option', { value: k, selected: k === params.get('kind') }, l)));
  const body = h('tbody');
  const table = h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, ['', 'Start', 'Camera', 'Kind', 'Duration', 'From', ''].map((c) => h('th', {}, c)))), body));
  const empty = h('div', { class: 'empty', hidden: true }, 'No events yet. Cameras with [cameras.motion] enabled = true, or with onvif = "…", in candor.toml report motion, tamper and inputs here as they happen.');
  const feed = h('span', { class: 'muted small' }, 'Live feed: connecting…');
  const load = async () => {
    const q = new URLSearchParams();
    if (cam.value) q.set('camera', cam.value);
    if (kind.value) q.set('kind', kind.value);
    try {
      const r = await get(`events?${q}`);
      body.replaceChildren(...r.events.map(eventRow));
      empty.hidden = r.events.length > 0;
    } catch (e) {
      body.replaceChildren(h('tr', {}, h('td', { colspan: 7 }, errorBox(e))));
    }
  };
  cam.addEventListener('change', load);
  kind.addEventListener('change', load);
  root.append(h('div', { class: 'bar' }, h('h1', {}, 'Events'), cam, kind, feed), table, empty);
  await load();
  // New events appear as they happen; an ended one updates its row.
  const es = new EventSource('/api/v1/events/live');
  es.onopen = () => { feed.textContent = 'Live feed: on'; };
  es.onerror = () => { feed.textContent = 'Live feed: reconnecting…'; };
  es.addEventListener('event', (m) => {
    const { event } = JSON.parse(m.data);
    if ((cam.value && event.camera !== cam.value) || (kind.value && event.kind !== kind.value)) return;
    const old = body.querySelector(`tr[data-event="${event.id}"]`);
    // An end message may not know of a snapshot an update brought, nor of a pin.
    if (old && !event.snapshot && old.querySelector('img.thumb')) event.snapshot = true;
    if (old && old.querySelector('[aria-pressed=true]')) event.pinned = true;
    const row = eventRow(event);
    if (old) old.replaceWith(row); else body.prepend(row);
    empty.hidden = true;
  });
  cleanup = () => es.close();
}

// ---------------------------------------------------------------- add a camera

/// Discover ONVIF cameras, look up a camera's streams with its password,
/// and add it: saved to candor.toml and recording at once.
function addCameraPage() {
  const root = h('section', { class: 'page' });
  main().replaceChildren(root);
  const probe = h('input', { type: 'text', placeholder: 'optional: IP:port to probe instead of the LAN multicast', 'aria-label': 'Probe address' });
  const found = h('div', { class: 'table-wrap', hidden: true });
  const xaddr = h('input', { type: 'url', name: 'onvif', placeholder: 'http://192.168.1.64/onvif/device_service', 'aria-label': 'ONVIF device service' });
  const user = h('input', { type: 'text', name: 'username', autocomplete: 'off', 'aria-label': 'Camera user' });
  const pass = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', 'aria-label': 'Camera password' });
  const described = h('div', { class: 'small muted' });
  const name = h('input', { type: 'text', name: 'name', required: true, pattern: '[A-Za-z0-9_\\-]{1,64}', placeholder: 'e.g. front-door', 'aria-label': 'Camera name' });
  const url = h('input', { type: 'text', name: 'url', required: true, placeholder: 'rtsp://192.168.1.64:554/Streaming/Channels/101', 'aria-label': 'Main stream URL' });
  const sub = h('input', { type: 'text', name: 'sub_url', placeholder: 'optional: rtsp://…/102', 'aria-label': 'Sub stream URL' });
  const motion = h('input', { type: 'checkbox', name: 'motion', checked: true });
  const slug = (t) => (t ?? '').toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64);
  const discover = async (btn) => {
    btn.disabled = true;
    found.hidden = false;
    found.replaceChildren(h('p', { class: 'muted' }, 'Searching the network for ONVIF cameras…'));
    try {
      const r = await post('discover', probe.value.trim() ? { probe: probe.value.trim() } : {});
      if (!r.cameras.length) {
        found.replaceChildren(h('p', { class: 'muted' }, 'No ONVIF camera answered. Check that ONVIF is enabled on the camera and that it is on this network segment, or enter its address below.'));
        return;
      }
      found.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Hardware', 'Address', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, r.cameras.map((c) => h('tr', { 'data-found': c.xaddrs[0] ?? '' },
          h('td', {}, c.name ?? '–'), h('td', {}, c.hardware ?? '–'), h('td', {}, h('code', {}, c.xaddrs[0] ?? 'no usable address')),
          h('td', {}, c.xaddrs[0] ? h('button', { type: 'button', class: 'small', onclick: () => {
            xaddr.value = c.xaddrs[0];
            if (!name.value) name.value = slug(c.name);
            user.focus();
          } }, 'Use') : null))))));
    } catch (e) {
      found.replaceChildren(errorBox(e));
    } finally {
      btn.disabled = false;
    }
  };
  const lookUp = async (e) => {
    e.preventDefault();
    described.textContent = 'Asking the camera…';
    try {
      const d = await post('discover/describe', { xaddr: xaddr.value.trim(), username: user.value, password: pass.value });
      described.replaceChildren(`${d.manufacturer} ${d.model}: `, d.profiles.map((p) => `${p.name} ${p.encoding ?? ''} ${p.width ?? '?'}×${p.height ?? '?'}`).join(', '));
      if (d.main) url.value = d.main;
      if (d.sub) sub.value = d.sub;
    } catch (err) {
      described.replaceChildren(errorBox(err));
    }
  };
  const add = async (e) => {
    e.preventDefault();
    try {
      const body = {
        name: name.value.trim(), url: url.value.trim(), username: user.value || null, password: pass.value || null,
        sub_url: sub.value.trim() || null, onvif: xaddr.value.trim() || null, motion: motion.checked,
      };
      try {
        await post('cameras', body);
      } catch (err) {
        // A stream on another host than the camera gets the password only
        // if the admin confirms it.
        if (err.code !== 'other_host' || !confirm(`${err.message}\n\nSend the camera's password to this address?`)) throw err;
        await post('cameras', { ...body, other_host: true });
      }
      toast(`${name.value} added: saved to the configuration and recording.`);
      location.hash = '#system';
    } catch (err) {
      toast(err.message, true);
    }
  };
  root.append(
    h('div', { class: 'bar' }, h('h1', {}, 'Add a camera'), h('a', { class: 'button ghost small', href: '#system' }, 'Back')),
    h('div', { class: 'card' }, h('h2', {}, '1. Find it'),
      h('div', { class: 'inline-form' }, h('button', { type: 'button', class: 'primary', onclick: (e) => discover(e.currentTarget) }, 'Discover cameras'), probe),
      found),
    h('form', { class: 'card', onsubmit: lookUp }, h('h2', {}, '2. Its streams (ONVIF)'),
      h('label', {}, 'Device service', xaddr), h('label', {}, 'User', user), h('label', {}, 'Password', pass),
      h('button', { type: 'submit' }, 'Look up streams'), described),
    h('form', { class: 'card', onsubmit: add }, h('h2', {}, '3. Add it'),
      h('label', {}, 'Name', name), h('label', {}, 'Main stream', url), h('label', {}, 'Sub stream (for motion detection)', sub),
      h('label', { class: 'check' }, motion, 'Detect motion'),
      h('p', { class: 'small muted' }, 'The user and password above go into the camera\'s RTSP address in candor.toml; they are never shown again or logged.'),
      h('button', { type: 'submit', class: 'primary' }, 'Add camera')));
}

// ---------------------------------------------------------------- motion settings

/// Draw zones (where motion counts) and masks (never analysed) on what the
/// camera sees now, set sensitivity and size, save to candor.toml.
async function motionPage(params) {
  const cam = params.get('camera') ?? '';
  const root = h('section', { class: 'page' });
  main().replaceChildren(root);
  let m;
  try {
    m = await get(`cameras/${enc(cam)}/motion`);
  } catch (e) {
    root.append(errorBox(e));
    return;
  }
  const zones = m.zones.map((z) => ({ name: z.name, points: z.points }));
  const masks = m.masks.map((p) => p);
  let drawing = [];
  const mode = h('select', { 'aria-label': 'Draw' }, h('option', { value: 'zone' }, 'Draw a zone (motion counts here)'), h('option', { value: 'mask' }, 'Draw a mask (ignored area)'));
  const zoneName = h('input', { type: 'text', placeholder: 'zone name, e.g. driveway', pattern: '[A-Za-z0-9_\\-]{1,32}', 'aria-label': 'Zone name' });
  const overlay = svg('svg', { class: 'motion-overlay', viewBox: '0 0 1 1', preserveAspectRatio: 'none' });
  const img = h('img', { class: 'motion-snap', alt: `What ${cam} sees now`, src: `/api/v1/cameras/${enc(cam)}/snapshot.jpg?t=${Date.now()}` });
  const snapErr = h('div', { class: 'small bad', hidden: true });
  img.addEventListener('error', () => { snapErr.hidden = false; snapErr.textContent = 'No picture from the camera (is it streaming H.264?). You can still draw on the blank frame.'; });
  const stage = h('div', { class: 'motion-stage' }, img, overlay);
  // The stage takes the picture's shape, so normalised points land where drawn.
  img.addEventListener('load', () => { stage.style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`; });
  const list = h('ul', { class: 'motion-list' });
  const poly = (pts, cls) => svg('polygon', { class: cls, points: pts.map(([x, y]) => `${x},${y}`).join(' ') });
  const redraw = () => {
    overlay.replaceChildren(
      ...masks.map((p) => poly(p, 'mask')),
      ...zones.map((z) => poly(z.points, 'zone')),
      drawing.length ? svg('polyline', { class: 'drawing', points: drawing.map(([x, y]) => `${x},${y}`).join(' ') }) : null,
      ...drawing.map(([x, y]) => svg('circle', { class: 'vertex', cx: x, cy: y, r: 0.008 })));
    list.replaceChildren(
      ...zones.map((z, i) => h('li', { 'data-zone': z.name }, h('span', { class: 'tag motion' }, 'zone'), ` ${z.name} (${z.points.length} points) `,
        h('button', { class: 'small ghost', type: 'button', onclick: () => { zones.splice(i, 1); redraw(); } }, 'Remove'))),
      ...masks.map((p, i) => h('li', { 'data-mask': i }, h('span', { class: 'tag' }, 'mask'), ` ${p.length} points `,
        h('button', { class: 'small ghost', type: 'button', onclick: () => { masks.splice(i, 1); redraw(); } }, 'Remove'))));
  };
  overlay.addEventListener('click', (e) => {
    const r = overlay.getBoundingClientRect();
    const x = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    const y = Math.min(1, Math.max(0, (e.clientY - r.top) / r.height));
    drawing.push([Math.round(x * 1e4) / 1e4, Math.round(y * 1e4) / 1e4]);
    redraw();
  });
  const finish = () => {
    if (drawing.length < 3) { toast('A shape needs at least 3 points: click on the picture.'); return; }
    if (mode.value === 'zone') {
      const name = zoneName.value.trim();
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(name)) { toast('Name the zone first: letters, digits, _ or -.'); zoneName.focus(); return; }
      if (zones.some((z) => z.name === name)) { toast(`There is already a zone named ${name}.`); return; }
      zones.push({ name, points: drawing });
      zoneName.value = '';
    } else {
      masks.push(drawing);
    }
    drawing = [];
    redraw();
  };
  const enabled = h('input', { type: 'checkbox', checked: m.enabled, name: 'enabled' });
  const sens = h('input', { type: 'range', min: 1, max: 100, value: m.sensitivity, name: 'sensitivity' });
  const sensOut = h('output', {}, String(m.sensitivity));
  sens.addEventListener('input', () => { sensOut.textContent = sens.value; });
  const minSize = h('input', { type: 'number', min: 0.01, max: 50, step: 0.01, value: m.min_size, name: 'min_size' });
  const save = async () => {
    try {
      await api('PUT', `cameras/${enc(cam)}/motion`, {
        enabled: enabled.checked, sensitivity: Number(sens.value), min_size: Number(minSize.value),
        fps: m.fps, hold: m.hold, zones, masks,
      });
      toast(`Saved to the recorder's configuration and applied to ${cam}.`);
    } catch (e) {
      toast(e.message, true);
    }
  };
  root.append(
    h('div', { class: 'bar' }, h('h1', {}, `Motion: ${cam}`), h('a', { class: 'button ghost small', href: '#system' }, 'Back')),
    h('p', { class: 'muted' }, 'Click on the picture to place points, then finish the shape. Zones: only motion touching a zone counts (none: anywhere). Masks: never analysed (trees, roads, screens).'),
    h('div', { class: 'motion-editor' },
      h('div', {}, stage, snapErr),
      h('div', { class: 'motion-side' },
        h('div', { class: 'inline-form' }, mode, zoneName),
        h('div', { class: 'inline-form' },
          h('button', { type: 'button', class: 'primary', onclick: finish }, 'Finish shape'),
          h('button', { type: 'button', class: 'ghost', onclick: () => { drawing.pop(); redraw(); } }, 'Undo point'),
          h('button', { type: 'button', class: 'ghost', onclick: () => { drawing = []; redraw(); } }, 'Cancel shape')),
        list,
        h('label', { class: 'check' }, enabled, 'Motion detection on'),
        h('label', {}, 'Sensitivity ', sens, ' ', sensOut),
        h('label', {}, 'Smallest motion, % of the picture ', minSize),
        h('button', { type: 'button', class: 'primary', onclick: save }, 'Save'))));
  redraw();
}

// ---------------------------------------------------------------- cloud

const SHARING_LABEL = {
  online_only: 'Online or offline only',
  health: 'Health: cameras, recording, disk',
  health_and_events: 'Health and event details in alarms',
};

async function cloudPage(params) {
  const root = h('section', { class: 'page' }, h('h1', {}, 'Cloud'));
  main().replaceChildren(root);
  const box = h('div', { id: 'cloud-state' });
  const ledgerBox = h('div', {});
  root.append(box, h('h2', {}, 'Egress ledger'),
    h('p', { class: 'muted' }, 'Every message this recorder sent to the cloud, as sent, and every connection with the bytes it put on the wire. Cameras, MQTT and webhooks you configured yourself are not in it.'),
    ledgerBox);
  let timer = null;
  cleanup = () => clearTimeout(timer);
  const render = (s) => {
    clearTimeout(timer);
    if (s.configured === false) {
      box.replaceChildren(h('div', { class: 'empty' },
        'The cloud is off, as it is by default: this recorder connects to nothing but its cameras and the integrations in candor.toml. To use a Candor cloud, add a [cloud] section with its address to candor.toml and restart.'));
      return;
    }
    const rows = [
      h('p', {}, 'Cloud: ', h('code', {}, s.address), ' · site name ', h('strong', {}, s.name)),
    ];
    if (s.paired) {
      rows.push(h('p', { 'data-testid': 'cloud-link' },
        h('span', { class: `dot ${s.connected ? 'ok' : 'bad'}` }), s.connected ? 'Connected' : 'Not connected',
        ` · paired ${fmtTime(Date.parse(s.paired.paired_at))} as site `, h('code', {}, s.paired.site)));
      const sel = h('select', { name: 'sharing' }, Object.entries(SHARING_LABEL).map(([k, v]) => h('option', { value: k, selected: k === s.sharing }, v)));
      const priv = h('input', { type: 'checkbox', name: 'private_alarms', checked: s.private_alarms });
      const save = async (sharing) => {
        try { render(await api('PUT', 'cloud/sharing', { sharing: sharing ?? sel.value, private_alarms: priv.checked })); toast('Saved to candor.toml and applied.'); } catch (e) { toast(e.message, true); }
      };
      rows.push(h('h2', {}, 'What this site shares'),
        h('div', { class: 'inline-form' }, h('label', {}, 'Status ', sel),
          h('label', { class: 'check' }, priv, 'Private alarms (the phone shows only “alarm at ', s.name, '”)'),
          h('button', { type: 'button', class: 'primary', onclick: () => save() }, 'Save')));
      if (s.sharing_request) {
        rows.push(h('div', { class: 'notice', 'data-testid': 'sharing-request' },
          `The cloud asks to change sharing to “${SHARING_LABEL[s.sharing_request]}”. `,
          h('button', { type: 'button', class: 'primary small', onclick: () => save(s.sharing_request) }, 'Accept')));
      }
      rows.push(h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (!confirm('Unpair from the cloud? This is final: the recorder forgets its key and the cloud refuses it. Pairing again makes a new key.')) return;
        try { render(await post('cloud/unpair')); } catch (e) { toast(e.message, true); }
      } }, 'Unpair'));
    } else if (s.pairing) {
      const p = s.pairing;
      if (!p.code) rows.push(h('p', {}, 'Asking the cloud for a code…'));
      else if (!p.confirmation) {
        rows.push(h('p', {}, 'In the cloud app, choose “Add site” and enter this code, or scan it with the phone:'),
          h('div', { class: 'pair-code', 'data-testid': 'pair-code' }, p.code),
          s.qr ? h('img', { src: s.qr, alt: 'QR code of the pairing link', width: 200, height: 200 }) : null,
          h('p', { class: 'muted' }, `Single use; expires in ${Math.round((p.expires_in ?? 600) / 60)} minutes.`));
      } else {
        rows.push(h('p', {}, h('strong', {}, p.claimed_by), ' entered the code. The cloud app must show the same confirmation code:'),
          h('div', { class: 'pair-code', 'data-testid': 'confirmation' }, p.confirmation),
          h('p', { class: 'muted' }, 'If it differs, someone else entered the code: cancel.'),
          h('div', { class: 'inline-form' },
            h('button', { type: 'button', class: 'primary', id: 'pair-confirm', onclick: async () => { try { render(await post('cloud/pair/confirm')); } catch (e) { toast(e.message, true); } } }, 'Confirm'),
            h('button', { type: 'button', class: 'ghost', onclick: async () => { render(await post('cloud/pair/cancel')); } }, 'Cancel')));
      }
    } else {
      rows.push(h('p', {}, 'Not connected. Pairing connects this recorder to the cloud above, outbound only, with a key it makes itself; you choose what it shares.'),
        s.last_error ? h('p', { class: 'muted' }, 'Last: ', s.last_error) : null,
        h('button', { type: 'button', class: 'primary', id: 'connect-cloud', onclick: async () => { try { render(await post('cloud/pair')); } catch (e) { toast(e.message, true); } } }, 'Connect to cloud'));
    }
    if (s.paired && s.last_error && !s.connected) rows.push(h('p', { class: 'muted' }, 'Last error: ', s.last_error));
    box.replaceChildren(...rows);
    // The ledger grows with the link: refresh it with the state (filters kept).
    if (Date.now() - (render.loaded ?? 0) > 4000) { render.loaded = Date.now(); load(); }
    timer = setTimeout(async () => { try { render(await get('cloud')); } catch { /* next time */ } }, s.pairing ? 1000 : 5000);
  };
  const f = {
    kind: h('input', { name: 'kind', value: params.get('kind') ?? '', placeholder: 'any', list: 'egress-kinds' }),
    since: h('input', { name: 'since', type: 'datetime-local' }),
    until: h('input', { name: 'until', type: 'datetime-local' }),
  };
  const csv = h('a', { class: 'button ghost', download: 'candor-egress.csv' }, 'Download CSV');
  const table = h('div', { class: 'table-wrap' });
  const load = async () => {
    const p = new URLSearchParams();
    if (f.kind.value) p.set('kind', f.kind.value);
    if (f.since.value) p.set('since', iso(new Date(f.since.value).getTime()));
    if (f.until.value) p.set('until', iso(new Date(f.until.value).getTime()));
    csv.href = `/api/v1/egress?${p}&format=csv`;
    try {
      const r = await get(`egress?${p}`);
      table.replaceChildren(r.entries.length ? h('div', {},
        h('p', { 'data-testid': 'egress-total' }, `${r.entries.length} entries, ${r.total_bytes} bytes of messages.`),
        h('table', { id: 'egress' },
          h('thead', {}, h('tr', {}, ['Time', 'To', 'Kind', 'Bytes', 'What'].map((c) => h('th', {}, c)))),
          h('tbody', {}, r.entries.slice(-500).reverse().map((e) => h('tr', { 'data-kind': e.kind },
            h('td', {}, fmtTime(Date.parse(e.at))), h('td', {}, e.destination), h('td', {}, h('code', {}, e.kind)),
            h('td', {}, String(e.bytes)), h('td', {}, h('code', { class: 'small' }, e.summary)))))))
        : h('div', { class: 'empty' }, 'Nothing has been sent to a cloud.'));
    } catch (e) {
      table.replaceChildren(errorBox(e));
    }
  };
  ledgerBox.append(h('datalist', { id: 'egress-kinds' }, ['connect', 'disconnect', 'hello', 'status', 'alarm', 'pong', 'ack_recorded', 'pair_start', 'pair_confirm', 'unpair'].map((k) => h('option', { value: k }))),
    h('form', { class: 'inline-form', onsubmit: (e) => { e.preventDefault(); load(); } },
      h('label', {}, 'Kind', f.kind), h('label', {}, 'Since', f.since), h('label', {}, 'Until', f.until),
      h('button', { type: 'submit', class: 'primary' }, 'Filter'), csv),
    table);
  render(await get('cloud'));
}

// ---------------------------------------------------------------- router

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const hash = location.hash.slice(1);
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query ?? '');
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
  const [page, arg] = path.split('/');
  for (const a of document.querySelectorAll('#top a[data-page]')) a.classList.toggle('active', a.dataset.page === (page || 'live'));
  try {
    switch (page) {
      case 'playback': await playbackPage(params); break;
      case 'events': await eventsPage(params); break;
      case 'system': await systemPage(); break;
      case 'motion': await motionPage(params); break;
      case 'add-camera': addCameraPage(); break;
      case 'users': await usersPage(); break;
      case 'audit': await auditPage(params); break;
      case 'cloud': await cloudPage(params); break;
      case 'account': await accountPage(); break;
      default: await livePage(arg ? decodeURIComponent(arg) : null);
    }
  } catch (e) {
    if (e.status === 401) { me = null; route(); return; }
    main().replaceChildren(errorBox(e));
  }
}

async function start() {
  document.getElementById('logout').addEventListener('click', async () => {
    try { await post('logout'); } catch { /* already gone */ }
    me = null;
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

start();
