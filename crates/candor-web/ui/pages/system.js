// System: the recorder, its storage and every camera's state, refreshed.

import { get, post, del, enc } from '../api.js';
import { h } from '../dom.js';
import { me, main, onLeave, errorBox, fmtBytes, fmtTime, fmtSecs } from '../common.js';

export async function systemPage() {
  const root = h('section', { class: 'page' }, h('h1', {}, 'System'));
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  // Re-drawn only when what it shows changes: a time being typed survives
  // the page's refresh.
  const upd = h('div', { id: 'update' });
  let updShown = '';
  root.append(upd, body);
  main().replaceChildren(root);
  // A technician may hold the maintenance scope without diagnostics: then
  // the page is the update box alone.
  const g = me.grant;
  const seesSystem = !g || g.scopes.includes('diagnostics');
  const seesUpdates = me.role === 'admin' || g?.scopes.includes('maintenance');
  const load = async () => {
    if (seesUpdates) {
      try {
        const u = await get('system/update');
        const key = JSON.stringify(u);
        if (key !== updShown) {
          updShown = key;
          upd.replaceChildren(updateBox(u, load));
        }
      } catch (e) {
        upd.replaceChildren(errorBox(e));
      }
    }
    if (!seesSystem) {
      body.replaceChildren();
      return;
    }
    let s;
    try {
      s = await get('system');
    } catch (e) {
      body.replaceChildren(errorBox(e));
      return;
    }
    const st = s.storage;
    const target = st.target_days;
    body.replaceChildren(
      h('div', { class: 'cards' },
        h('div', { class: 'card stat' }, h('div', { class: 'muted' }, 'Recorder'), h('strong', {}, `Candor ${s.version}`), h('div', {}, `up ${fmtSecs(s.uptime_secs)}`),
          s.update_check ? h('div', { id: 'update-check', class: s.update_check.available ? 'bad' : 'muted', title: s.update_check.notes || '' },
            s.update_check.available ? `Candor ${s.update_check.available} is available: ${s.update_check.notes || ''}` : s.update_check.message) : null,
          s.last_rollback ? h('div', { class: 'bad', id: 'last-rollback' },
            `Update to ${s.last_rollback.from} rolled back to ${s.last_rollback.to} (${new Date(s.last_rollback.at).toLocaleString()}): ${s.last_rollback.why}`) : null,
          me.role === 'admin' ? h('a', { class: 'button small', href: '#add-camera' }, 'Add camera') : null),
        h('div', { class: 'card stat' }, h('div', { class: 'muted' }, 'Storage used'), h('strong', {}, fmtBytes(st.used_bytes)),
          h('div', {}, st.max_bytes ? `of ${fmtBytes(st.max_bytes)} budget` : 'no budget set')),
        h('div', { class: 'card stat' }, h('div', { class: 'muted' }, 'Disk free'), h('strong', {}, fmtBytes(st.disk_free_bytes)), h('div', {}, `of ${fmtBytes(st.disk_total_bytes)}`)),
        h('div', { class: 'card stat' }, h('div', { class: 'muted' }, 'Live latency (server)'),
          h('strong', {}, s.live.latency_p50_us != null ? `p50 ≤ ${(s.live.latency_p50_us / 1000).toFixed(1)} ms` : '–'),
          h('div', {}, s.live.latency_p99_us != null ? `p99 ≤ ${(s.live.latency_p99_us / 1000).toFixed(1)} ms` : 'no live viewers yet'))),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Camera', 'State', 'Video', 'Bitrate', 'Stored', 'Footage kept', 'Forecast'].map((c) => h('th', {}, c)))),
        h('tbody', {}, s.cameras.map((c) => h('tr', { 'data-camera': c.name },
          h('td', {}, c.name),
          h('td', {}, h('span', { class: `dot ${c.state}` }), c.state, c.error ? h('div', { class: 'small bad' }, c.error) : null,
            c.state === 'streaming' ? h('div', { class: 'small muted' }, `since ${fmtTime(Date.parse(c.streaming_since))}`) : null),
          h('td', {}, c.codec ?? '–', c.resolution ? h('div', { class: 'small muted' }, `${c.resolution[0]}×${c.resolution[1]} · ${c.fps != null ? c.fps.toFixed(1) : '–'} fps`) : null,
            c.motion && c.motion.state !== 'off' ? h('div', { class: 'small muted', 'data-motion': c.motion.state }, `motion: ${c.motion.state}${c.motion.stream ? ` on ${c.motion.stream}` : ''} · ${c.motion.cpu_percent.toFixed(1)} % CPU`) : null,
            c.motion?.objects ? h('div', { class: 'small muted', 'data-objects': c.motion.objects.state },
              `objects: ${c.motion.objects.state} · ${c.motion.objects.looks} looks · ${c.motion.objects.skipped} skipped · ${c.motion.objects.cpu_percent.toFixed(1)} % CPU`) : null,
            me.role === 'admin' ? h('div', {}, h('a', { class: 'small', href: `#motion?camera=${enc(c.name)}` }, 'Motion and object settings…'), ' ',
              h('a', { class: 'small', href: `#add-camera?edit=${enc(c.name)}`, 'data-edit': c.name }, 'Change or remove…')) : null),
          h('td', {}, c.bitrate != null ? `${(c.bitrate / 1e6).toFixed(2)} Mbit/s` : '–'),
          h('td', {}, fmtBytes(c.bytes)),
          h('td', {}, c.days_kept != null ? `${c.days_kept < 1 ? fmtSecs(c.days_kept * 86400) : c.days_kept.toFixed(1) + ' days'}` : 'none yet'),
          h('td', {}, c.forecast_days != null ? `${c.forecast_days.toFixed(1)} days` : '–',
            h('div', { class: 'small muted' }, c.forecast_limit !== 'none' ? `limited by ${c.forecast_limit}` : ''),
            target && c.forecast_days != null && c.forecast_days < target ? h('div', { class: 'small bad', 'data-short': c.name }, `short of the ${target}-day target`) : null)))))),
      h('p', { class: 'muted small' }, 'The forecast is how many days of footage each camera will keep at its current bitrate under the configured limits (max_age, max_bytes, and its share of the storage budget).'));
  };
  await load();
  const timer = setInterval(load, 5000);
  onLeave(() => clearInterval(timer));
  if (me.role === 'admin' || me.grant?.scopes.includes('diagnostics')) root.append(await diagnosticsSection());
}

