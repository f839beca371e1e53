// Your account: password, two-factor authentication, your sessions and tokens.

import { get, post, del, setCsrf } from '../api.js';
import { h } from '../dom.js';
import { me, main, route, toast, errorBox } from '../common.js';
import { sessionsAndTokens } from './users.js';

export async function accountPage() {
  const root = h('section', { class: 'page' }, h('h1', {}, 'Your account'));
  main().replaceChildren(root);
  const act = (f) => async (...a) => { try { await f(...a); route(); } catch (e) { toast(e.message, true); } };
  root.append(h('p', {}, `Signed in as ${me.username}, role ${me.role}. Cameras: ${me.cameras == null ? 'all' : me.cameras.join(', ') || 'none'}.`));
  const cur = h('input', { name: 'current-password', type: 'password', autocomplete: 'current-password', required: true });
  const nw = h('input', { name: 'new-password', type: 'password', autocomplete: 'new-password', minlength: 10, required: true });
  const nw2 = h('input', { name: 'new-password2', type: 'password', autocomplete: 'new-password', minlength: 10, required: true });
  root.append(h('h2', {}, 'Password'), h('form', { class: 'inline-form', onsubmit: async (e) => {
    e.preventDefault();
    if (nw.value !== nw2.value) { toast('The two new passwords differ.', true); return; }
    try {
      const r = await post('me/password', { current: cur.value, new: nw.value });
      setCsrf(r.csrf_token);
      cur.value = nw.value = nw2.value = '';
      toast('Password changed. Every other session has been logged out.');
    } catch (x) { toast(x.message, true); }
  } }, h('label', {}, 'Current password', cur), h('label', {}, 'New password (10+ characters)', nw),
  h('label', {}, 'New password again', nw2), h('button', { type: 'submit' }, 'Change password')));
  const totp = h('div', { class: 'card' });
  root.append(h('h2', {}, 'Two-factor authentication'), totp);
  if (me.totp) {
    const code = h('input', { inputmode: 'numeric', placeholder: 'current code', required: true });
    totp.append(h('p', {}, 'On. Logging in asks for a code from your authenticator app.'),
      h('form', { class: 'inline-form', onsubmit: act(async (e) => { e.preventDefault(); await del('me/totp', { code: code.value }); toast('Two-factor authentication is off.'); }) },
        code, h('button', { type: 'submit', class: 'danger' }, 'Turn off')));
  } else {
    totp.append(h('p', {}, 'Off. Turn it on to require a code from an authenticator app (any TOTP app) at each login.'),
      h('button', { class: 'primary', onclick: async () => {
        try {
          const r = await post('me/totp');
          const code = h('input', { inputmode: 'numeric', autocomplete: 'one-time-code', placeholder: '123456', required: true });
          totp.replaceChildren(
            h('p', {}, 'Scan this code with your authenticator app (or enter the key below), then type the 6-digit code it shows.'),
            h('img', { class: 'qr', src: r.qr, alt: 'QR code for your authenticator app', width: 220, height: 220 }),
            h('p', {}, h('code', { class: 'secret', 'data-totp-secret': r.secret }, r.secret.match(/.{1,4}/g).join(' '))),
            h('p', { class: 'small muted' }, h('a', { href: r.uri }, 'Open in an authenticator app on this device')),
            h('form', { class: 'inline-form', onsubmit: async (e) => {
              e.preventDefault();
              try {
                const c = await post('me/totp/confirm', { code: code.value });
                me.totp = true;
                totp.replaceChildren(h('p', {}, 'Two-factor authentication is on. Keep these one-time recovery codes somewhere safe; each works once if you lose your phone:'),
                  h('pre', { class: 'secret', 'data-recovery': '' }, c.recovery_codes.join('\n')),
                  h('button', { onclick: () => route() }, 'Done'));
              } catch (x) { toast(x.message, true); }
            } }, code, h('button', { type: 'submit', class: 'primary' }, 'Confirm')));
        } catch (x) { toast(x.message, true); }
      } }, 'Turn on'));
  }
  try {
    const [sessions, tokens] = await Promise.all([get('sessions'), get('tokens')]);
    if (me.role === 'admin') {
      sessions.sessions = sessions.sessions.filter((s) => s.user === me.username);
      tokens.tokens = tokens.tokens.filter((t) => t.user === me.username);
    }
    root.append(...sessionsAndTokens(sessions, tokens, false, act));
  } catch (e) {
    root.append(errorBox(e));
  }
}
