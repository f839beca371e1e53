// Events: objects, motion, tamper and inputs, with a live feed of new ones.

import { api, get, enc } from '../api.js';
import { h } from '../dom.js';
import { RANK, me, main, onLeave, toast, errorBox, fmtTime, fmtSecs } from '../common.js';

const KIND_LABEL = { object: 'Object', motion: 'Motion', tamper: 'Tamper', input: 'Input' };
export const LABELS = ['person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck'];
const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

function eventRow(e) {
  const start = Date.parse(e.start);
  const end = e.end ? Date.parse(e.end) : null;
  const play = `#playback?cams=${enc(e.camera)}&t=${start - 5000}&play=1`;
  const thumb = e.snapshot
    ? h('a', { href: play, class: 'thumb-link', title: 'Play from 5 s before' },
      h('img', { class: 'thumb', src: `/api/v1/events/${e.id}/thumbnail.jpg`, alt: `${e.kind} on ${e.camera}`, loading: 'lazy' }))
    : h('span', { class: 'thumb none' });
  const zones = e.zones?.length ? `zones ${e.zones.join(', ')}` : e.zone ? `zone ${e.zone}` : null;
  const extra = [zones, e.score != null ? `${(e.score * 100).toFixed(1)} %` : null].filter(Boolean).join(' · ');
  return h('tr', { 'data-event': e.id, 'data-kind': e.kind },
    h('td', {}, thumb),
    h('td', {}, fmtTime(start), extra ? h('div', { class: 'small muted' }, extra) : null),
    h('td', {}, e.camera),
    h('td', {}, h('span', { class: `tag ${e.kind}`, 'data-label': e.label ?? null }, e.label ? cap(e.label) : KIND_LABEL[e.kind] ?? e.kind),
      e.snapshot && e.label ? h('a', { class: 'small muted', href: `/api/v1/events/${e.id}/clean.jpg`, target: '_blank', rel: 'noopener', title: 'The picture without the box' }, ' clean') : null),
    h('td', {}, end ? fmtSecs((end - start) / 1000) : h('strong', { class: 'live-tag' }, 'ongoing')),
    h('td', { class: 'small muted' }, e.source === 'onvif' ? 'camera' : e.source === 'motion' || e.source === 'object' ? 'recorder' : e.source),
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

export async function eventsPage(params) {
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
  const label = h('select', { name: 'label' }, h('option', { value: '' }, 'All objects'), LABELS.map((l) => h('option', { value: l, selected: l === params.get('label') }, cap(l))));
  const body = h('tbody');
  const table = h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, ['', 'Start', 'Camera', 'Kind', 'Duration', 'From', ''].map((c) => h('th', {}, c)))), body));
  const empty = h('div', { class: 'empty', hidden: true }, 'No events yet. Cameras with [cameras.motion] enabled = true, or with onvif = "…", in candor.toml report motion, tamper and inputs here as they happen.');
  const feed = h('span', { class: 'muted small' }, 'Live feed: connecting…');
  const load = async () => {
    const q = new URLSearchParams();
    if (cam.value) q.set('camera', cam.value);
    if (kind.value) q.set('kind', kind.value);
    if (label.value) q.set('label', label.value);
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
  label.addEventListener('change', load);
  root.append(h('div', { class: 'bar' }, h('h1', {}, 'Events'), cam, kind, label, feed), table, empty);
  await load();
  // New events appear as they happen; an ended one updates its row.
  const es = new EventSource('/api/v1/events/live');
  es.onopen = () => { feed.textContent = 'Live feed: on'; };
  es.onerror = () => { feed.textContent = 'Live feed: reconnecting…'; };
  es.addEventListener('event', (m) => {
    const { event } = JSON.parse(m.data);
    if ((cam.value && event.camera !== cam.value) || (kind.value && event.kind !== kind.value)
      || (label.value && event.label !== label.value)) return;
    const old = body.querySelector(`tr[data-event="${event.id}"]`);
    // An end message may not know of a snapshot an update brought, nor of a pin.
    if (old && !event.snapshot && old.querySelector('img.thumb')) event.snapshot = true;
    if (old && old.querySelector('[aria-pressed=true]')) event.pinned = true;
    const row = eventRow(event);
    if (old) old.replaceWith(row); else body.prepend(row);
    empty.hidden = true;
  });
  onLeave(() => es.close());
}
