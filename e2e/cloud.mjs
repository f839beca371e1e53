// The cloud, end to end in headless Chromium: an owner signs in to the
// cloud app (phone-sized), pairs three recorders through both web apps
// (code typed in the app, the same confirmation code checked on both
// screens, confirmed on the recorder), sees them online, gets alarms live
// and acknowledges one. Called by crates/candor/tests/cloud.rs with
// CLOUD_URL, OWNER, PASSWORD, RECORDERS (JSON: [{url, name, control}]) and
// SHOTS. Prints progress, then one JSON line of results.

import { chromium } from 'playwright-core';
import path from 'node:path';

const cloud = process.env.CLOUD_URL;
const recorders = JSON.parse(process.env.RECORDERS);
const shots = process.env.SHOTS;
const step = (m) => console.error(`[cloud-e2e] ${m}`);
const check = (ok, msg) => { if (!ok) throw new Error(msg); };
const result = { sites: [], alarm_ms: [] };

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // The cloud's certificate is self-signed here; service workers need this.
    '--ignore-certificate-errors'],
});
const errors = [];
async function newPage(viewport, mobile = false) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport, hasTouch: mobile, isMobile: mobile });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/favicon|status of 401/.test(m.text())) errors.push(`console: ${m.text()}`); });
  return page;
}
const shot = (page, name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

try {
  // The owner's phone.
  const phone = await newPage({ width: 390, height: 844 }, true);
  step('cloud sign-in');
  await phone.goto(cloud);
  await phone.fill('input[name=email]', process.env.OWNER);
  await phone.fill('input[name=password]', process.env.PASSWORD);
  await shot(phone, 'c01-cloud-login');
  await phone.click('#signin');
  await phone.waitForSelector('h2:text("Sites")');
  // Phone width: the header's links fit and none breaks across lines.
  const navProblems = await phone.$$eval('#nav a, #nav button', (xs) => xs
    .filter((x) => {
      // One rectangle per line the text occupies.
      const r = document.createRange();
      r.selectNodeContents(x);
      const lines = new Set([...r.getClientRects()].map((q) => Math.round(q.top)));
      return lines.size > 1 || x.getBoundingClientRect().right > window.innerWidth;
    })
    .map((x) => x.textContent));
  if (navProblems.length) throw new Error(`cloud header at 390 px: ${navProblems} wrap or overflow`);
  result.manifest = await phone.evaluate(async () => (await (await fetch(document.querySelector('link[rel=manifest]').href)).json()).display);
  result.service_worker = await phone.evaluate(() => Promise.race([navigator.serviceWorker.ready.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]));

  for (const [i, r] of recorders.entries()) {
    step(`pair ${r.name}`);
    const rec = await newPage({ width: 1280, height: 800 });
    await rec.goto(r.url);
    await rec.fill('input[name=username]', 'admin');
    await rec.fill('input[name=password]', 'admin password 1');
    await rec.click('button[type=submit]');
    await rec.waitForSelector('#top:not([hidden])');
    await rec.goto(`${r.url}#cloud`);
    await rec.click('#connect-cloud');
    const code = (await (await rec.waitForSelector('[data-testid=pair-code]')).textContent()).trim();
    check(/^[A-Z0-9]{10}$/.test(code), `pairing code ${code}`);
    if (i === 0) { await shot(rec, 'c02-recorder-code'); result.first_code = code; }
    await phone.goto(`${cloud}#pair`);
    await phone.fill('input[name=code]', code);
    await phone.click('form#pair button[type=submit]');
    const inApp = (await (await phone.waitForSelector('[data-testid=confirmation]')).textContent()).trim();
    const onRecorder = (await (await rec.waitForSelector('[data-testid=confirmation]', { timeout: 10000 })).textContent()).trim();
    check(/^\d{6}$/.test(inApp) && inApp === onRecorder, `confirmation codes differ: app ${inApp}, recorder ${onRecorder}`);
    if (i === 0) { await shot(phone, 'c03-app-confirmation'); await shot(rec, 'c04-recorder-confirmation'); }
    await rec.click('#pair-confirm');
    await phone.waitForFunction(() => location.hash.startsWith('#site='), null, { timeout: 15000 });
    const site = await phone.evaluate(() => decodeURIComponent(location.hash.slice(6)));
    await rec.waitForSelector('[data-testid=cloud-link]:has-text("Connected")', { timeout: 15000 });
    result.sites.push({ name: r.name, site, confirmation: inApp });
    r.page = rec;
    r.site = site;
  }

  step('all sites online');
  await phone.goto(`${cloud}#sites`);
  await phone.waitForFunction((n) => {
    const cards = [...document.querySelectorAll('[data-site]')];
    return cards.length === n && cards.every((c) => c.querySelector('[data-testid=online]').textContent.startsWith('Online'));
  }, recorders.length, { timeout: 30000 });
  // Shop shares health: its camera count shows once the first status arrives.
  await phone.waitForSelector(`[data-site="${recorders[0].site}"] [data-testid=cameras]`, { timeout: 40000 });
  await shot(phone, 'c05-app-sites');

  step('alarms, live');
  await phone.goto(`${cloud}#alarms`);
  await phone.waitForSelector('#alarms', { state: 'attached' });
  for (const r of recorders.slice(0, 2)) {
    const before = await phone.$$eval('#alarms li', (l) => l.length);
    const t0 = Date.now();
    await fetch(`${r.control}/motion/on`, { method: 'POST' });
    await phone.waitForFunction((n) => document.querySelectorAll('#alarms li').length > n, before, { timeout: 10000 });
    result.alarm_ms.push(Date.now() - t0);
    await fetch(`${r.control}/motion/off`, { method: 'POST' });
  }
  const items = await phone.$$eval('#alarms li', (l) => l.map((x) => x.textContent));
  check(items.some((t) => t.includes('Shop') && t.includes('motion on gate')), `shop alarm: ${items}`);
  check(items.some((t) => t.includes('Home') && t.includes('details stay on the recorder')), `private alarm: ${items}`);
  const toast = await phone.textContent('#toast');
  check(toast.startsWith('Alarm at'), `toast: ${toast}`);
  await shot(phone, 'c06-app-alarms');

  step('acknowledge');
  await phone.click('#alarms li:has-text("Shop") [data-testid=ack]');
  await phone.waitForSelector('#alarms li:has-text("Shop") [data-testid=acked]:has-text("recorded on the recorder")', { timeout: 15000 });
  await shot(phone, 'c07-app-acked');

  step('recorder ledger');
  const shop = recorders[0].page;
  await shop.goto(`${recorders[0].url}#events`);
  await shop.goto(`${recorders[0].url}#cloud`);
  await shop.waitForSelector('#egress tr[data-kind=alarm]');
  result.ledger_rows = await shop.$$eval('#egress tbody tr', (r) => r.length);
  await shot(shop, 'c08-recorder-ledger');

  check(errors.length === 0, `browser errors: ${errors.join('; ')}`);
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(`[cloud-e2e] FAILED: ${e.stack ?? e}`);
  console.error(`[cloud-e2e] browser errors: ${errors.join('; ')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