/// Remote diagnostics: each camera's recent reconnect reasons and a
/// connectivity test, the cloud link, recent log lines, the support bundle.
async function diagnosticsSection() {
  const sec = h('div', { class: 'card', 'data-diagnostics': '' }, h('h2', {}, 'Diagnostics'));
  let d;
  try {
    d = await get('diagnostics');
  } catch (e) {
    sec.append(errorBox(e));
    return sec;
  }
  const logs = h('pre', { class: 'diff', 'data-logs': '' });
  const loadLogs = async () => {
    try { logs.textContent = (await get('diagnostics/logs?lines=200')).lines.join('\n') || '(no log lines yet)'; } catch (e) { logs.replaceChildren(errorBox(e)); }
  };
  sec.append(
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Camera', 'Reconnects', 'Recent reasons', 'Test'].map((c) => h('th', {}, c)))),
      h('tbody', {}, d.cameras.map((c) => {
        const out = h('div', { class: 'small' });
        return h('tr', { 'data-diag-camera': c.name },
          h('td', {}, c.name), h('td', {}, String(c.reconnects)),
          h('td', {}, c.recent_errors.length ? h('ul', { class: 'small' }, c.recent_errors.slice(-3).map((e) => h('li', {}, `${fmtTime(Date.parse(e.at))}: ${e.error}`))) : h('span', { class: 'muted' }, 'none')),
          h('td', {}, h('button', { class: 'small', 'data-test': c.name, onclick: async (ev) => {
            ev.currentTarget.disabled = true;
            out.textContent = 'Testing…';
            try {
              const r = await post(`diagnostics/cameras/${enc(c.name)}/test`);
              out.replaceChildren(...r.steps.map((s) => h('div', { class: s.ok ? '' : 'bad', 'data-step': s.name }, `${s.ok ? '✓' : '✗'} ${s.name.toUpperCase()} (${s.ms} ms): ${s.detail}`)));
            } catch (e) { out.replaceChildren(errorBox(e)); }
            ev.target.disabled = false;
          } }, 'Test connection'), out));
      })))),
    h('p', {}, d.link ? `Cloud link: ${d.link.connected ? 'connected' : 'not connected'}${d.link.last_error ? ` (${d.link.last_error})` : ''} to ${d.link.address}; remote access ${d.link.remote_access ? 'on' : 'off'}.` : 'Cloud link: not configured (air-gapped).'),
    h('h3', {}, 'Recent log lines'), logs,
    h('div', { class: 'inline-form' }, h('button', { type: 'button', onclick: loadLogs }, 'Refresh'),
      h('a', { class: 'button', href: '/api/v1/diagnostics/bundle', download: '' }, 'Download support bundle')),
    h('p', { class: 'small muted' }, 'Passwords and one-time links are taken out of the logs and the bundle; the configuration in the bundle has its secrets replaced by marks.'));
  loadLogs();
  return sec;
}

