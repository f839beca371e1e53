// Cloud (admins): pairing, what the site shares, and the egress ledger.

import { api, get, post, iso } from '../api.js';
import { h } from '../dom.js';
import { main, onLeave, toast, errorBox, fmtTime } from '../common.js';

const SHARING_LABEL = {
  online_only: 'Online or offline only',
  health: 'Health: cameras, recording, disk',
  health_and_events: 'Health and event details in alarms',
};

export async function cloudPage(params) {
  const root = h('section', { class: 'page' }, h('h1', {}, 'Cloud'));
  main().replaceChildren(root);
  const box = h('div', { id: 'cloud-state' });
  const ledgerBox = h('div', {});
  root.append(box, h('h2', {}, 'Egress ledger'),
    h('p', { class: 'muted' }, 'Every message this recorder sent to the cloud, as sent, and every connection with the bytes it put on the wire. Cameras, MQTT and webhooks you configured yourself are not in it.'),
    ledgerBox);
  let timer = null;
  onLeave(() => clearTimeout(timer));
  const render = (s) => {
    clearTimeout(timer);
    if (s.configured === false) {
      box.replaceChildren(h('div', { class: 'empty' },
        'The cloud is off, as it is by default: this recorder connects to nothing but its cameras and the integrations in candor.toml. To use a Candor cloud, add a [cloud] section with its address to candor.toml and restart.'));
      return;
    }
    const rows = [
      h('p', {}, 'Cloud: ', h('code', {}, s.address), ' · site name ', h('strong', {}, s.name)),
    ];
    if (s.paired) {
      rows.push(h('p', { 'data-testid': 'cloud-link' },
        h('span', { class: `dot ${s.connected ? 'ok' : 'bad'}` }), s.connected ? 'Connected' : 'Not connected',
        ` · paired ${fmtTime(Date.parse(s.paired.paired_at))} as site `, h('code', {}, s.paired.site)));
      const sel = h('select', { name: 'sharing' }, Object.entries(SHARING_LABEL).map(([k, v]) => h('option', { value: k, selected: k === s.sharing }, v)));
      const priv = h('input', { type: 'checkbox', name: 'private_alarms', checked: s.private_alarms });
      const save = async (sharing) => {
        try { render(await api('PUT', 'cloud/sharing', { sharing: sharing ?? sel.value, private_alarms: priv.checked })); toast('Saved to candor.toml and applied.'); } catch (e) { toast(e.message, true); }
      };
      rows.push(h('h2', {}, 'What this site shares'),
        h('div', { class: 'inline-form' }, h('label', {}, 'Status ', sel),
          h('label', { class: 'check' }, priv, 'Private alarms (the phone shows only “alarm at ', s.name, '”)'),
          h('button', { type: 'button', class: 'primary', onclick: () => save() }, 'Save')));
      if (s.sharing_request) {
        rows.push(h('div', { class: 'notice', 'data-testid': 'sharing-request' },
          `The cloud asks to change sharing to “${SHARING_LABEL[s.sharing_request]}”. `,
          h('button', { type: 'button', class: 'primary small', onclick: () => save(s.sharing_request) }, 'Accept')));
      }
      const r = s.remote;
      const remoteSessions = h('div', {});
      const remote = h('input', { type: 'checkbox', name: 'remote_access', checked: r.enabled });
      rows.push(h('h2', {}, 'Remote access'),
        h('p', { class: 'dim' }, 'Your own web app, reached from anywhere through the cloud. The connection is encrypted from the browser to this recorder: the cloud passes it on without being able to read it. Sign-in uses this recorder’s accounts.'),
        h('div', { class: 'inline-form' },
          h('label', { class: 'check' }, remote, 'Allow remote access through the cloud'),
          h('button', { type: 'button', class: 'primary', onclick: async () => {
            try { render(await api('PUT', 'cloud/remote', { enabled: remote.checked })); toast('Saved to candor.toml and applied.'); } catch (e) { toast(e.message, true); }
          } }, 'Save')),
        r.enabled
          ? h('p', { 'data-testid': 'remote-state' }, r.url ? ['Reachable at ', h('a', { href: r.url, target: '_blank', rel: 'noopener' }, r.url), ` · ${r.open} open now, ${r.served} since start`] : 'Waiting for the cloud to give this recorder its address…')
          : h('p', { class: 'dim', 'data-testid': 'remote-state' }, 'Off: the cloud cannot open any connection to this recorder.'),
        r.enabled ? certState(r.certificate) : null,
        h('p', { class: 'muted small' }, r.require_2fa === 'nobody' ? 'Remote sign-in with a password alone is allowed ([cloud] remote_2fa = "nobody").'
          : `Remote sign-in needs two-factor for ${r.require_2fa === 'everyone' ? 'everyone' : 'admins'} ([cloud] remote_2fa). API tokens work on the local network only.`),
        remoteSessions);
      get('sessions').then((l) => {
        const list = l.sessions.filter((x) => x.remote);
        remoteSessions.replaceChildren(list.length
          ? h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'remote-sessions' },
            h('thead', {}, h('tr', {}, ['Remote session', 'From', 'Started'].map((c) => h('th', {}, c)))),
            h('tbody', {}, list.map((x) => h('tr', {}, h('td', {}, x.user), h('td', {}, x.ip ?? '?'), h('td', {}, fmtTime(x.created_at * 1000)))))))
          : h('p', { class: 'muted small' }, 'No remote sessions. Bytes per remote connection are in the egress ledger below (kind “tunnel”); revoke sessions under Users.'));
      }).catch(() => {});
      rows.push(h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (!confirm('Unpair from the cloud? This is final: the recorder forgets its key and the cloud refuses it. Pairing again makes a new key.')) return;
        try { render(await post('cloud/unpair')); } catch (e) { toast(e.message, true); }
      } }, 'Unpair'));
    } else if (s.pairing) {
      const p = s.pairing;
      if (!p.code) rows.push(h('p', {}, 'Asking the cloud for a code…'));
      else if (!p.confirmation) {
        rows.push(h('p', {}, 'In the cloud app, choose “Add site” and enter this code, or scan it with the phone:'),
          h('div', { class: 'pair-code', 'data-testid': 'pair-code' }, p.code),
          s.qr ? h('img', { src: s.qr, alt: 'QR code of the pairing link', width: 200, height: 200 }) : null,
          h('p', { class: 'muted' }, `Single use; expires in ${Math.round((p.expires_in ?? 600) / 60)} minutes.`));
      } else {
        rows.push(h('p', {}, h('strong', {}, p.claimed_by), ' entered the code. The cloud app must show the same confirmation code:'),
          h('div', { class: 'pair-code', 'data-testid': 'confirmation' }, p.confirmation),
          h('p', { class: 'muted' }, 'If it differs, someone else entered the code: cancel.'),
          h('div', { class: 'inline-form' },
            h('button', { type: 'button', class: 'primary', id: 'pair-confirm', onclick: async () => { try { render(await post('cloud/pair/confirm')); } catch (e) { toast(e.message, true); } } }, 'Confirm'),
            h('button', { type: 'button', class: 'ghost', onclick: async () => { render(await post('cloud/pair/cancel')); } }, 'Cancel')));
      }
    } else {
      rows.push(h('p', {}, 'Not connected. Pairing connects this recorder to the cloud above, outbound only, with a key it makes itself; you choose what it shares.'),
        s.last_error ? h('p', { class: 'muted' }, 'Last: ', s.last_error) : null,
        h('button', { type: 'button', class: 'primary', id: 'connect-cloud', onclick: async () => { try { render(await post('cloud/pair')); } catch (e) { toast(e.message, true); } } }, 'Connect to cloud'));
    }
    if (s.paired && s.last_error && !s.connected) rows.push(h('p', { class: 'muted' }, 'Last error: ', s.last_error));
    box.replaceChildren(...rows);
    // The ledger grows with the link: refresh it with the state (filters kept).
    if (Date.now() - (render.loaded ?? 0) > 4000) { render.loaded = Date.now(); load(); }
    timer = setTimeout(async () => { try { render(await get('cloud')); } catch { /* next time */ } }, s.pairing ? 1000 : 5000);
  };
  const f = {
    kind: h('input', { name: 'kind', value: params.get('kind') ?? '', placeholder: 'any', list: 'egress-kinds' }),
    since: h('input', { name: 'since', type: 'datetime-local' }),
    until: h('input', { name: 'until', type: 'datetime-local' }),
  };
  const csv = h('a', { class: 'button ghost', download: 'candor-egress.csv' }, 'Download CSV');
  const table = h('div', { class: 'table-wrap' });
  const load = async () => {
    const p = new URLSearchParams();
    if (f.kind.value) p.set('kind', f.kind.value);
    if (f.since.value) p.set('since', iso(new Date(f.since.value).getTime()));
    if (f.until.value) p.set('until', iso(new Date(f.until.value).getTime()));
    csv.href = `/api/v1/egress?${p}&format=csv`;
    try {
      const r = await get(`egress?${p}`);
      table.replaceChildren(r.entries.length ? h('div', {},
        h('p', { 'data-testid': 'egress-total' }, egressTotal(r)),
        h('table', { id: 'egress' },
          h('thead', {}, h('tr', {}, ['Time', 'To', 'Kind', 'Bytes', 'What'].map((c) => h('th', {}, c)))),
          h('tbody', {}, r.entries.slice(-500).reverse().map((e) => h('tr', { 'data-kind': e.kind },
            h('td', {}, fmtTime(Date.parse(e.at))), h('td', {}, e.destination), h('td', {}, h('code', {}, e.kind)),
            h('td', {}, String(e.bytes)), h('td', {}, h('code', { class: 'small' }, e.summary)))))))
        : h('div', { class: 'empty' }, 'Nothing has been sent to a cloud.'));
    } catch (e) {
      table.replaceChildren(errorBox(e));
    }
  };
  ledgerBox.append(h('datalist', { id: 'egress-kinds' }, ['connect', 'disconnect', 'hello', 'status', 'alarm', 'pong', 'ack_recorded', 'pair_start', 'pair_confirm', 'unpair'].map((k) => h('option', { value: k }))),
    h('form', { class: 'inline-form', onsubmit: (e) => { e.preventDefault(); load(); } },
      h('label', {}, 'Kind', f.kind), h('label', {}, 'Since', f.since), h('label', {}, 'Until', f.until),
      h('button', { type: 'submit', class: 'primary' }, 'Filter'), csv),
    table);
  render(await get('cloud'));
}

