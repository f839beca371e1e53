// Installers (docs/design/installers.md): organisations, the fleet view,
// technicians' requests for access, and the owner's link to an installer.
// Hash routes: #orgs, #fleet=<org id>. The fleet asks the cloud again
// every few seconds while it is on screen: sites' health changes with
// each recorder's status (every 30 s or on change).
import { h } from './dom.js';

const FLEET_EVERY_MS = 5000;
const SCOPES = [['config', 'Configuration'], ['diagnostics', 'Diagnostics'], ['live', 'Live video'], ['playback', 'Playback'], ['maintenance', 'Software updates']];
const HOURS = [1, 2, 4, 8, 24];
const LEVELS = { online: 'Online or not, and version', health: 'Health: cameras, disk, footage, last alarm' };
let timer = null;

/// Stops the fleet's refresh (called on every route change).
export function leaveFleet() {
  clearTimeout(timer);
  timer = null;
}

export async function orgsView(ctx) {
  const { api, toast, main } = ctx;
  const { orgs } = await api('GET', '/api/orgs');
  const name = h('input', { name: 'org_name', placeholder: 'e.g. ACME Security', required: true, maxlength: 64 });
  const invite = h('input', { name: 'invite', placeholder: 'the code your admin gave you', autocomplete: 'off', required: true });
  main.replaceChildren(h('h2', {}, 'Installers'),
    orgs.length
      ? h('div', { id: 'orgs' }, orgs.map((o) => h('div', { class: 'card', 'data-org': o.id },
        h('div', { class: 'row' }, h('a', { href: `#fleet=${encodeURIComponent(o.id)}` }, h('strong', {}, o.name)),
          h('span', { class: 'dim' }, `${o.role === 'admin' ? 'Admin' : 'Technician'} · ${o.sites} site${o.sites === 1 ? '' : 's'}`)))))
      : h('p', { class: 'dim' }, 'You are in no installer organisation. An installing company makes one here and adds its technicians; owners link their sites to it.'),
    h('form', { class: 'card', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const o = await api('POST', '/api/orgs', { name: name.value });
        location.hash = `#fleet=${encodeURIComponent(o.id)}`;
      } catch (x) { toast(x.message); }
    } }, h('h3', {}, 'New organisation'), name, h('button', { type: 'submit' }, 'Create')),
    h('form', { class: 'card', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const o = await api('POST', '/api/orgs/join', { code: invite.value.trim() });
        location.hash = `#fleet=${encodeURIComponent(o.id)}`;
      } catch (x) { toast(x.message); }
    } }, h('h3', {}, 'Join an organisation'),
    h('p', { class: 'dim' }, 'An admin of your company makes an invitation for you: enter it here.'),
    invite, h('button', { type: 'submit' }, 'Join')));
}

function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
}

function requestForm(ctx, org, site) {
  const { api, toast } = ctx;
  const boxes = SCOPES.map(([k, label]) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: `scope_${k}`, checked: k === 'config' }), ` ${label}`));
  const hours = h('select', { name: 'hours', 'aria-label': 'Hours' }, HOURS.map((n) => h('option', { value: n }, n === 24 ? '1 day' : `${n} h`)));
  const reason = h('input', { name: 'reason', placeholder: 'What you will do', maxlength: 500, required: true });
  const form = h('form', { class: 'request', 'data-request': site.id, onsubmit: async (e) => {
    e.preventDefault();
    const scopes = SCOPES.map(([k]) => k).filter((k, i) => boxes[i].querySelector('input').checked);
    try {
      const r = await api('POST', `/api/orgs/${encodeURIComponent(org)}/sites/${encodeURIComponent(site.id)}/access-requests`,
        { scopes, hours: Number(hours.value), reason: reason.value });
      form.replaceWith(h('p', { class: 'dim', 'data-testid': 'requested' }, r.message));
    } catch (x) { toast(x.message); }
  } }, h('div', { class: 'scopes' }, boxes), h('div', { class: 'row' }, hours, reason),
  h('button', { type: 'submit' }, 'Send request'),
  h('p', { class: 'dim' }, 'The owner decides on the recorder. Video is off unless you ask for it and they agree.'));
  return form;
}

