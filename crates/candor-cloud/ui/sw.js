// Service worker: installability, and Web Push. The payload was encrypted
// for this browser only (RFC 8291); it holds what the recorder chose to share.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
self.addEventListener('fetch', () => {});

self.addEventListener('push', (e) => {
  let d = {};
  try { d = e.data ? e.data.json() : {}; } catch { d = {}; }
  // A technician's request, arrival or departure (kind "access"), or an alarm.
  const access = d.kind === 'access';
  const title = d.title || (access ? 'Candor access' : 'Candor alarm');
  e.waitUntil(self.registration.showNotification(title, {
    body: (d.late ? '(delivered late) ' : '') + (d.body || ''),
    tag: access ? `access-${d.site}-${d.at}-${Math.random()}` : `alarm-${d.site}-${d.alarm}`,
    // Only the shapes the cloud makes: a recorder's remote name and an
    // alarm id, or its Access page.
    data: { site: d.site, url: typeof d.url === 'string' && /^https:\/\/[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?\/#(alarm=\d+|access)$/.test(d.url) ? d.url : null },
    icon: '/ui/icon-192.png',
    requireInteraction: true,
  }));
});

self.addEventListener('notificationclick', (e) => {
  e.notification.close();
  // With remote access on, the event itself on the recorder (its own web
  // app, through the relay); otherwise the site in this app.
  const remote = e.notification.data?.url;
  if (remote) {
    e.waitUntil(self.clients.openWindow(remote));
    return;
  }
  const url = '/#site=' + encodeURIComponent(e.notification.data?.site || '');
  e.waitUntil(self.clients.matchAll({ type: 'window' }).then((cs) => {
    for (const c of cs) { c.navigate(url); return c.focus(); }
    return self.clients.openWindow(url);
  }));
});
