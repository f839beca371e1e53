// Installers in headless Chromium (issue 15, acceptance 1), phone-sized:
// two installer organisations and three sites. Each organisation's fleet
// view shows exactly its sites with their shared health; the owner links a
// site with an organisation's code; a technician of organisation A asks
// for an hour of configuration access, the owner approves on the recorder,
// the technician enrols and signs in through the cloud's relay (the
// recorder's own certificate, trusted only by this browser's NSS database),
// changes gate's motion sensitivity and adds a camera; the owner sees both
// in the configuration history with a diff and in the audit log, rolls the
// camera back (stopped at once), and ends the grant: the technician is out
// within 5 s.
// Called by crates/candor/tests/remote.rs with CLOUD_URL, PASSWORD (every
// cloud account's), OWNER, BOSS_A, BOSS_B, TECH, ORG_A, ORG_B, HOME_ID
// (the site with remote access), RECORDER_URL (the owner's local address
// of that recorder), ADMIN, ADMIN_PASSWORD, CAM_URL (a stream for the new
// camera, without credentials), CAM_USER, CAM_PASSWORD, SHOTS, and HOME
// holding the NSS database that trusts Pebble's root.
// Prints progress, then one JSON line of results.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const env = process.env;
const step = (m) => console.error(`[installers-e2e] ${m}`);
const check = (ok, msg) => { if (!ok) throw new Error(msg); };
const result = {};

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--host-resolver-rules=MAP *.remote.test 127.0.0.1'],
});
const errors = [];
async function newPage(name, ignoreHTTPSErrors) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors, viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(`${name} pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/favicon|status of 40[134]|SSL certificate|service ?worker|sw\.js/i.test(m.text())) errors.push(`${name} console: ${m.text()}`);
  });
  page.on('dialog', (d) => d.accept());
  return page;
}
const shot = (page, name) => page.screenshot({ path: path.join(env.SHOTS, `${name}.png`), fullPage: true });

async function cloudSignIn(name, email) {
  const p = await newPage(name, true);
  await p.goto(env.CLOUD_URL);
  await p.fill('input[name=email]', email);
  await p.fill('input[name=password]', env.PASSWORD);
  await p.click('#signin');
  await p.waitForSelector('nav a[href="#orgs"]');
  return p;
}

async function fleetNames(p, org) {
  await p.goto(`${env.CLOUD_URL}#fleet=${encodeURIComponent(org)}`);
  await p.waitForSelector('[data-testid=fleet-summary]:has-text("linked")');
  return p.$$eval('[data-fleet-site]', (els) => els.map((e) => e.dataset.fleetSite).sort());
}

