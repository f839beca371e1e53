// Live view: fragmented MP4 from the recorder's WebSocket into Media Source
// Extensions. The server starts each viewer at a key frame and skips ahead
// to the next key frame when the viewer falls behind; this side keeps the
// playhead near the newest frame and reconnects by itself.

const MAX_BUFFER_S = 20;     // keep memory flat on long views
const CHASE_S = 1.0;         // further behind live than this: jump forward
const LIVE_EDGE_S = 0.15;    // where to jump to, behind the newest frame

export class LivePlayer {
  /// `onState(state, detail)`: 'connecting' | 'playing' | 'reconnecting' | 'unsupported' | 'error'.
  /// `share`: a share link's token (the share page): the shared camera's
  /// live view, the token as a WebSocket subprotocol (never in a URL).
  constructor(video, camera, onState, share) {
    this.video = video;
    this.camera = camera;
    this.share = share;
    this.onState = onState ?? (() => {});
    this.ws = null;
    this.stopped = false;
    this.backoff = 1000;
    this.frames = 0;
    video.__player = this; // for tests and the console
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    if (this.ws) this.ws.close();
    this.reset();
  }

  reset() {
    this.queue = [];
    this.sb = null;
    if (this.ms && this.video.src) URL.revokeObjectURL(this.video.src);
    this.ms = null;
  }

  state(s, detail) {
    this.video.dataset.state = s;
    this.onState(s, detail);
  }

  connect() {
    this.reset();
    this.state('connecting');
    const url = this.share
      ? `wss://${location.host}/api/v1/share/live`
      : `wss://${location.host}/api/v1/cameras/${encodeURIComponent(this.camera)}/live`;
    const ws = this.share ? new WebSocket(url, ['candor-share', this.share]) : new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onmessage = (m) => {
      if (typeof m.data === 'string') this.control(JSON.parse(m.data));
      else this.append(m.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws || this.stopped) return;
      this.state('reconnecting', 'connection lost; retrying');
      this.retry = setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10000);
    };
  }

  control(msg) {
    if (msg.type === 'init') {
      if (!('MediaSource' in window) || !MediaSource.isTypeSupported(msg.mime)) {
        const h265 = msg.codec.startsWith('hvc1') || msg.codec.startsWith('hev1');
        this.state('unsupported', h265
          ? `This browser cannot play H.265 (${msg.codec}). Use Safari or Edge on a device with HEVC support, or set the camera to H.264.`
          : `This browser cannot play ${msg.codec}.`);
        this.stopped = true;
        this.ws.close();
        return;
      }
      this.reset();
      // Wall time (ms) at which the recorder received media time 0: with
      // requestVideoFrameCallback this gives receipt-to-display latency.
      this.video.dataset.t0 = String(msg.first_frame_received_ms ?? '');
      this.video.dataset.inits = String(Number(this.video.dataset.inits ?? 0) + 1);
      this.frames = 0;
      const ms = new MediaSource();
      this.ms = ms;
      this.mime = msg.mime;
      this.video.src = URL.createObjectURL(ms);
      ms.addEventListener('sourceopen', () => {
        // The page may have moved on (stop) or a new init replaced this
        // source (reset) before the browser opened it.
        if (this.ms !== ms || this.stopped) return;
        this.sb = ms.addSourceBuffer(this.mime);
        this.sb.mode = 'segments';
        this.sb.addEventListener('updateend', () => this.pump());
        this.sb.addEventListener('error', () => this.state('error', 'the browser rejected the stream'));
        this.pump();
      }, { once: true });
    }
  }

  append(buf) {
    if (!this.queue) return;
    this.queue.push(buf);
    this.pump();
  }

  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || this.ms.readyState !== 'open') return;
    const v = this.video;
    const b = v.buffered;
    if (b.length) {
      const end = b.end(b.length - 1);
      const start = b.start(0);
      if (end - start > MAX_BUFFER_S && v.currentTime - start > 5) {
        sb.remove(start, v.currentTime - 5);
        return; // updateend calls pump again
      }
      const lag = end - v.currentTime;
      if (lag > CHASE_S || v.currentTime < b.start(b.length - 1)) {
        v.currentTime = Math.max(b.start(b.length - 1), end - LIVE_EDGE_S);
      } else if (lag > 2 * LIVE_EDGE_S) {
        // Catch up smoothly rather than by a visible jump.
        v.playbackRate = 1.25;
      } else if (lag <= LIVE_EDGE_S) {
        v.playbackRate = 1;
      }
    }
    const next = this.queue.shift();
    if (!next) return;
    try {
      sb.appendBuffer(next);
      this.frames++;
      if (this.frames === 2) {
        this.backoff = 1000;
        v.play().catch(() => {});
        this.state('playing');
      }
    } catch (e) {
      // QuotaExceeded: drop what is already played and go on.
      this.queue.unshift(next);
      if (b.length) sb.remove(b.start(0), Math.max(b.start(0) + 0.1, v.currentTime - 1));
    }
  }
}