function fleetCard(ctx, org, s) {
  const health = [];
  if (s.cameras != null) {
    health.push(h('span', { 'data-testid': 'fleet-cameras' }, `${s.cameras - (s.cameras_down?.length ?? 0)}/${s.cameras} cameras`));
  }
  if (s.disk_used_percent != null) health.push(h('span', {}, `disk ${s.disk_used_percent.toFixed(0)}%`));
  if (s.footage_days != null) {
    health.push(h('span', { 'data-testid': 'fleet-days' }, s.footage_target_days
      ? `${s.footage_days.toFixed(1)} of ${s.footage_target_days} days`
      : `${s.footage_days.toFixed(1)} days`));
  }
  if (s.last_alarm) health.push(h('span', {}, `last alarm ${when(s.last_alarm)}`));
  const actions = h('div', { class: 'row' });
  if (s.remote) actions.append(h('a', { class: 'button', href: s.remote, target: '_blank', rel: 'noopener', 'data-testid': 'fleet-open' }, 'Open'));
  // Updates are scheduled on the recorder itself (its System page), which
  // checks the grant and verifies the release: the cloud only links there.
  if (s.remote && s.my_access?.scopes.includes('maintenance')) {
    actions.append(h('a', { class: 'button secondary', href: `${s.remote}#system`, target: '_blank', rel: 'noopener', 'data-testid': 'fleet-update' }, 'Update…'));
  }
  if (s.online) {
    actions.append(h('button', { class: 'secondary', 'data-testid': 'ask', onclick: (e) => {
      e.target.replaceWith(requestForm(ctx, org, s));
    } }, 'Request access'));
  }
  return h('div', { class: `card fleet${s.attention.length ? ' attention' : ''}`, 'data-fleet-site': s.name },
    h('div', { class: 'row' }, h('strong', {}, s.name),
      h('span', {}, h('span', { class: `dot ${s.online ? 'on' : 'off'}` }), s.online ? 'Online' : 'Offline')),
    s.attention.length ? h('div', { class: 'bad', 'data-testid': 'attention' }, s.attention.join(' · ')) : '',
    health.length ? h('div', { class: 'dim health' }, health.flatMap((x, i) => (i ? [' · ', x] : [x]))) : '',
    h('div', { class: 'dim' }, `${s.software ?? 'version unknown'} · shares ${s.level === 'health' ? 'health' : 'online status only'}`),
    s.my_access ? h('div', { class: 'ok', 'data-testid': 'my-access' }, `Your access: ${s.my_access.scopes.join(', ')} until ${when(s.my_access.until)}`) : '',
    actions);
}

