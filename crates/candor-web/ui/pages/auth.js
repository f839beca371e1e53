// Signing in, and the one-time setup of the first administrator.

import { post, setCsrf } from '../api.js';
import { h } from '../dom.js';
import { loadMe, route, errorBox } from '../common.js';

function authCard(title, ...body) {
  return h('div', { class: 'auth' }, h('div', { class: 'card' },
    h('div', { class: 'auth-brand' }, h('img', { src: '/app/icon.svg', alt: '', width: 40, height: 40 }), h('h1', {}, 'Candor')),
    h('h2', {}, title), ...body));
}

export function loginPage() {
  const err = h('div');
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const code = h('input', { name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', placeholder: '123456 or a recovery code' });
  const codeRow = h('label', { hidden: true }, 'Authenticator code', code);
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      err.replaceChildren();
      try {
        const body = { username: user.value, password: pass.value };
        if (!codeRow.hidden && code.value) body.totp = code.value;
        const r = await post('login', body);
        setCsrf(r.csrf_token);
        await loadMe();
        location.hash = '#live';
        route();
      } catch (x) {
        // Through remote access the answer never says which part was wrong.
        if (x.code === 'totp_required' || x.code === 'remote_sign_in_failed') {
          codeRow.hidden = false;
          code.focus();
        }
        err.replaceChildren(errorBox(x));
      }
    },
  }, h('label', {}, 'User name', user), h('label', {}, 'Password', pass), codeRow, err,
  h('button', { type: 'submit', class: 'primary' }, 'Log in'));
  return authCard('Log in', form);
}

export function setupPage(token) {
  const err = h('div');
  const user = h('input', { name: 'username', value: 'admin', required: true, autocomplete: 'username' });
  const pass = h('input', { name: 'password', type: 'password', minlength: 10, required: true, autocomplete: 'new-password' });
  const again = h('input', { name: 'password2', type: 'password', minlength: 10, required: true, autocomplete: 'new-password' });
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      err.replaceChildren();
      if (pass.value !== again.value) {
        err.append(errorBox('The two passwords differ.'));
        return;
      }
      try {
        await post('setup', { token, username: user.value, password: pass.value });
        const r = await post('login', { username: user.value, password: pass.value });
        setCsrf(r.csrf_token);
        await loadMe();
        history.replaceState(null, '', '/#live');
        route();
      } catch (x) {
        err.append(errorBox(x));
      }
    },
  }, h('p', { class: 'muted' }, 'Create the first administrator. This link works once; the recorder printed it on its console.'),
  h('label', {}, 'User name', user), h('label', {}, 'Password (10 characters or more)', pass),
  h('label', {}, 'Password again', again), err, h('button', { type: 'submit', class: 'primary' }, 'Create administrator'));
  return authCard('Welcome to Candor', form);
}

/// A technician's enrolment: the one-time code from the owner gives a TOTP
/// secret; their own password and a code from their authenticator finish it.
export function enrollPage(code) {
  const err = h('div');
  const box = h('div', {}, h('p', { class: 'muted' }, 'Checking the code…'));
  (async () => {
    let e;
    try {
      e = await post('enroll', { code });
    } catch (x) {
      box.replaceChildren(errorBox(x));
      return;
    }
    const pass = h('input', { name: 'password', type: 'password', minlength: 12, required: true, autocomplete: 'new-password' });
    const again = h('input', { name: 'password2', type: 'password', minlength: 12, required: true, autocomplete: 'new-password' });
    const totp = h('input', { name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', required: true, placeholder: '123456' });
    const form = h('form', {
      onsubmit: async (ev) => {
        ev.preventDefault();
        err.replaceChildren();
        if (pass.value !== again.value) { err.replaceChildren(h('p', { class: 'bad' }, 'The passwords differ.')); return; }
        try {
          const r = await post('enroll/finish', { code, password: pass.value, totp: totp.value.trim() });
          box.replaceChildren(h('p', {}, `You can now log in as ${r.technician} with your password and a code from your authenticator, while the owner's grant lasts.`),
            h('p', {}, 'Recovery codes (each works once instead of a code; keep them safe):'),
            h('pre', { 'data-recovery': '' }, r.recovery_codes.join('\n')),
            h('a', { class: 'button primary', href: '#' }, 'Log in'));
        } catch (x) {
          err.replaceChildren(errorBox(x));
        }
      },
    }, h('p', {}, `You are ${e.technician}. Scan this with your authenticator app (or type the secret):`),
    h('img', { src: e.qr, alt: 'TOTP QR code', width: 220, height: 220 }), h('p', {}, h('code', { 'data-secret': '' }, e.secret)),
    h('label', {}, 'Your password (12 characters or more)', pass), h('label', {}, 'Again', again),
    h('label', {}, 'Code from the app', totp), err, h('button', { type: 'submit', class: 'primary' }, 'Finish'));
    box.replaceChildren(form);
  })();
  return authCard('Technician access', box);
}
