// Receipt-to-display latency of live view in headless Chromium: for each
// presented frame, requestVideoFrameCallback's expected display time minus
// the time the recorder received that frame from the camera (the init
// message carries the receipt time of media time 0; frames advance in
// camera time from there). Usage: node bench/glass.mjs BASE USER PASSWORD CAMERA
import { createRequire } from 'node:module';
const require = createRequire(new URL('../e2e/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const [base, user, password, camera] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  await page.goto(base);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.goto(`${base}#live/${encodeURIComponent(camera)}`);
  await page.waitForFunction(() => document.querySelector('.tile video')?.currentTime > 2, null, { timeout: 30000 });
  let samples = await page.evaluate(() => new Promise((resolve) => {
    const v = document.querySelector('.tile video');
    const out = [];
    const lag = [];
    const cb = (now, meta) => {
      lag.push((v.buffered.end(v.buffered.length - 1) - v.currentTime) * 1000);
      const t0 = Number(v.dataset.t0);
      const shown = performance.timeOrigin + meta.expectedDisplayTime;
      out.push(shown - (t0 + meta.mediaTime * 1000));
      if (out.length < 300) v.requestVideoFrameCallback(cb);
      else {
        const q = v.getVideoPlaybackQuality();
        resolve([out, lag, q.droppedVideoFrames, q.totalVideoFrames]);
      }
    };
    v.requestVideoFrameCallback(cb);
  }));
  const [lat, lags, dropped, total] = samples;
  lags.sort((a, b) => a - b);
  samples = lat;
  samples.sort((a, b) => a - b);
  const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))];
  console.log(JSON.stringify({ dropped, total, buffer_lag_p50: lags[lags.length >> 1], n: samples.length, p50: q(0.5), p99: q(0.99), min: samples[0], max: samples[samples.length - 1] }));
} finally {
  await browser.close();
}
