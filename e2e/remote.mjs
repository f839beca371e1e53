// Remote access in headless Chromium: the owner signs in to the cloud app
// (phone-sized), taps Open on the site, and gets the recorder's own web app
// through the cloud's relay: sign-in with the recorder's account, live
// video, playback from a clicked instant, an export download. Called by
// crates/candor/tests/remote.rs with CLOUD_URL, OWNER, PASSWORD,
// REMOTE_URL, USER, USER_PASSWORD, SHOTS, DOWNLOAD, ALARM_URL (what the
// alarm push opens when tapped), and HOME holding
// the NSS database that trusts the test CA (Pebble) that issued the
// recorder's certificate.
// Prints progress, then one JSON line of results.

import { chromium } from 'playwright-core';
import path from 'node:path';

const step = (m) => console.error(`[remote-e2e] ${m}`);
const check = (ok, msg) => { if (!ok) throw new Error(msg); };
const result = {};
const shots = process.env.SHOTS;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
    // The remote zone resolves to the cloud (loopback here), as its DNS would.
    '--host-resolver-rules=MAP *.remote.test 127.0.0.1',
  ],
});
const errors = [];
// Service workers are refused for a certificate that is not trusted,
// whatever the flags say: recorded, and the caller checks.
result.service_worker_refused = [];
async function newPage(name, ignoreHTTPSErrors) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors, viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, acceptDownloads: true });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(`${name} pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error' || /favicon|status of 401/.test(m.text())) return;
    if (/SSL certificate error occurred when fetching the script/.test(m.text())) result.service_worker_refused.push(name);
    else errors.push(`${name} console: ${m.text()}`);
  });
  return page;
}
const shot = (page, name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

try {
  // The cloud app (its generated certificate: this context only).
  step('cloud app');
  const app = await newPage('cloud app', true);
  await app.goto(process.env.CLOUD_URL);
  await app.fill('input[name=email]', process.env.OWNER);
  await app.fill('input[name=password]', process.env.PASSWORD);
  await app.click('#signin');
  await app.waitForSelector('[data-testid=open-site]');
  const href = await app.$eval('[data-testid=open-site]', (a) => a.href);
  check(href === process.env.REMOTE_URL, `Open links to ${href}`);
  await shot(app, 'r01-cloud-open');

  // The recorder's own web app through the relay, in a context that
  // ignores no certificate error.
  step('recorder sign-in through the relay');
  const page = await newPage('recorder', false);
  const t0 = Date.now();
  await page.goto(href);
  await page.fill('input[name=username]', process.env.USER);
  await page.fill('input[name=password]', process.env.USER_PASSWORD);
  await page.click('button[type=submit]');
  step('live');
  await page.waitForSelector('.tile video[data-camera=gate]');
  await page.waitForFunction(() => document.querySelector('.tile video[data-camera=gate]').currentTime > 1.5, null, { timeout: 30000 });
  result.open_to_live_ms = Date.now() - t0;
  await shot(page, 'r02-remote-live');

  step('playback');
  await page.goto(`${href}#playback?cams=gate`);
  await page.waitForSelector('.tl-track[data-camera=gate] .tl-span');
  await page.click('text=Fit footage');
  const spans = await page.evaluate(async () => (await (await fetch('/api/v1/cameras/gate/spans')).json()).spans);
  const longest = spans.map((x) => [Date.parse(x.start), Date.parse(x.end)]).sort((a, b) => (b[1] - b[0]) - (a[1] - a[0]))[0];
  const chosen = longest[0] + (longest[1] - longest[0]) * 0.4;
  await page.evaluate((t) => { window.__seekTarget = t; }, chosen);
  const clickX = await page.evaluate(() => document.querySelector('.tl').__timeline.xOf(window.__seekTarget));
  const box = await page.locator('.tl-track[data-camera=gate]').boundingBox();
  await page.mouse.click(clickX, box.y + box.height / 2);
  await page.waitForFunction(() => {
    const v = document.querySelector('.grid.playback video[data-camera=gate]');
    return v && v.currentTime > 1.0 && !v.paused;
  }, null, { timeout: 20000 });
  const wall = Number(await page.$eval('.grid.playback', (e) => e.dataset.wall));
  const vt = await page.$eval('.grid.playback video[data-camera=gate]', (v) => v.currentTime);
  result.playback_start_error_ms = Math.round(wall - vt * 1000 - chosen);
  check(Math.abs(result.playback_start_error_ms) < 1500, `played from ${wall - vt * 1000}, chose ${chosen}`);
  await shot(page, 'r03-remote-playback');

  step('export');
  const a = longest[0] + 1000;
  const b = longest[0] + 4000;
  await page.evaluate(([a, b]) => document.querySelector('.tl').__timeline.onSelect(a, b), [a, b]);
  const download = page.waitForEvent('download', { timeout: 30000 });
  await page.click('button:has-text("Export MP4")');
  await (await download).saveAs(process.env.DOWNLOAD);
  result.export_secs = (b - a) / 1000;

  // The address a tapped alarm notification opens (the push carried it):
  // the event's clip, on the recorder, through the relay.
  step('alarm → event clip');
  const t1 = Date.now();
  await page.goto(process.env.ALARM_URL);
  await page.waitForFunction(() => /^#playback\?.*event=\d+/.test(location.hash), null, { timeout: 15000 });
  await page.waitForFunction(() => {
    const v = document.querySelector('.grid.playback video[data-camera=gate]');
    return v && v.currentTime > 1.0 && !v.paused;
  }, null, { timeout: 20000 });
  result.alarm_to_clip_ms = Date.now() - t1;
  await shot(page, 'r04-alarm-clip');

  // An emergency action: the camera's siren output, confirmed first.
  step('output');
  await page.goto(`${href}#live/gate`);
  await page.click('[data-testid=show-outputs]');
  await page.waitForSelector('[data-output=siren][data-active=true]');
  page.once('dialog', (d) => { result.output_confirmation = d.message(); d.accept(); });
  await page.click('[data-output=siren][data-active=true]');
  await page.waitForFunction(() => /siren: activated/.test(document.body.innerText), null, { timeout: 15000 });
  check(/Activate output “siren” of gate/.test(result.output_confirmation ?? ''), `confirmation: ${result.output_confirmation}`);
  await shot(page, 'r05-output');

  // Share links, for someone without an account: a clip, then live view.
  step('share a clip');
  await page.goto(`${href}#playback?cams=gate`);
  await page.waitForSelector('.tl-track[data-camera=gate] .tl-span');
  await page.evaluate(([a, b]) => document.querySelector('.tl').__timeline.onSelect(a, b), [a, b]);
  page.once('dialog', (d) => d.accept('24'));
  await page.click('[data-testid=share-clip]');
  result.clip_link = await (await page.waitForSelector('[data-testid=share-link]')).inputValue();
  check(result.clip_link.startsWith(`${href}#share=`), `clip link ${result.clip_link}`);
  const stranger = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const sp = await stranger.newPage();
  sp.on('pageerror', (e) => errors.push(`share pageerror: ${e.message}`));
  await sp.goto(result.clip_link);
  await sp.waitForFunction(() => { const v = document.querySelector('[data-testid=share-video]'); return v && v.duration > 2; }, null, { timeout: 20000 });
  await sp.evaluate(() => document.querySelector('[data-testid=share-video]').play());
  await sp.waitForFunction(() => document.querySelector('[data-testid=share-video]').currentTime > 1, null, { timeout: 15000 });
  result.shared_clip_secs = await sp.$eval('[data-testid=share-video]', (v) => v.duration);
  await shot(sp, 'r06-shared-clip');

  step('share live view, then revoke it');
  await page.goto(`${href}#live/gate`);
  page.once('dialog', (d) => d.accept('1'));
  await page.click('[data-testid=share-live]');
  result.live_link = await (await page.waitForSelector('[data-testid=share-link]')).inputValue();
  const sp2 = await stranger.newPage();
  await sp2.goto(result.live_link);
  await sp2.waitForFunction(() => document.querySelector('[data-testid=share-video]')?.currentTime > 1, null, { timeout: 20000 });
  await shot(sp2, 'r07-shared-live');
  await page.goto(`${href}#playback?cams=gate`);
  // It keeps playing until revoked (so what follows is the revocation's doing).
  await sp2.waitForTimeout(3000);
  check(await sp2.$eval('[data-testid=share-video]', (v) => v.dataset.state === 'playing' && v.currentTime > 3), 'the live share stopped by itself');
  const newest = await page.waitForSelector('[data-testid=shares] tr[data-share]');
  page.once('dialog', (d) => d.accept());
  await (await newest.$('button')).click();
  const t2 = Date.now();
  await sp2.waitForFunction(() => document.querySelector('[data-testid=share-video]').dataset.state !== 'playing', null, { timeout: 15000 });
  result.revoked_live_ended_ms = Date.now() - t2;
  // And it stays ended: reconnecting with a revoked link gets nowhere.
  await sp2.waitForTimeout(4000);
  check(await sp2.$eval('[data-testid=share-video]', (v) => v.dataset.state !== 'playing'), 'a revoked live share played again');
  result.stranger_cookies = (await stranger.cookies()).length;
  await stranger.close();
  result.protocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0]?.nextHopProtocol);
  // For the blindness check: what must never show in the relayed bytes.
  result.cookies = (await page.context().cookies()).map((c) => ({ name: c.name, value: c.value }));
  check(errors.length === 0, `page errors: ${errors.join('; ')}`);
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(`[remote-e2e] failed: ${e.stack ?? e}`);
  console.error(errors.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