export async function fleetView(ctx, org) {
  const { api, toast, main } = ctx;
  const { orgs } = await api('GET', '/api/orgs');
  const o = orgs.find((x) => x.id === org);
  if (!o) { main.replaceChildren(h('p', {}, 'No such organisation.')); return; }
  const q = h('input', { type: 'search', name: 'q', placeholder: 'Find a site', 'aria-label': 'Find a site' });
  const attention = h('input', { type: 'checkbox', name: 'attention' });
  const sort = h('select', { name: 'sort', 'aria-label': 'Sort' },
    [['attention', 'Needs attention first'], ['name', 'Name'], ['disk', 'Disk use'], ['days', 'Days of footage'], ['last_alarm', 'Last alarm']]
      .map(([v, t]) => h('option', { value: v }, t)));
  const summary = h('p', { class: 'dim', 'data-testid': 'fleet-summary' });
  const list = h('div', { id: 'fleet' });
  const here = `#fleet=${encodeURIComponent(org)}`;
  // Typing doesn't wait for the next refresh; forms being filled in are
  // not replaced under the user's fingers.
  const refresh = async () => {
    clearTimeout(timer);
    if (location.hash !== here) return;
    try {
      const p = new URLSearchParams({ sort: sort.value });
      if (q.value) p.set('q', q.value);
      if (attention.checked) p.set('attention', 'true');
      const f = await api('GET', `/api/orgs/${encodeURIComponent(org)}/fleet?${p}`);
      summary.textContent = `${f.sites.length} shown of ${f.total} linked · ${f.needing_attention} need attention`;
      if (!list.querySelector('form.request')) list.replaceChildren(...f.sites.map((s) => fleetCard(ctx, org, s)));
    } catch (x) { summary.textContent = x.message; }
    if (location.hash === here) timer = setTimeout(refresh, document.hidden ? FLEET_EVERY_MS * 6 : FLEET_EVERY_MS);
  };
  q.oninput = refresh;
  attention.onchange = refresh;
  sort.onchange = refresh;
  const admin = o.role === 'admin' ? await adminCards(ctx, org) : [];
  main.replaceChildren(h('h2', {}, o.name),
    h('div', { class: 'card controls' }, q, h('div', { class: 'row' }, h('label', { class: 'check' }, attention, ' Needs attention only'), sort)),
    summary, list, ...admin,
    h('button', { class: 'secondary', 'data-testid': 'leave', onclick: async () => {
      if (!confirm(`Leave ${o.name}? You see its sites no more, at once.`)) return;
      try { await api('DELETE', `/api/orgs/${encodeURIComponent(org)}/membership`); location.hash = '#orgs'; } catch (x) { toast(x.message); }
    } }, 'Leave this organisation'));
  await refresh();
}

async function adminCards(ctx, org) {
  const { api, toast } = ctx;
  const base = `/api/orgs/${encodeURIComponent(org)}`;
  const role = h('select', { name: 'invite_role', 'aria-label': 'Role' }, h('option', { value: 'technician' }, 'Technician'), h('option', { value: 'admin' }, 'Admin'));
  const codeOut = h('div', {});
  const inviteOut = h('div', {});
  const siteCode = h('input', { name: 'site_code', placeholder: "the owner's code", required: true, autocomplete: 'off' });
  const list = h('ul', { class: 'members' });
  const open = h('ul', { class: 'members', 'data-testid': 'open-invites' });
  const drawMembers = async () => {
    try {
      const [{ members }, { invites }] = await Promise.all([api('GET', `${base}/members`), api('GET', `${base}/invites`)]);
      list.replaceChildren(...members.map((m) => h('li', { 'data-member': m.email }, `${m.email} · ${m.role} `,
        h('button', { class: 'danger small', onclick: async () => {
          if (!confirm(`Remove ${m.email}? They lose the fleet at once, and their open invitations go with them.`)) return;
          try { await api('DELETE', `${base}/members/${encodeURIComponent(m.email)}`); await drawMembers(); } catch (x) { toast(x.message); }
        } }, 'Remove'))));
      open.replaceChildren(...invites.map((i) => h('li', {}, `Invitation for a ${i.role}${i.made_by ? ` by ${i.made_by}` : ''}, until ${when(i.expires)} `,
        h('button', { class: 'secondary small', onclick: async () => {
          try { await api('DELETE', `${base}/invites/${encodeURIComponent(i.id)}`); await drawMembers(); } catch (x) { toast(x.message); }
        } }, 'Revoke'))));
    } catch (x) { list.replaceChildren(h('li', { class: 'error' }, x.message)); }
  };
  await drawMembers();
  return [
    h('div', { class: 'card' }, h('h3', {}, 'Link a customer’s site'),
      h('p', { class: 'dim' }, 'Give the owner a code to enter in their app, or enter the code they give you. They choose what you see, and can unlink at any time.'),
      h('button', { class: 'secondary', 'data-testid': 'org-code', onclick: async () => {
        try {
          const c = await api('POST', `${base}/codes`);
          codeOut.replaceChildren(h('div', { class: 'code', 'data-testid': 'org-code-value' }, c.code), h('p', { class: 'dim' }, `Valid once, until ${when(c.expires)}.`));
        } catch (x) { toast(x.message); }
      } }, 'Make a code for an owner'), codeOut,
      h('form', { onsubmit: async (e) => {
        e.preventDefault();
        try { await api('POST', `${base}/link`, { code: siteCode.value.trim() }); siteCode.value = ''; toast('Site linked'); } catch (x) { toast(x.message); }
      } }, h('label', {}, 'Or enter an owner’s code'), siteCode, h('button', { type: 'submit' }, 'Link'))),
    h('div', { class: 'card' }, h('h3', {}, 'Members'),
      h('p', { class: 'dim' }, 'Technicians see the fleet and ask owners for access; each grant is the owner’s, on their recorder, for one person. A new member joins with an invitation you hand them.'),
      list,
      h('div', { class: 'row' }, role, h('button', { class: 'secondary', 'data-testid': 'invite', onclick: async () => {
        try {
          const c = await api('POST', `${base}/invites`, { role: role.value });
          inviteOut.replaceChildren(h('div', { class: 'code', 'data-testid': 'invite-value' }, c.code),
            h('p', { class: 'dim' }, `For one ${c.role}, once, until ${when(c.expires)}. They enter it under Installers → Join.`));
          await drawMembers();
        } catch (x) { toast(x.message); }
      } }, 'Invite')), inviteOut, open),
  ];
}

