// Live: every camera the user may see, or one camera large.

import { api, get, enc } from '../api.js';
import { LivePlayer } from '../live.js';
import { h } from '../dom.js';
import { RANK, me, onLeave, pageWithCameras, toast, errorBox } from '../common.js';
import { makeShare } from './sharing.js';

export async function livePage(single) {
  const { root, cams } = await pageWithCameras();
  if (!cams) return;
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
  if (single && RANK[me.role] >= RANK.operator) {
    const shown = h('div', {});
    root.append(h('div', { class: 'controls' }, h('button', { type: 'button', class: 'ghost', 'data-testid': 'share-live',
      onclick: () => makeShare(single, null, shown) }, 'Share live view…')), shown, outputsPanel(single));
  }
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
  onLeave(() => {
    clearInterval(timer);
    players.forEach((p) => p.stop());
  });
}

// The camera's relay outputs (siren, gate, light), for operators: each
// switch is confirmed first, acts on the site at once, and is audited.
function outputsPanel(camera) {
  const list = h('div', { class: 'inline-form', 'data-testid': 'outputs' });
  const show = h('button', { type: 'button', class: 'ghost', 'data-testid': 'show-outputs' }, 'Outputs (siren, gate, light)…');
  show.addEventListener('click', async () => {
    show.disabled = true;
    try {
      const r = await get(`cameras/${enc(camera)}/outputs`);
      if (!r.outputs.length) list.replaceChildren(h('span', { class: 'muted' }, 'This camera reports no relay outputs.'));
      else list.replaceChildren(...r.outputs.map((o) => h('span', { class: 'output' }, h('strong', {}, o.token), ' ',
        ...[true, false].map((active) => h('button', {
          type: 'button', class: active ? 'danger small' : 'ghost small', 'data-output': o.token, 'data-active': String(active),
          onclick: async () => {
            if (!confirm(`${active ? 'Activate' : 'Deactivate'} output “${o.token}” of ${camera}? This acts on the site now and is recorded in the audit log.`)) return;
            try {
              await api('POST', `cameras/${enc(camera)}/outputs`, { token: o.token, active });
              toast(`${o.token}: ${active ? 'activated' : 'deactivated'}.`);
            } catch (e) { toast(e.message, true); }
          },
        }, active ? 'Activate' : 'Deactivate')))));
    } catch (e) {
      list.replaceChildren(errorBox(e));
    } finally {
      show.disabled = false;
    }
  });
  return h('section', { class: 'outputs' }, h('h2', {}, 'Outputs'), show, list);
}
