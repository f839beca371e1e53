// A share link (#share=<token>): a clip or one camera's live view for
// someone without an account. The token stays in the fragment and goes to
// the recorder only in a header (or, for live, as a WebSocket subprotocol).

import { h } from '../dom.js';
import { fmtTime } from '../common.js';
import { LivePlayer } from '../live.js';

const HEADER = 'X-Candor-Share';

export async function sharePage(token) {
  const root = h('section', { class: 'page share', 'data-testid': 'share' });
  const fail = (msg) => root.replaceChildren(h('h1', {}, 'Shared video'), h('div', { class: 'error-box' }, msg));
  let s;
  try {
    const r = await fetch('/api/v1/share', { headers: { [HEADER]: token } });
    if (r.status === 404) { fail('This link does not work (any more): it expired or was revoked. Ask whoever sent it for a new one.'); return root; }
    if (!r.ok) { fail(`The recorder answered HTTP ${r.status}.`); return root; }
    s = await r.json();
  } catch {
    fail('The recorder is not reachable.');
    return root;
  }
  const video = h('video', { controls: true, muted: true, autoplay: true, playsinline: true, 'data-camera': s.camera, 'data-testid': 'share-video' });
  video.muted = true;
  const what = s.kind === 'clip'
    ? `A clip of ${s.camera}, ${fmtTime(Date.parse(s.from))} → ${new Date(Date.parse(s.to)).toLocaleTimeString()}`
    : `${s.camera}, live`;
  const status = h('p', { class: 'muted' }, 'Loading…');
  root.replaceChildren(h('h1', {}, 'Shared video'), h('p', {}, what), h('div', { class: 'grid single' }, h('div', { class: 'tile' }, video)), status,
    h('p', { class: 'muted small' }, `This link works until ${fmtTime(Date.parse(s.expires_at))}. Each opening is recorded on the recorder.`));
  if (s.kind === 'clip') {
    try {
      const r = await fetch('/api/v1/share/clip.mp4', { headers: { [HEADER]: token } });
      if (!r.ok) throw new Error(r.status === 404 ? 'no footage for this clip (it may have been deleted by retention)' : `HTTP ${r.status}`);
      video.src = URL.createObjectURL(await r.blob());
      status.textContent = '';
    } catch (e) {
      status.textContent = `The clip could not be loaded: ${e.message}.`;
    }
  } else {
    const p = new LivePlayer(video, s.camera, (st, detail) => {
      status.textContent = st === 'playing' ? '' : (detail ?? st);
    }, token);
    p.start();
  }
  return root;
}