// The rows add up to the bytes on the wire: `connect` and `disconnect` rows
// carry each connection's TLS (and proxy) overhead, the others the messages.
function egressTotal(r) {
  const overhead = r.entries.filter((e) => e.kind === 'connect' || e.kind === 'disconnect').reduce((n, e) => n + e.bytes, 0);
  const more = overhead ? ` (${r.total_bytes - overhead} in messages, ${overhead} of TLS and connection overhead)` : '';
  return `${r.entries.length} entries, ${r.total_bytes} bytes on the wire${more}.`;
}

// The remote certificate: from the CA by ACME, or self-signed until then.
function certState(c) {
  if (!c) return null;
  const until = c.not_after ? ` until ${fmtTime(Date.parse(c.not_after))}` : '';
  const words = {
    off: 'Certificate: self-signed ([cloud] acme_directory = "off"); browsers warn unless told to trust it.',
    waiting: 'Certificate: self-signed for now; a publicly trusted one is requested once the cloud serves this name’s DNS.',
    obtaining: `Certificate: asking ${c.directory} for one…`,
    valid: `Certificate: issued by the CA (ACME)${until}, for this recorder’s own key; renewed automatically.`,
    retrying: `Certificate: ${c.source === 'acme' ? `the CA’s${until}` : 'self-signed'}; the last request failed (${c.error ?? 'unknown error'}). Next try ${c.next_attempt ? fmtTime(Date.parse(c.next_attempt)) : 'soon'}. Recording and local use are unaffected.`,
  };
  return h('p', { class: c.state === 'retrying' ? 'notice' : 'muted small', 'data-testid': 'remote-cert', 'data-state': c.state }, words[c.state] ?? c.state);
}