/// The owner's card on a site's page: which installer it is linked to, at
/// which level; link with a code either way; unlink.
export async function linkCard(ctx, site) {
  const { api, toast } = ctx;
  const base = `/api/sites/${encodeURIComponent(site.id)}`;
  const card = h('div', { class: 'card', 'data-testid': 'installer' }, h('h3', {}, 'Installer'));
  const level = () => h('select', { name: 'level', 'aria-label': 'What the installer sees' },
    Object.entries(LEVELS).map(([k, v]) => h('option', { value: k }, v)));
  const draw = async () => {
    const { link } = await api('GET', `${base}/link`);
    if (link) {
      card.replaceChildren(h('h3', {}, 'Installer'),
        h('p', { 'data-testid': 'linked' }, `Linked to ${link.org}; they see ${LEVELS[link.level] ?? link.level}.`),
        h('p', { class: 'dim' }, 'They can ask for access; you decide on the recorder, and each decision is recorded there.'),
        h('button', { class: 'danger', onclick: async () => {
          if (!confirm(`Unlink ${site.name} from ${link.org}? They see nothing more of it at once.`)) return;
          try { await api('DELETE', `${base}/link`); await draw(); } catch (x) { toast(x.message); }
        } }, 'Unlink'));
      return;
    }
    const code = h('input', { name: 'org_code', placeholder: "the installer's code", autocomplete: 'off', required: true });
    const lv = level();
    const lv2 = level();
    const out = h('div', {});
    card.replaceChildren(h('h3', {}, 'Installer'),
      h('form', { onsubmit: async (e) => {
        e.preventDefault();
        try { await api('POST', `${base}/link`, { code: code.value.trim(), level: lv.value }); await draw(); } catch (x) { toast(x.message); }
      } }, h('label', {}, 'Enter your installer’s code'), code, lv, h('button', { type: 'submit' }, 'Link')),
      h('p', { class: 'dim' }, 'Or make a code for them:'), h('div', { class: 'row' }, lv2, h('button', { class: 'secondary', onclick: async () => {
        try {
          const c = await api('POST', `${base}/link-code`, { level: lv2.value });
          out.replaceChildren(h('div', { class: 'code' }, c.code), h('p', { class: 'dim' }, `Valid once, until ${when(c.expires)}.`));
        } catch (x) { toast(x.message); }
      } }, 'Make a code')), out);
  };
  await draw().catch((x) => card.append(h('p', { class: 'error' }, x.message)));
  return card;
}
