// System: the recorder, its storage and every camera's state, refreshed.

import { get, post, enc } from '../api.js';
import { h } from '../dom.js';
import { me, main, onLeave, errorBox, fmtBytes, fmtTime, fmtSecs } from '../common.js';

export async function systemPage() {
  const root = h('section', { class: 'page' }, h('h1', {}, 'System'));
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  root.append(body);
  main().replaceChildren(root);
  const load = async () => {
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
