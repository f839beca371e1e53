// Add a camera (admins): ONVIF discovery, stream look-up, then saved.

import { get, post, put, del, enc } from '../api.js';
import { h } from '../dom.js';
import { main, toast, errorBox } from '../common.js';
import { changedText } from './config.js';

/// Discover ONVIF cameras, look up a camera's streams with its password,
/// and add it: saved to candor.toml and recording at once. With
/// `?edit=NAME`: change that camera's addresses (it restarts) or remove it.
export async function addCameraPage(params) {
  const editing = params?.get('edit');
  const root = h('section', { class: 'page' });
  main().replaceChildren(root);
  const probe = h('input', { type: 'text', placeholder: 'optional: IP:port to probe instead of the LAN multicast', 'aria-label': 'Probe address' });
  const found = h('div', { class: 'table-wrap', hidden: true });
  const xaddr = h('input', { type: 'url', name: 'onvif', placeholder: 'http://192.168.1.64/onvif/device_service', 'aria-label': 'ONVIF device service' });
  const user = h('input', { type: 'text', name: 'username', autocomplete: 'off', 'aria-label': 'Camera user' });
  const pass = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', 'aria-label': 'Camera password' });
  const described = h('div', { class: 'small muted' });
  const name = h('input', { type: 'text', name: 'name', required: true, pattern: '[A-Za-z0-9_\\-]{1,64}', placeholder: 'e.g. front-door', 'aria-label': 'Camera name' });
  const url = h('input', { type: 'text', name: 'url', required: true, placeholder: 'rtsp://192.168.1.64:554/Streaming/Channels/101', 'aria-label': 'Main stream URL' });
  const sub = h('input', { type: 'text', name: 'sub_url', placeholder: 'optional: rtsp://…/102', 'aria-label': 'Sub stream URL' });
  const motion = h('input', { type: 'checkbox', name: 'motion', checked: true });
  const slug = (t) => (t ?? '').toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64);
  const discover = async (btn) => {
    btn.disabled = true;
    found.hidden = false;
    found.replaceChildren(h('p', { class: 'muted' }, 'Searching the network for ONVIF cameras…'));
    try {
      const r = await post('discover', probe.value.trim() ? { probe: probe.value.trim() } : {});
      if (!r.cameras.length) {
        found.replaceChildren(h('p', { class: 'muted' }, 'No ONVIF camera answered. Check that ONVIF is enabled on the camera and that it is on this network segment, or enter its address below.'));
        return;
      }
      found.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Hardware', 'Address', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, r.cameras.map((c) => h('tr', { 'data-found': c.xaddrs[0] ?? '' },
          h('td', {}, c.name ?? '–'), h('td', {}, c.hardware ?? '–'), h('td', {}, h('code', {}, c.xaddrs[0] ?? 'no usable address')),
          h('td', {}, c.xaddrs[0] ? h('button', { type: 'button', class: 'small', onclick: () => {
            xaddr.value = c.xaddrs[0];
            if (!name.value) name.value = slug(c.name);
            user.focus();
          } }, 'Use') : null))))));
    } catch (e) {
      found.replaceChildren(errorBox(e));
    } finally {
      btn.disabled = false;
    }
  };
  const lookUp = async (e) => {
    e.preventDefault();
    described.textContent = 'Asking the camera…';
    try {
      const d = await post('discover/describe', { xaddr: xaddr.value.trim(), username: user.value, password: pass.value });
      described.replaceChildren(`${d.manufacturer} ${d.model}: `, d.profiles.map((p) => `${p.name} ${p.encoding ?? ''} ${p.width ?? '?'}×${p.height ?? '?'}`).join(', '));
      if (d.main) url.value = d.main;
      if (d.sub) sub.value = d.sub;
    } catch (err) {
      described.replaceChildren(errorBox(err));
    }
  };
  const add = async (e) => {
    e.preventDefault();
    try {
      const body = {
        name: name.value.trim(), url: url.value.trim(), username: user.value || null, password: pass.value || null,
        sub_url: sub.value.trim() || null, onvif: xaddr.value.trim() || null, motion: motion.checked,
      };
      const send = (b) => (editing ? put(`cameras/${enc(editing)}`, b) : post('cameras', b));
      let r;
      try {
        r = await send(body);
      } catch (err) {
        // A stream on another host than the camera gets the password only
        // if the admin confirms it.
        if (err.code !== 'other_host' || !confirm(`${err.message}\n\nSend the camera's password to this address?`)) throw err;
        r = await send({ ...body, other_host: true });
      }
      toast(editing ? `${editing} changed. ${changedText(r)}` : `${name.value} added: saved to the configuration and recording.`);
      location.hash = '#system';
    } catch (err) {
      toast(err.message, true);
    }
  };
  if (editing) {
    try {
      const c = await get(`cameras/${enc(editing)}/config`);
      name.value = c.name;
      name.readOnly = true;
      url.value = c.url;
      user.value = c.username ?? '';
      sub.value = c.sub_url ?? '';
      xaddr.value = c.onvif ?? '';
      pass.placeholder = c.has_password ? 'unchanged' : '';
    } catch (e) {
      root.replaceChildren(errorBox(e));
      return;
    }
  }
  const remove = async () => {
    if (!confirm(`Remove ${editing}? Recording stops at once; its footage stays until retention removes it.`)) return;
    try {
      const r = await del(`cameras/${enc(editing)}`);
      toast(`${editing} removed. ${changedText(r)}`);
      location.hash = '#system';
    } catch (e) { toast(e.message, true); }
  };
  root.append(
    h('div', { class: 'bar' }, h('h1', {}, editing ? `Change ${editing}` : 'Add a camera'), h('a', { class: 'button ghost small', href: '#system' }, 'Back'),
      editing ? h('button', { type: 'button', class: 'danger small', 'data-remove': editing, onclick: remove }, 'Remove camera') : null),
    h('div', { class: 'card' }, h('h2', {}, '1. Find it'),
      h('div', { class: 'inline-form' }, h('button', { type: 'button', class: 'primary', onclick: (e) => discover(e.currentTarget) }, 'Discover cameras'), probe),
      found),
    h('form', { class: 'card', onsubmit: lookUp }, h('h2', {}, '2. Its streams (ONVIF)'),
      h('label', {}, 'Device service', xaddr), h('label', {}, 'User', user), h('label', {}, 'Password', pass),
      h('button', { type: 'submit' }, 'Look up streams'), described),
    h('form', { class: 'card', onsubmit: add }, h('h2', {}, editing ? '3. Save it' : '3. Add it'),
      h('label', {}, 'Name', name), h('label', {}, 'Main stream', url), h('label', {}, 'Sub stream (for motion detection)', sub),
      h('p', { class: 'small muted' }, 'The user and password above go into the camera\'s RTSP address in candor.toml; they are never shown again or logged.'),
      editing ? null : h('label', { class: 'check' }, motion, 'Detect motion'),
      h('button', { type: 'submit', class: 'primary' }, editing ? 'Save changes' : 'Add camera')));
}
