// Configuration (admins): every version of candor.toml with who made it,
// from where and when; a diff between any two; rollback; the file itself,
// secrets redacted; and the banner of a change waiting for confirmation.

import { get, post, put, enc } from '../api.js';
import { h } from '../dom.js';
import { main, toast, errorBox, fmtTime, onLeave } from '../common.js';

const ORIGIN = { local: 'this network', remote: 'remote access', technician: 'technician', file: 'edited by hand', cli: 'command line', system: 'the recorder' };

/// What a change did, in words, for a toast.
export function changedText(r) {
  const parts = [`Saved as version ${r.version}.`];
  if (r.live.length) parts.push(`Applied: ${r.live.join('; ')}.`);
  if (r.restart.length) parts.push(`Needs a restart: ${r.restart.join(', ')}.`);
  if (r.confirm_by) parts.push(`Confirm it before ${fmtTime(Date.parse(r.confirm_by))}, or it reverts.`);
  return parts.join(' ');
}

function diffView(text) {
  return h('pre', { class: 'diff', 'data-diff': '' }, text.split('\n').map((l) => h('span', {
    class: l.startsWith('+') && !l.startsWith('+++') ? 'add' : l.startsWith('-') && !l.startsWith('---') ? 'del' : l.startsWith('@@') ? 'hunk' : '',
  }, l + '\n')));
}

export async function configPage(params) {
  const root = h('section', { class: 'page' }, h('h1', {}, 'Configuration'));
  main().replaceChildren(root);
  const banner = h('div', {});
  const table = h('div', { class: 'table-wrap' });
  const diffBox = h('div', {});
  const cameras = h('div', { class: 'card' });
  const editor = h('textarea', { class: 'config-text', spellcheck: false, rows: 24, 'aria-label': 'candor.toml' });
  let base = 0;
  let timer = null;
  onLeave(() => clearInterval(timer));

  const showPending = (p) => {
    clearInterval(timer);
    if (!p) { banner.replaceChildren(); return; }
    const left = h('strong', {});
    const tick = () => {
      const s = Math.max(0, Math.round((Date.parse(p.deadline) - Date.now()) / 1000));
      left.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
      if (s === 0) { clearInterval(timer); setTimeout(load, 1500); }
    };
    tick();
    timer = setInterval(tick, 1000);
    banner.replaceChildren(h('div', { class: 'card warn', 'data-pending': p.version },
      h('p', {}, `Version ${p.version} changed settings that could cut off access ([web] or [cloud]). It reverts to version ${p.previous}'s in `, left, ' unless you confirm it.'),
      h('button', { class: 'primary', onclick: async () => {
        try { await post('config/confirm'); toast('Change confirmed: it stays.'); load(); } catch (e) { toast(e.message, true); }
      } }, 'Keep this change')));
  };

  const compare = async (from, to) => {
    try {
      const d = await get(`config/diff?from=${from}&to=${to}`);
      diffBox.replaceChildren(h('div', { class: 'card' }, h('h2', {}, `Version ${from} → ${to}`),
        d.diff ? diffView(d.diff) : h('p', { class: 'muted' }, 'No difference.')));
      diffBox.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      diffBox.replaceChildren(errorBox(e));
    }
  };

  const load = async () => {
    let v, t;
    try {
      [v, t] = await Promise.all([get('config/versions'), get('config/text')]);
    } catch (e) {
      table.replaceChildren(errorBox(e));
      return;
    }
    showPending(v.pending);
    base = t.version;
    cameras.replaceChildren(h('h2', {}, 'Cameras'),
      t.cameras.length ? h('ul', {}, t.cameras.map((c) => h('li', { 'data-config-camera': c }, h('strong', {}, c), ' · ',
        h('a', { href: `#motion?camera=${enc(c)}` }, 'Motion and objects'), ' · ',
        h('a', { href: `#add-camera?edit=${enc(c)}` }, 'Change or remove')))) : h('p', { class: 'muted' }, 'No camera yet.'),
      h('a', { class: 'button small', href: '#add-camera' }, 'Add camera'));
    if (document.activeElement !== editor) editor.value = t.text;
    const pick = { a: null, b: null };
    table.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, ['Version', 'When', 'Who', 'From', 'What', 'Compare', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, v.versions.map((x, i) => h('tr', { 'data-version': x.id },
        h('td', {}, String(x.id), x.id === v.current ? h('span', { class: 'tag' }, 'current') : null),
        h('td', {}, fmtTime(Date.parse(x.at))),
        h('td', {}, x.user ?? '–'),
        h('td', {}, ORIGIN[x.origin] ?? x.origin, x.address ? h('div', { class: 'small muted' }, x.address) : null),
        h('td', {}, x.note),
        h('td', {},
          i + 1 < v.versions.length ? h('button', { class: 'small ghost', 'data-diff-prev': x.id, onclick: () => compare(v.versions[i + 1].id, x.id) }, 'Changes') : null,
          h('label', { class: 'check small' }, h('input', { type: 'radio', name: 'cmp-a', onchange: () => { pick.a = x.id; } }), 'A'),
          h('label', { class: 'check small' }, h('input', { type: 'radio', name: 'cmp-b', onchange: () => { pick.b = x.id; if (pick.a) compare(pick.a, pick.b); } }), 'B')),
        h('td', {}, x.id !== v.current ? h('button', { class: 'small', 'data-rollback': x.id, onclick: async () => {
          if (!confirm(`Make version ${x.id} the configuration again? It is applied at once where possible.`)) return;
          try {
            const r = await post('config/rollback', { version: x.id });
            toast(changedText(r));
            load();
          } catch (e) { toast(e.message, true); }
        } }, 'Roll back to this') : null))))));
  };

  const save = async (e) => {
    e.preventDefault();
    try {
      const r = await put('config/text', { base, text: editor.value });
      toast(changedText(r));
      editor.blur();
      load();
    } catch (err) {
      toast(err.message, true);
    }
  };

  root.append(banner, cameras,
    h('p', { class: 'muted' }, 'Every change to candor.toml is a version: from this web app, the API, remote access, a technician, or a hand edit of the file (noticed at start). Secrets show as <secret:…> marks: the same mark means the same secret.'),
    table, diffBox,
    h('form', { class: 'card', onsubmit: save }, h('h2', {}, 'Edit candor.toml'),
      h('p', { class: 'small muted' }, 'Leave <secret:…> marks as they are to keep those secrets; type a new value in place of one to change it. The whole file is checked before it is saved. A change to [web] reverts by itself unless you confirm it.'),
      editor, h('button', { type: 'submit', class: 'primary' }, 'Save')));
  await load();
  if (params.get('from') && params.get('to')) compare(params.get('from'), params.get('to'));
}