// Installing the release the last check found: now, at a time, or in the
// maintenance window; and what an install is doing.
function updateBox(s, reload) {
  const u = s.update_install;
  const avail = s.update_check?.available;
  if (!u) return h('div');
  const may = true; // only those who may see the box
  const out = h('div', { class: 'card' });
  const say = (cls, text) => out.append(h('div', { class: cls, 'data-state': u.state }, text));
  const by = u.by ? ` (${u.by})` : '';
  if (u.state === 'downloading') {
    say('', `Installing Candor ${u.version}${by}: ${fmtBytes(u.bytes)}${u.total ? ` of ${fmtBytes(u.total)}` : ''}`);
    if (u.total) out.append(h('progress', { max: u.total, value: u.bytes }));
  } else if (u.state === 'scheduled') {
    say('', `Candor ${u.version} installs at ${new Date(u.at).toLocaleString()}${by}.`);
    if (may) {
      out.append(h('button', { class: 'small', onclick: async () => {
        try { await del('system/update'); } catch (e) { out.append(errorBox(e)); return; }
        reload();
      } }, 'Cancel'));
    }
  } else if (u.state === 'installed') {
    say('', `Candor ${u.version} is installed and verified${by}; the recorder restarts into it within seconds (recording resumes at once).`);
  } else if (u.state === 'failed') {
    say('bad', `Installing Candor ${u.version} failed${by}: ${u.message}`);
  }
  if (u.window) out.append(h('div', { class: 'small muted' }, `Releases install themselves between ${u.window} (this recorder's time).`));
  if (!avail || !may || ['downloading', 'scheduled', 'installed'].includes(u.state)) {
    return out.childNodes.length ? out : h('div');
  }
  if (!u.supervised) {
    out.append(h('div', { class: 'small muted' }, `Candor ${avail} can be installed with \`candor update\`: this recorder is not run by \`candor supervise\`, which installs and hands over from here.`));
    return out;
  }
  const when = h('input', { type: 'datetime-local', 'aria-label': 'Install at' });
  const err = h('div');
  const ask = async (at) => {
    err.replaceChildren();
    try {
      await post('system/update', at ? { version: avail, at } : { version: avail });
    } catch (e) {
      err.replaceChildren(errorBox(e));
      return;
    }
    reload();
  };
  out.append(h('div', { class: 'row' },
    h('button', { id: 'install-now', onclick: () => {
      if (confirm(`Install Candor ${avail} now? Recording pauses for under a second while the recorder restarts into it.`)) ask(null);
    } }, `Install ${avail} now`),
    when,
    h('button', { class: 'small', onclick: () => {
      if (!when.value) { err.replaceChildren(h('div', { class: 'bad' }, 'Choose when first.')); return; }
      ask(new Date(when.value).toISOString());
    } }, 'Schedule')), err);
  return out;
}
