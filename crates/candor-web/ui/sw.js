// Service worker: lets the app install and open its shell without the
// network. Network first, so a recorder upgrade is picked up at once; the
// cache is only a fallback. API answers and video are never cached.
const CACHE = 'candor-shell-v3';
const SHELL = ['/', '/app/app.css', '/app/app.js', '/app/api.js', '/app/common.js', '/app/dom.js',
  '/app/live.js', '/app/timeline.js', '/app/icon.svg', '/app/icon-192.png', '/manifest.webmanifest',
  '/app/pages/auth.js', '/app/pages/live.js', '/app/pages/playback.js', '/app/pages/events.js',
  '/app/pages/system.js', '/app/pages/add-camera.js', '/app/pages/motion.js', '/app/pages/users.js',
  '/app/pages/account.js', '/app/pages/audit.js', '/app/pages/cloud.js', '/app/pages/config.js', '/app/pages/access.js'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== location.origin || !SHELL.includes(url.pathname)) {
    return; // the browser handles it: API, video, WebSocket
  }
  e.respondWith(fetch(e.request).then((r) => {
    if (r.ok) {
      const copy = r.clone();
      caches.open(CACHE).then((c) => c.put(e.request, copy));
    }
    return r;
  }).catch(() => caches.match(e.request)));
});
