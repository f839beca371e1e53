// Making and revoking share links (operators): a clip or a camera's live
// view for someone without an account, for a limited time.

import { api, get, iso, enc } from '../api.js';
import { h } from '../dom.js';
import { toast, fmtTime } from '../common.js';

/// Asks how long, makes the link, and shows it once (only its hash stays
/// on the recorder). `range`: [from, to] in ms for a clip, null for live.
export async function makeShare(camera, range, shown) {
  const hours = prompt(`Share ${range ? 'this clip' : 'the live view'} of ${camera} with someone without an account.\nThe link works for how many hours? (at most 168, 7 days)`, '24');
  if (hours == null) return;
  const secs = Math.round(Number(hours) * 3600);
  const body = { camera, expires_in_secs: secs, note: '' };
  if (range) { body.from = iso(range[0]); body.to = iso(range[1]); }
  try {
    const r = await api('POST', 'shares', body);
    const url = `${location.origin}/${r.link}`;
    const field = h('input', { type: 'text', readonly: true, value: url, size: 60, 'data-testid': 'share-link' });
    shown.replaceChildren(h('div', { class: 'notice' },
      `Link (shown once; works until ${fmtTime(Date.parse(r.expires_at))}, revocable below): `, field, ' ',
      h('button', { type: 'button', class: 'small', onclick: async () => { field.select(); try { await navigator.clipboard.writeText(url); toast('Copied.'); } catch { /* selected: copy by hand */ } } }, 'Copy')));
    field.select();
  } catch (e) {
    toast(e.message, true);
  }
}

/// The links of these cameras, with Revoke.
export function sharesList(cameras) {
  const box = h('div', { 'data-testid': 'shares' });
  const load = async () => {
    let l;
    try { l = (await get('shares')).shares.filter((s) => !cameras || cameras.includes(s.camera)); } catch { return; }
    const live = l.filter((s) => !s.revoked_at && Date.parse(s.expires_at) > Date.now());
    box.replaceChildren(live.length
      ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Shared', 'Camera', 'Until', 'Views', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, live.map((s) => h('tr', { 'data-share': s.id },
          h('td', {}, s.kind === 'clip' ? `Clip ${fmtTime(Date.parse(s.from))}` : 'Live view'),
          h('td', {}, s.camera), h('td', {}, fmtTime(Date.parse(s.expires_at))), h('td', {}, String(s.views)),
          h('td', {}, h('button', { type: 'button', class: 'ghost small', onclick: async () => {
            if (!confirm('Revoke this link? It stops working at once.')) return;
            try { await api('DELETE', `shares/${enc(String(s.id))}`); toast('Revoked.'); load(); } catch (e) { toast(e.message, true); }
          } }, 'Revoke')))))))
      : h('p', { class: 'muted small' }, 'No share links.'));
  };
  load();
  box.reload = load;
  return box;
}
