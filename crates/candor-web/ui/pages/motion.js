// Motion and object settings (admins): zones and masks drawn on the
// camera's picture; which objects to detect and which raise alarms where.

import { api, get, enc } from '../api.js';
import { h, s as svg } from '../dom.js';
import { main, toast, errorBox } from '../common.js';

/// Draw zones (where motion counts) and masks (never analysed) on what the
/// camera sees now, set sensitivity and size, save to candor.toml.
export async function motionPage(params) {
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
    objects?.redraw();
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
  const objects = await objectsForm(cam, zones);
  const save = async () => {
    try {
      const motion = () => api('PUT', `cameras/${enc(cam)}/motion`, {
        enabled: enabled.checked, sensitivity: Number(sens.value), min_size: Number(minSize.value),
        fps: m.fps, hold: m.hold, zones, masks,
      });
      // Each save is checked against the whole file, so the order matters:
      // motion first when objects need what it adds (motion on, a new
      // zone), objects first when motion takes away what they use.
      if (!objects) {
        await motion();
      } else {
        const first = await motion().then(() => null, (e) => e);
        await objects.save();
        if (first) await motion();
      }
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
        objects ? objects.el : null,
        h('button', { type: 'button', class: 'primary', onclick: save }, 'Save'))));
  redraw();
}

const LABELS = ['person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck'];

/// Object detection: which labels, how sure, what raises alarms, and which
/// zones require which labels. `zones` is the motion editor's live list.
async function objectsForm(cam, zones) {
  let o;
  try {
    o = await get(`cameras/${enc(cam)}/objects`);
  } catch {
    return null;
  }
  const on = h('input', { type: 'checkbox', checked: o.enabled, name: 'objects_enabled' });
  const labels = LABELS.map((l) => h('input', { type: 'checkbox', value: l, checked: o.labels.includes(l), name: `label_${l}` }));
  const minScore = h('input', { type: 'number', min: 0.05, max: 0.99, step: 0.01, value: o.min_score, name: 'min_score' });
  const threshold = h('input', { type: 'number', min: 0.05, max: 0.99, step: 0.01, value: o.threshold, name: 'threshold' });
  const alarm = h('select', { name: 'alarm' }, ['objects', 'motion', 'both'].map((a) => h('option', { value: a, selected: a === o.alarm },
    { objects: 'Alarms from objects', motion: 'Alarms from motion', both: 'Alarms from both' }[a])));
  const zoneBox = h('div', { class: 'objects-zones' });
  const zoneLabels = new Map(Object.entries(o.zones));
  const drawZones = () => zoneBox.replaceChildren(h('div', { class: 'small muted' }, 'Zones that require labels for an alarm (none ticked: any object anywhere):'),
    ...zones.map((z) => h('label', { 'data-zone': z.name }, `${z.name}: `, LABELS.map((l) => {
      const c = h('input', { type: 'checkbox', checked: (zoneLabels.get(z.name) ?? []).includes(l), name: `zone_${z.name}_${l}` });
      c.addEventListener('change', () => {
        const now = new Set(zoneLabels.get(z.name) ?? []);
        if (c.checked) now.add(l); else now.delete(l);
        zoneLabels.set(z.name, [...now]);
      });
      return h('span', { class: 'small' }, c, ` ${l} `);
    }))));
  drawZones();
  const el = h('fieldset', { class: 'objects-form' }, h('legend', {}, 'Objects'),
    h('label', { class: 'check' }, on, 'Person and vehicle detection on (needs motion on)'),
    h('div', { class: 'small' }, labels.map((c) => h('label', { class: 'check' }, c, c.value))),
    h('label', {}, 'Least score ', minScore), h('label', {}, 'Threshold ', threshold), alarm, zoneBox);
  return {
    el,
    redraw: drawZones,
    save: () => api('PUT', `cameras/${enc(cam)}/objects`, {
      enabled: on.checked,
      labels: labels.filter((c) => c.checked).map((c) => c.value),
      min_score: Number(minScore.value), threshold: Number(threshold.value),
      scores: o.scores, fps: o.fps, alarm: alarm.value,
      zones: Object.fromEntries([...zoneLabels].filter(([z, ls]) => ls.length && zones.some((x) => x.name === z))),
    }),
  };
}
