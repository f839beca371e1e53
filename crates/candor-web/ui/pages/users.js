// Users (admins): accounts, their roles and cameras, everyone's sessions
// and API tokens. The sessions and tokens part is the account page's too.

import { get, post, patch, del, enc } from '../api.js';
import { h } from '../dom.js';
import { RANK, me, main, route, toast, errorBox, fmtTime } from '../common.js';

export async function usersPage() {
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

export function sessionsAndTokens(sessions, tokens, everyone, act) {
  const tName = h('input', { name: 'token-name', placeholder: 'e.g. prometheus', required: true });
  const tRole = h('select', {}, ['viewer', 'operator', 'admin'].filter((r) => RANK[r] <= RANK[me.role]).map((r) => h('option', { value: r }, r)));
  const shown = h('div');
  return [
    h('h2', {}, everyone ? 'Sessions' : 'Your sessions'),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['User', 'From', 'Started', 'Expires', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, sessions.sessions.map((s) => h('tr', {},
        h('td', {}, s.user), h('td', { 'data-remote': s.remote }, s.remote ? `${s.ip ?? '?'} · remote, through the cloud` : (s.ip ?? '–')), h('td', {}, fmtTime(s.created_at * 1000)), h('td', {}, fmtTime(s.expires_at * 1000)),
        h('td', {}, s.id === sessions.current ? h('span', { class: 'muted' }, 'this one')
          : h('button', { class: 'small', onclick: act(() => del(`sessions/${s.id}`)) }, 'Revoke'))))))),
    h('h2', {}, everyone ? 'API tokens' : 'Your API tokens'),
    h('p', { class: 'muted small' }, 'For scripts and Prometheus: send Authorization: Bearer <token>. A token never has more rights than its user, and works on the local network only (not through remote access).'),
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
