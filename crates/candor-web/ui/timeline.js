// A zoomable, scrubbable timeline: one row per camera showing recorded
// spans (filled) and gaps (empty), a playhead, and an optional selection
// for export. Mouse wheel or the buttons zoom; dragging scrubs (touch too);
// shift-drag selects a range.

import { h } from './dom.js';

// Tick spacings, seconds: the first that fits the width is used.
const STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200];

export class Timeline {
  constructor({ onSeek, onSelect }) {
    this.onSeek = onSeek;
    this.onSelect = onSelect;
    this.rows = new Map();
    this.marks = new Map();
    this.view = [0, 1];
    this.head = null;
    this.sel = null;
    this.area = h('div', { class: 'tl-area' });
    this.axis = h('div', { class: 'tl-axis' });
    this.labels = h('div', { class: 'tl-labels' });
    this.tracks = h('div', { class: 'tl-tracks' });
    this.headEl = h('div', { class: 'tl-head' });
    this.selEl = h('div', { class: 'tl-sel', hidden: '' });
    this.area.append(this.axis, this.tracks, this.selEl, this.headEl);
    this.el = h('div', { class: 'tl' }, h('div', { class: 'tl-left' }, h('div', { class: 'tl-axis-pad' }), this.labels), this.area);
    this.area.addEventListener('wheel', (e) => {
      e.preventDefault();
      this.zoom(e.deltaY > 0 ? 1.5 : 1 / 1.5, this.timeAt(e.clientX));
    }, { passive: false });
    this.area.addEventListener('pointerdown', (e) => this.drag(e));
    this.el.__timeline = this; // for tests and the console
  }

  /// The viewport x of time `t`: the inverse of `timeAt`.
  xOf(t) {
    const r = this.tracks.getBoundingClientRect();
    return r.left + ((t - this.view[0]) / (this.view[1] - this.view[0])) * r.width;
  }

  timeAt(clientX) {
    const r = this.tracks.getBoundingClientRect();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / r.width));
    return this.view[0] + f * (this.view[1] - this.view[0]);
  }

  pct(t) {
    return ((t - this.view[0]) / (this.view[1] - this.view[0])) * 100;
  }

  drag(e) {
    e.preventDefault();
    this.area.setPointerCapture(e.pointerId);
    const select = e.shiftKey;
    const t0 = this.timeAt(e.clientX);
    const move = (ev) => {
      const t = this.timeAt(ev.clientX);
      if (select) this.setSelection(Math.min(t0, t), Math.max(t0, t));
      else this.setPlayhead(t);
    };
    const up = (ev) => {
      this.area.removeEventListener('pointermove', move);
      this.area.removeEventListener('pointerup', up);
      this.area.removeEventListener('pointercancel', up);
      const t = this.timeAt(ev.clientX);
      if (select) this.onSelect?.(Math.min(t0, t), Math.max(t0, t));
      else this.onSeek?.(t);
    };
    this.area.addEventListener('pointermove', move);
    this.area.addEventListener('pointerup', up);
    this.area.addEventListener('pointercancel', up);
    move(e);
  }

  zoom(factor, around) {
    const [a, b] = this.view;
    const c = around ?? (this.head ?? (a + b) / 2);
    const span = Math.min(Math.max((b - a) * factor, 10e3), 7 * 864e5);
    const f = (c - a) / (b - a);
    this.setView(c - f * span, c - f * span + span);
  }

  pan(fraction) {
    const d = (this.view[1] - this.view[0]) * fraction;
    this.setView(this.view[0] + d, this.view[1] + d);
  }

  setView(a, b) {
    this.view = [a, b];
    this.render();
  }

  setSpans(camera, spans) {
    this.rows.set(camera, spans);
    this.render();
  }

  /// Events to mark on a camera's row: [{start, end}] in ms (end null: ongoing).
  setMarks(camera, marks) {
    this.marks.set(camera, marks);
    this.render();
  }

  setPlayhead(t) {
    this.head = t;
    this.headEl.style.left = this.pct(t) + '%';
    this.headEl.hidden = t == null || t < this.view[0] || t > this.view[1];
  }

  setSelection(a, b) {
    this.sel = a == null ? null : [a, b];
    this.renderSel();
  }

  renderSel() {
    if (!this.sel) { this.selEl.hidden = true; return; }
    this.selEl.hidden = false;
    const l = Math.max(0, this.pct(this.sel[0]));
    const r = Math.min(100, this.pct(this.sel[1]));
    this.selEl.style.left = l + '%';
    this.selEl.style.width = Math.max(0, r - l) + '%';
  }

  render() {
    const [a, b] = this.view;
    const secs = (b - a) / 1e3;
    // About one label per 90 px, so they never overlap on a phone.
    const maxTicks = Math.max(2, Math.floor((this.tracks.clientWidth || 720) / 90));
    const step = STEPS_S.find((s) => secs / s <= maxTicks) ?? 86400;
    const stepMs = step * 1e3;
    const first = Math.ceil(a / stepMs) * stepMs;
    // Local-time ticks: offset so that hour marks fall on local hours.
    const tz = new Date(first).getTimezoneOffset() * 60e3;
    this.axis.replaceChildren();
    for (let t = Math.ceil((a - tz) / stepMs) * stepMs + tz; t <= b; t += stepMs) {
      const d = new Date(t);
      const label = d.getHours() === 0 && d.getMinutes() === 0
        ? d.toLocaleDateString([], { month: 'short', day: 'numeric' })
        : d.toLocaleTimeString([], step < 60 ? { hour: '2-digit', minute: '2-digit', second: '2-digit' } : { hour: '2-digit', minute: '2-digit' });
      const tick = h('span', { class: 'tl-tick' }, label);
      tick.style.left = this.pct(t) + '%';
      this.axis.append(tick);
    }
    this.labels.replaceChildren();
    this.tracks.replaceChildren();
    for (const [cam, spans] of this.rows) {
      this.labels.append(h('div', { class: 'tl-label', title: cam }, cam));
      const track = h('div', { class: 'tl-track', 'data-camera': cam });
      for (const s of spans) {
        if (s.end < a || s.start > b) continue;
        const l = Math.max(0, this.pct(s.start));
        const r = Math.min(100, this.pct(s.end));
        const el = h('div', { class: 'tl-span' });
        el.style.left = l + '%';
        el.style.width = Math.max(0.2, r - l) + '%';
        track.append(el);
      }
      for (const m of this.marks.get(cam) ?? []) {
        const end = m.end ?? Date.now();
        if (end < a || m.start > b) continue;
        const el = h('div', { class: `tl-event${m.label ? ` object ${m.label}` : ''}`, title: m.title ?? '', 'data-label': m.label ?? null });
        el.style.left = Math.max(0, this.pct(m.start)) + '%';
        el.style.width = `max(3px, ${Math.max(0, Math.min(100, this.pct(end)) - Math.max(0, this.pct(m.start)))}%)`;
        track.append(el);
      }
      if (!spans.length) track.append(h('span', { class: 'tl-empty' }, 'nothing recorded in this range'));
      this.tracks.append(track);
    }
    this.setPlayhead(this.head);
    this.renderSel();
  }
}
