// Talks to /api/v1: JSON in and out, the CSRF header on state changes, and
// errors as exceptions carrying the server's stable code and message.

let csrf = null;

export function setCsrf(token) { csrf = token; }

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let r;
  try {
    r = await fetch('/api/v1/' + path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', 'The recorder is not reachable. Check the network and that the recorder is running.');
  }
  if (r.status === 204) return null;
  const text = await r.text();
  let v = null;
  try { v = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!r.ok) {
    throw new ApiError(r.status, v?.code ?? 'http_' + r.status, v?.message ?? `HTTP ${r.status}`);
  }
  return v;
}

export const get = (p) => api('GET', p);
export const post = (p, b) => api('POST', p, b ?? {});
export const patch = (p, b) => api('PATCH', p, b);
export const put = (p, b) => api('PUT', p, b);
export const del = (p, b) => api('DELETE', p, b);

/// RFC 3339 in UTC, as the API wants it.
export const iso = (ms) => new Date(ms).toISOString();

export const enc = encodeURIComponent;