try {
  // The owner links Home with a code organisation A's admin made.
  step('linking');
  const bossA = await cloudSignIn('boss A', env.BOSS_A);
  await bossA.goto(`${env.CLOUD_URL}#orgs`);
  await bossA.click(`[data-org="${env.ORG_A}"] a`);
  await bossA.click('[data-testid=org-code]');
  const code = (await bossA.textContent('[data-testid=org-code-value]')).trim();
  const owner = await cloudSignIn('owner', env.OWNER);
  await owner.goto(`${env.CLOUD_URL}#site=${encodeURIComponent(env.HOME_ID)}`);
  await owner.fill('input[name=org_code]', code);
  await owner.selectOption('[data-testid=installer] form select[name=level]', 'health');
  await owner.click('[data-testid=installer] form button[type=submit]');
  await owner.waitForSelector('[data-testid=linked]:has-text("ACME Security")');
  await shot(owner, 'i01-owner-linked');

  // The technician joins organisation A with an invitation its admin
  // made and handed over.
  step('joining');
  await bossA.selectOption('select[name=invite_role]', 'technician');
  await bossA.click('[data-testid=invite]');
  const invitation = (await bossA.textContent('[data-testid=invite-value]')).trim();
  const tech = await cloudSignIn('technician', env.TECH);
  await tech.goto(`${env.CLOUD_URL}#orgs`);
  await tech.fill('input[name=invite]', invitation);
  await tech.click('form:has(input[name=invite]) button[type=submit]');
  await tech.waitForFunction((org) => location.hash === `#fleet=${encodeURIComponent(org)}`, env.ORG_A);
  await bossA.reload();
  await bossA.waitForSelector(`[data-member="${env.TECH}"]`);

  // Each organisation's fleet: exactly its sites, with their health.
  step('fleet views');
  await tech.waitForTimeout(100);
  await tech.goto(`${env.CLOUD_URL}#fleet=${encodeURIComponent(env.ORG_A)}`);
  await tech.waitForFunction(() => document.querySelectorAll('[data-fleet-site] [data-testid=fleet-cameras]').length === 2, null, { timeout: 30000 });
  result.fleet_a = await fleetNames(tech, env.ORG_A);
  await tech.waitForSelector('[data-fleet-site=Home] [data-testid=fleet-cameras]');
  result.home_health = await tech.textContent('[data-fleet-site=Home] .health');
  await shot(tech, 'i02-fleet-a-phone');
  const bossB = await cloudSignIn('boss B', env.BOSS_B);
  result.fleet_b = await fleetNames(bossB, env.ORG_B);
  await shot(bossB, 'i03-fleet-b');
  // Filtering: a search that matches one site shows one.
  await tech.fill('input[name=q]', 'hom');
  await tech.waitForFunction(() => document.querySelectorAll('[data-fleet-site]').length === 1);
  await tech.fill('input[name=q]', '');
  await tech.waitForFunction(() => document.querySelectorAll('[data-fleet-site]').length === 2);

  // The technician asks for an hour of configuration access.
  step('request');
  await tech.click('[data-fleet-site=Home] [data-testid=ask]');
  await tech.fill('form[data-request] input[name=reason]', 'tune motion, add the porch camera');
  await tech.selectOption('form[data-request] select[name=hours]', '1');
  await tech.click('form[data-request] button[type=submit]');
  await tech.waitForSelector('[data-testid=requested]');
  await shot(tech, 'i04-requested');

  // The owner approves on the recorder (its own web app, locally).
  step('approval');
  const rec = await newPage('owner recorder', true);
  await rec.goto(env.RECORDER_URL);
  await rec.fill('input[name=username]', env.ADMIN);
  await rec.fill('input[name=password]', env.ADMIN_PASSWORD);
  await rec.click('button[type=submit]');
  await rec.waitForSelector('#nav');
  await rec.goto(`${env.RECORDER_URL}#access`);
  await rec.waitForSelector('[data-request]', { timeout: 20000 });
  check((await rec.textContent('[data-request] h3')).includes(env.TECH), 'the request names the technician');
  await rec.click('[data-request] button:has-text("Approve")');
  await rec.waitForSelector('[data-enroll]');
  const enroll = await rec.getAttribute('[data-enroll]', 'data-enroll');
  await shot(rec, 'i05-owner-approved');

  // The technician's grant shows in the fleet (the recorder's report).
  await tech.waitForSelector('[data-fleet-site=Home] [data-testid=my-access]', { timeout: 20000 });
  result.my_access = await tech.textContent('[data-fleet-site=Home] [data-testid=my-access]');
  const remote = await tech.getAttribute('[data-fleet-site=Home] [data-testid=fleet-open]', 'href');
  result.remote = remote;

  // Through the relay: enrol with the owner's one-time code, sign in with
  // their own password and second factor.
  step('technician through the relay');
  const t = await newPage('technician recorder', false);
  await t.goto(`${remote}#enroll=${encodeURIComponent(enroll)}`);
  await t.waitForSelector('[data-secret]');
  const secret = (await t.textContent('[data-secret]')).trim();
  await t.fill('input[name=password]', 'technician pass 1');
  await t.fill('input[name=password2]', 'technician pass 1');
  await t.fill('input[name=totp]', execFileSync('oathtool', ['--totp', '-b', secret]).toString().trim());
  await t.click('button:has-text("Finish")');
  await t.waitForSelector('pre[data-recovery]');
  const recovery = (await t.textContent('pre[data-recovery]')).split('\n')[0].trim();
  await t.goto(remote);
  await t.fill('input[name=username]', env.TECH);
  await t.fill('input[name=password]', 'technician pass 1');
  await t.click('button[type=submit]');
  await t.waitForSelector('input[name=totp]:visible');
  await t.fill('input[name=totp]', recovery);
  await t.click('button[type=submit]');
  await t.waitForSelector('#who:has-text("technician until")');
  await shot(t, 'i06-technician-remote');

  step('technician changes motion sensitivity');
  await t.goto(`${remote}#motion?camera=gate`);
  await t.waitForSelector('input[name=sensitivity]');
  result.sensitivity_before = Number(await t.inputValue('input[name=sensitivity]'));
  result.sensitivity_set = result.sensitivity_before === 80 ? 60 : 80;
  await t.$eval('input[name=sensitivity]', (el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', { bubbles: true })); el.dispatchEvent(new Event('change', { bubbles: true })); }, result.sensitivity_set);
  await t.click('button:has-text("Save")');
  await t.waitForSelector('text=Saved to the recorder');
  await shot(t, 'i07-technician-motion');

  step('technician adds a camera');
  await t.goto(`${remote}#add-camera`);
  await t.fill('input[aria-label="Camera name"]', 'porch');
  await t.fill('input[aria-label="Main stream URL"]', env.CAM_URL);
  await t.fill('input[aria-label="Camera user"]', env.CAM_USER);
  await t.fill('input[aria-label="Camera password"]', env.CAM_PASSWORD);
  await t.click('button:has-text("Add camera")');
  await t.waitForFunction(() => location.hash === '#system', null, { timeout: 20000 });
  const camsAfterAdd = await rec.evaluate(async () => (await (await fetch('/api/v1/cameras')).json()).cameras.map((c) => c.name));
  check(camsAfterAdd.includes('porch'), `porch added: ${camsAfterAdd}`);

  // The owner: both changes in the history, from the technician, with a diff.
  step('owner sees the history and the audit log');
  await rec.goto(`${env.RECORDER_URL}#config`);
  await rec.waitForSelector('tr[data-version]');
  const rows = await rec.$$eval('tr[data-version]', (rs) => rs.map((r) => ({ v: r.dataset.version, note: r.children[4].textContent, text: r.textContent })));
  result.versions = rows.slice(0, 4).map((r) => r.text);
  // Newest first: the camera, then the motion change, both the technician's
  // (the page's unchanged object settings are no version of their own).
  check(rows[0].note === 'camera porch added' && rows[0].text.includes(env.TECH), `newest: ${JSON.stringify(rows[0])}`);
  check(rows[1].note === 'motion settings of gate' && rows[1].text.includes(env.TECH), `second: ${JSON.stringify(rows[1])}`);
  await rec.click(`button[data-diff-prev="${rows[1].v}"]`);
  await rec.waitForSelector('pre[data-diff]');
  result.motion_diff = await rec.textContent('pre[data-diff]');
  check(result.motion_diff.includes(`+sensitivity = ${result.sensitivity_set}`), `motion diff: ${result.motion_diff}`);
  await rec.click(`button[data-diff-prev="${rows[0].v}"]`);
  await rec.waitForFunction(() => document.querySelector('pre[data-diff]')?.textContent.includes('porch'));
  result.porch_diff = await rec.textContent('pre[data-diff]');
  check(!result.porch_diff.includes(env.CAM_PASSWORD) && result.porch_diff.includes('<secret:'), `the porch diff hides its password: ${result.porch_diff}`);
  await shot(rec, 'i08-owner-history');
  await rec.goto(`${env.RECORDER_URL}#audit`);
  await rec.waitForSelector('td code');
  const audit = await rec.textContent('main');
  check(audit.includes('technician_action') && audit.includes('technician_access_started'), 'technician actions in the audit log');
  await shot(rec, 'i09-owner-audit');

  // The owner rolls the camera back: stopped at once.
  step('rollback');
  await rec.goto(`${env.RECORDER_URL}#config`);
  await rec.waitForSelector('tr[data-version]');
  await rec.click(`button[data-rollback="${rows[1].v}"]`);
  await rec.waitForFunction(() => document.querySelector('tr[data-version] td:nth-child(5)')?.textContent.startsWith('rolled back to version'), null, { timeout: 15000 });
  const cams = await rec.evaluate(async () => (await (await fetch('/api/v1/cameras')).json()).cameras.map((c) => c.name));
  result.cameras_after_rollback = cams;
  const motion = await rec.evaluate(async () => (await (await fetch('/api/v1/cameras/gate/motion')).json()));
  result.sensitivity_after_rollback = motion.sensitivity;

  // The owner ends the grant mid-session: the technician is out within 5 s.
  step('revoke');
  await rec.goto(`${env.RECORDER_URL}#access`);
  await rec.waitForSelector('button[data-revoke]');
  await t.goto(`${remote}#config`);
  await t.waitForSelector('tr[data-version]');
  await rec.click('button[data-revoke]');
  const revokedAt = Date.now();
  await t.waitForFunction(async () => (await fetch('/api/v1/me')).status === 401, null, { timeout: 5000, polling: 100 });
  result.technician_out_ms = Date.now() - revokedAt;
  // And the page itself goes back to the sign-in form on its next call.
  await t.reload();
  await t.waitForSelector('input[name=username]', { timeout: 10000 });
  await shot(t, 'i10-technician-out');
  await tech.waitForFunction(() => !document.querySelector('[data-fleet-site=Home] [data-testid=my-access]'), null, { timeout: 20000 });

  check(errors.length === 0, `browser errors:\n${errors.join('\n')}`);
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(`[installers-e2e] FAILED: ${e.stack ?? e}`);
  for (const ctx of browser.contexts()) {
    for (const p of ctx.pages()) {
      await shot(p, `fail-${Date.now()}`).catch(() => {});
      const text = await p.evaluate(() => document.body.innerText.slice(0, 1500)).catch((x) => String(x));
      console.error(`[installers-e2e] ${p.url()}:\n${text}`);
    }
  }
  console.error(errors.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
