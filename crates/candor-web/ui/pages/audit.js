// Audit log (admins): filtered, and as CSV.

import { get } from '../api.js';
import { h } from '../dom.js';
import { main, errorBox, fmtTime } from '../common.js';

export async function auditPage(params) {
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
