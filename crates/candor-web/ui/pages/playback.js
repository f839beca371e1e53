// Playback: the chosen cameras in step on one timeline, frame stepping,
// and MP4 export of a marked range.

import { get, iso, enc, ApiError } from '../api.js';
import { Timeline } from '../timeline.js';
import { h } from '../dom.js';
import { onLeave, toast, errorBox, fmtBytes, fmtTime, fmtSecs, pageWithCameras, RANK, me } from '../common.js';
import { makeShare, sharesList } from './sharing.js';

const WINDOW_MS = 30 * 60e3;

export async function playbackPage(params) {
  const { root, cams } = await pageWithCameras();
  if (!cams) return;
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
  const mayShare = RANK[me.role] >= RANK.operator;
  const shareShown = h('div', {});
  const shares = mayShare ? sharesList(null) : null;
  const shareBtn = mayShare ? h('button', { disabled: true, class: 'ghost', 'data-testid': 'share-clip', title: 'A link to this clip of the first selected camera, for someone without an account',
    onclick: async () => { if (sel && selected[0]) { await makeShare(selected[0], sel, shareShown); shares.reload(); } } }, 'Share clip…') : null;
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
      selText, exportBtn, shareBtn, progress),
    shareShown,
    info,
    shares ? h('section', {}, h('h2', {}, 'Share links'), shares) : null);

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
    if (shareBtn) shareBtn.disabled = (b - a) > 15 * 60e3;
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
          .map((e) => ({ start: Date.parse(e.start), end: e.end ? Date.parse(e.end) : null, label: e.label, title: `${e.label ?? e.kind} ${e.start}` }))
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
  onLeave(() => {
    document.removeEventListener('keydown', keys);
    cancelAnimationFrame(raf);
    videos.forEach((v) => { v.pause(); v.removeAttribute('src'); v.load(); });
  });
  loadDay();
}

function localDate(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}
