// Access (admins): technicians' requests, the grants this recorder made,
// and granting access directly. Grants are made only here: the cloud can
// relay a request, never an approval (docs/design/installers.md).

import { get, post } from '../api.js';
import { h } from '../dom.js';
import { main, toast, errorBox, fmtTime, onLeave } from '../common.js';

const SCOPES = [['config', 'Configuration'], ['diagnostics', 'Diagnostics'], ['live', 'Live video'], ['playback', 'Recordings and events'], ['maintenance', 'Software updates']];
const HOURS = [1, 2, 4, 8, 24];

const scopeText = (s) => SCOPES.filter(([k]) => s[k]).map(([, t]) => t).join(', ') || 'nothing';
const camText = (c) => (c == null ? 'all cameras' : c.length ? c.join(', ') : 'no cameras');

/// Checkboxes for the scopes, the cameras and the hours of a grant, within `max` when given.
function grantFields(max) {
  const boxes = SCOPES.map(([k, t]) => {
    const b = h('input', { type: 'checkbox', name: k, checked: max ? !!max.scopes[k] : k === 'config', disabled: max ? !max.scopes[k] : false });
    return [k, b, h('label', { class: 'check' }, b, t)];
  });
  const cams = h('input', { name: 'cameras', placeholder: 'all, or e.g. gate, yard', value: max?.cameras ? max.cameras.join(', ') : '' });
  const hours = h('select', { name: 'hours' }, HOURS.filter((x) => !max || x <= max.hours).map((x) => h('option', { value: x, selected: max ? x === max.hours : x === 1 }, `${x} h`)));
  const value = () => ({
    scopes: Object.fromEntries(boxes.map(([k, b]) => [k, b.checked])),
    cameras: cams.value.trim() === '' || cams.value.trim() === 'all' ? null : cams.value.split(',').map((c) => c.trim()).filter(Boolean),
    hours: Number(hours.value),
  });
  return { el: h('div', {}, h('div', { class: 'inline-form' }, boxes.map(([, , l]) => l)), h('label', {}, 'Cameras (for video)', cams), h('label', {}, 'For', hours)), value };
}

function codeBox(grant, code) {
  if (!code) return h('p', {}, `${grant.technician} can sign in now with their own password and code.`);
  const link = `${location.origin}/#enroll=${encodeURIComponent(code)}`;
  return h('div', { class: 'card warn', 'data-enroll': code },
    h('p', {}, `Give ${grant.technician} this one-time link yourself (by phone or message, not through the cloud). It is shown only now, and works until the grant ends or for 24 hours:`),
    h('p', {}, h('code', {}, link)),
    h('button', { type: 'button', onclick: () => navigator.clipboard?.writeText(link).then(() => toast('Copied.')) }, 'Copy'));
}

export async function accessPage() {
  const root = h('section', { class: 'page' }, h('h1', {}, 'Access'));
  main().replaceChildren(root);
  const shown = h('div');
  const requests = h('div');
  const grants = h('div', { class: 'table-wrap' });
  const load = async () => {
    let r;
    try {
      r = await get('grants');
    } catch (e) {
      grants.replaceChildren(errorBox(e));
      return;
    }
    const waiting = r.requests.filter((q) => q.state === 'waiting');
    requests.replaceChildren(...(waiting.length ? waiting.map((q) => {
      const f = grantFields(q);
      return h('div', { class: 'card', 'data-request': q.id },
        h('h3', {}, `${q.technician} (${q.org}) asks for ${scopeText(q.scopes)} for ${q.hours} h`),
        h('p', {}, `Cameras: ${camText(q.cameras)}. Reason: ${q.reason || '–'}. Asked ${fmtTime(q.at * 1000)} (${q.source === 'cloud' ? 'through the cloud' : 'here'}).`),
        f.el,
        h('div', { class: 'inline-form' },
          h('button', { class: 'primary', onclick: async () => {
            try {
              const g = await post(`access-requests/${q.id}/approve`, { technician: q.technician, org: q.org, reason: q.reason, ...f.value() });
              shown.replaceChildren(codeBox(g.grant, g.enroll_code));
              load();
            } catch (e) { toast(e.message, true); }
          } }, 'Approve'),
          h('button', { class: 'danger', onclick: async () => {
            try { await post(`access-requests/${q.id}/refuse`); toast('Refused.'); load(); } catch (e) { toast(e.message, true); }
          } }, 'Refuse')));
    }) : [h('p', { class: 'muted' }, 'No request is waiting.')]));
    grants.replaceChildren(r.grants.length ? h('table', {},
      h('thead', {}, h('tr', {}, ['Technician', 'May', 'Cameras', 'Until', 'Approved', 'Used', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, r.grants.map((g) => {
        const active = !g.revoked_at && g.expires_at > r.now;
        return h('tr', { 'data-grant': g.id },
          h('td', {}, g.technician, h('div', { class: 'small muted' }, g.org)),
          h('td', {}, scopeText(g.scopes), g.reason ? h('div', { class: 'small muted' }, g.reason) : null),
          h('td', {}, camText(g.cameras)),
          h('td', {}, fmtTime(g.expires_at * 1000), active ? null : h('div', { class: 'small muted' }, g.revoked_at ? `ended ${fmtTime(g.revoked_at * 1000)} (${g.revoked_by})` : 'expired')),
          h('td', {}, `${g.approved_by}, ${fmtTime(g.approved_at * 1000)}`),
          h('td', {}, g.first_used_at ? fmtTime(g.first_used_at * 1000) : (g.enrolled ? 'not yet' : 'not enrolled')),
          h('td', {}, active ? h('button', { class: 'danger small', 'data-revoke': g.id, onclick: async () => {
            if (!confirm(`End ${g.technician}'s access now? Their sessions end at once.`)) return;
            try { await post(`grants/${g.id}/revoke`); toast('Access ended.'); load(); } catch (e) { toast(e.message, true); }
          } }, 'End access') : null));
      }))) : h('div', { class: 'empty' }, 'No technician has access, and none had in the last 30 days.'));
  };
  const who = h('input', { name: 'technician', required: true, placeholder: 'e.g. bob@acme-security' });
  const org = h('input', { name: 'org', required: true, placeholder: 'e.g. ACME Security' });
  const reason = h('input', { name: 'reason', placeholder: 'what for' });
  const f = grantFields(null);
  const grant = async (e) => {
    e.preventDefault();
    try {
      const g = await post('grants', { technician: who.value.trim(), org: org.value.trim(), reason: reason.value, ...f.value() });
      shown.replaceChildren(codeBox(g.grant, g.enroll_code));
      load();
    } catch (err) { toast(err.message, true); }
  };
  root.append(
    h('p', { class: 'muted' }, 'Technicians get access only from here, for the time and scope you choose: video stays off unless you grant it, every change they make is in the configuration history and the audit log, and ending access signs them out at once.'),
    shown, h('h2', {}, 'Requests'), requests, h('h2', {}, 'Grants'), grants,
    h('form', { class: 'card', onsubmit: grant }, h('h2', {}, 'Grant access'),
      h('label', {}, 'Technician (sign-in name)', who), h('label', {}, 'Company', org), f.el, h('label', {}, 'Reason', reason),
      h('button', { type: 'submit', class: 'primary' }, 'Grant')));
  await load();
  const t = setInterval(load, 10000);
  onLeave(() => clearInterval(t));
}
