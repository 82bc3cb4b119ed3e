// Browser tests of the sign-in page against a real otpgate (demo provider), in Debian's Chromium.
// Run with: OTPGATE_TEST_BROWSER=1 npm test   (from web/; see web/README.md)
import { test, describe, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ENABLED, startServer, launchBrowser, resultsDir, inbox, otpgateBin } from './harness.mjs';

if (!ENABLED) {
  const why = 'browser tests skipped: set OTPGATE_TEST_BROWSER=1 to run them (needs /usr/bin/chromium and a built otpgate)';
  console.log(`NOTICE: ${why}`);
  test('sign-in page in Chromium', { skip: why }, () => {});
} else {
  suite();
}

function suite() {
  describe('sign-in page', () => {
    let browser;
    let server;
    let context;
    let page;
    let problems; // uncaught page errors and CSP violations

    before(async () => {
      console.log(`otpgate: ${otpgateBin()}`);
      browser = await launchBrowser();
    });
    after(async () => { await browser?.close(); });

    beforeEach(async () => {
      server = await startServer();
      ({ context, page } = await newPage({ width: 400, height: 800 }));
    });

    afterEach(async (t) => {
      await context?.close();
      await server?.stop();
      context = null;
      server = null;
    });

    async function newPage(viewport) {
      const ctx = await browser.newContext({ viewport, locale: 'en-US', timezoneId: 'UTC' });
      ctx.setDefaultTimeout(15000);
      const p = await ctx.newPage();
      problems = [];
      p.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      p.on('console', (m) => {
        if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
      });
      return { context: ctx, page: p };
    }

    async function open(p = page) {
      await p.goto(server.url + '/');
      await p.waitForSelector('body[data-ready="true"]');
    }

    // Types a US national number and sends it; resolves with the POST /v1/verifications response.
    async function sendCode(national, p = page) {
      await p.selectOption('#country', 'US');
      await p.fill('#phone', national);
      const resp = p.waitForResponse((r) => r.url().endsWith('/v1/verifications') && r.request().method() === 'POST');
      await p.click('#send-btn');
      return resp;
    }

    async function demoCode(p = page) {
      await p.waitForSelector('#demo-banner:not([hidden])');
      const code = (await p.textContent('#demo-code')).trim();
      assert.match(code, /^\d{4,10}$/);
      return code;
    }

    function assertNoProblems() {
      assert.deepEqual(problems, [], 'no page errors or CSP violations');
    }

    test('full sign-in with the demo inbox code', async () => {
      await open();
      const res = await sendCode('(415) 555-0100');
      assert.ok([200, 201].includes(res.status()), `send answered ${res.status()}`);
      assert.ok(res.request().headers()['idempotency-key'], 'send carries an Idempotency-Key');

      await page.waitForSelector('#code-form:not([hidden])');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'code', 'code field focused');
      assert.equal(await page.textContent('#sent-to'), '+14155550100');
      assert.match(await page.textContent('#code-expiry'), /expires in \d+:\d\d/);
      assert.match(await page.textContent('#resend-btn'), /Resend code in \d+:\d\d/);
      assert.equal(await page.isDisabled('#resend-btn'), true, 'resend waits for its cooldown');

      const code = await demoCode();
      const messages = await inbox(server.url, '+14155550100');
      assert.equal(messages[0].code, code, 'banner shows the newest code from /dev/inbox');

      await page.fill('#code', code);
      const check = page.waitForResponse((r) => r.url().endsWith('/v1/verifications/check'));
      await page.press('#code', 'Enter');
      assert.equal((await check).status(), 200);

      await page.waitForSelector('#signed-in:not([hidden])');
      const heading = (await page.textContent('#title-text')).trim();
      assert.ok(["You're signed in", 'Phone number verified'].includes(heading), heading);
      assert.equal((await page.textContent('#me-phone')).trim(), '+14155550100');
      if (heading === "You're signed in") {
        assert.match((await page.textContent('#me-id')).trim(), /\S+/, 'user id shown');
        const revoke = page.waitForResponse((r) => r.url().endsWith('/v1/sessions/revoke'));
        await page.click('#signout-btn');
        assert.equal((await revoke).status(), 204);
      } else {
        await page.click('#signout-btn');
      }
      await page.waitForSelector('#phone-form:not([hidden])');
      assertNoProblems();
    });

    test('a wrong code shows the API message next to the code field and focuses it', async () => {
      await open();
      await sendCode('415 555 0101');
      const code = await demoCode();
      const wrong = code.slice(0, -1) + String((Number(code.at(-1)) + 1) % 10);

      await page.fill('#code', wrong);
      const check = page.waitForResponse((r) => r.url().endsWith('/v1/verifications/check'));
      await page.press('#code', 'Enter');
      const res = await check;
      assert.equal(res.status(), 422);
      const body = await res.json();
      assert.equal(body.error.code, 'invalid_code');

      await page.waitForSelector('#code-error:not([hidden])');
      const shown = await page.textContent('#code-error');
      assert.ok(shown.includes(body.error.message), `"${shown}" shows "${body.error.message}"`);
      if (typeof body.error.attempts_left === 'number') {
        assert.match(shown, new RegExp(`${body.error.attempts_left}\\b.*attempt|attempt.*\\b${body.error.attempts_left}\\b`, 'i'));
      }
      const focus = await page.evaluate(() => {
        const a = document.activeElement;
        return { id: a.id, invalid: a.getAttribute('aria-invalid'), describedby: a.getAttribute('aria-describedby') };
      });
      assert.equal(focus.id, 'code', 'the code field has focus');
      assert.equal(focus.invalid, 'true');
      assert.match(focus.describedby, /\bcode-error\b/);
      assert.equal(await page.isVisible('#code-alert'), false, 'not in the general alert');

      // Typing the right code clears the error and signs in.
      await page.fill('#code', code);
      assert.equal(await page.getAttribute('#code', 'aria-invalid'), null);
      await page.press('#code', 'Enter');
      await page.waitForSelector('#signed-in:not([hidden])');
      assertNoProblems();
    });

    test('a rate-limited send shows a live countdown and re-enables later', async () => {
      await open();
      await sendCode('415 555 0102');
      await page.waitForSelector('#code-form:not([hidden])');

      // Same number again straight away: refused by the resend cooldown (or, at the latest, the
      // three-sends-a-minute limit).
      let limited = null;
      for (let i = 0; i < 4 && !limited; i++) {
        await page.click('#change-number');
        await page.waitForSelector('#phone-form:not([hidden])');
        const res = await sendCode('415 555 0102');
        if (res.status() === 429) limited = await res.json();
        else await page.waitForSelector('#code-form:not([hidden])');
      }
      assert.ok(limited, 'the server answered 429');
      assert.equal(limited.error.code, 'rate_limited');
      assert.ok(limited.error.retry_after > 2, `retry_after ${limited.error.retry_after}`);

      const countdown = page.locator('#phone-form .retry-countdown');
      await countdown.waitFor();
      const first = await countdown.textContent();
      assert.match(first, /try again in \d+:\d\d/i);
      assert.equal(await page.isDisabled('#send-btn'), true, 'send is disabled while limited');
      assert.match(await page.textContent('#send-btn'), /Try again in \d+:\d\d/);
      const message = await page.textContent('#phone-form [role="alert"]:not([hidden])');
      assert.ok(message.includes(limited.error.message), 'API message shown');

      await page.waitForTimeout(2100);
      const later = await countdown.textContent();
      const secs = (s) => { const [, m, ss] = /(\d+):(\d\d)/.exec(s); return Number(m) * 60 + Number(ss); };
      assert.ok(secs(later) < secs(first), `countdown moves: ${first} → ${later}`);
      assert.ok(secs(first) <= limited.error.retry_after, 'countdown starts from retry_after');
      assertNoProblems();
    });

    test('keyboard only: Tab, type, Enter all the way', async () => {
      await open();
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'country');
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'phone');
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
      assert.notEqual(outline, 'none', 'focus is visible');
      await page.keyboard.type('+1 415 555 0103');
      await page.keyboard.press('Enter');
      await page.waitForSelector('#code-form:not([hidden])');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'code');
      const code = await demoCode();
      await page.keyboard.type(code);
      await page.keyboard.press('Enter');
      await page.waitForSelector('#signed-in:not([hidden])');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'title');
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'signout-btn');
      await page.keyboard.press('Enter');
      await page.waitForSelector('#phone-form:not([hidden])');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'phone');
      assertNoProblems();
    });

    test('offline: a banner, then the send goes out once when back online', async () => {
      await open();
      const phone = '+14155550104';
      await page.selectOption('#country', 'US');
      await page.fill('#phone', '415 555 0104');
      const keys = [];
      page.on('request', (r) => {
        if (r.url().endsWith('/v1/verifications') && r.method() === 'POST') keys.push(r.headers()['idempotency-key']);
      });

      await context.setOffline(true);
      await page.click('#send-btn');
      await page.waitForSelector('#offline-banner:not([hidden])');
      assert.match(await page.textContent('#offline-banner'), /offline/i);
      assert.equal(await page.getAttribute('#send-btn', 'aria-busy'), 'true');
      assert.match(await page.textContent('#send-btn'), /Waiting for connection/);
      await page.waitForTimeout(1500);
      assert.equal(keys.length, 0, 'nothing sent while the browser is offline');

      await context.setOffline(false);
      await page.waitForSelector('#code-form:not([hidden])');
      await page.waitForSelector('#offline-banner', { state: 'hidden' });
      assert.equal(keys.length, 1, 'one request once back online');
      assert.equal((await inbox(server.url, phone)).length, 1, 'exactly one SMS sent');
      assertNoProblems();
    });

    test('a lost response is retried with the same Idempotency-Key and sends one SMS', async () => {
      const phone = '+14155550105';
      await open();
      await page.selectOption('#country', 'US');
      await page.fill('#phone', '415 555 0105');

      // The first request reaches the server but its answer is lost (connection reset): the page
      // retries with backoff, with the same key, and the server must answer with the first
      // response instead of sending a second message.
      const keys = [];
      const statuses = [];
      const replayed = [];
      let dropped = false;
      await page.route('**/v1/verifications', async (route) => {
        keys.push(route.request().headers()['idempotency-key']);
        if (!dropped) {
          dropped = true;
          await route.fetch();
          await route.abort('connectionreset');
        } else {
          const res = await route.fetch();
          statuses.push(res.status());
          replayed.push(res.headers()['idempotent-replayed']);
          await route.fulfill({ response: res });
        }
      });
      await page.click('#send-btn');
      await page.waitForFunction(() => !document.getElementById('send-btn').hasAttribute('aria-busy') || document.body.dataset.step === 'code', null, { timeout: 20000 });
      await page.waitForFunction(() => document.body.dataset.step === 'code' || !document.getElementById('phone-alert').hidden || !document.getElementById('phone-error').hidden);

      // The page's side: a retry, and every attempt carries the same key.
      assert.ok(keys.length >= 2, `retried (${keys.length} requests)`);
      assert.ok(keys.every((k) => k && k === keys[0]), `one Idempotency-Key for every retry: ${keys.join(', ')}`);

      // The server's side: the retry gets the first response (a replay) and no second message.
      assert.equal(statuses[0], 201, `retry answered ${statuses[0]}`);
      assert.equal(replayed[0], 'true', 'the retry was answered with the stored first response');
      assert.equal(await page.evaluate(() => document.body.dataset.step), 'code');
      assert.equal((await inbox(server.url, phone)).length, 1, 'exactly one SMS sent');
      assertNoProblems();
    });

    test('an expired access token is refreshed through the client on reload', async () => {
      await open();
      await sendCode('415 555 0106');
      const code = await demoCode();
      await page.fill('#code', code);
      await page.press('#code', 'Enter');
      await page.waitForSelector('#signed-in:not([hidden])');
      assert.equal((await page.textContent('#title-text')).trim(), "You're signed in", 'sessions are on by default');
      const before = await page.evaluate(() => JSON.parse(sessionStorage.getItem('otpgate.session')));

      // The page comes back with an access token the server refuses: /v1/me answers 401, the
      // page refreshes once (the client's refresh) and asks again.
      await page.evaluate(() => {
        const s = JSON.parse(sessionStorage.getItem('otpgate.session'));
        s.access_token = 'expired';
        sessionStorage.setItem('otpgate.session', JSON.stringify(s));
      });
      const calls = [];
      page.on('response', (r) => { if (/\/v1\/(me|sessions\/refresh)$/.test(r.url())) calls.push(`${new URL(r.url()).pathname} ${r.status()}`); });
      await page.reload();
      await page.waitForSelector('body[data-ready="true"]');
      await page.waitForFunction(() => document.getElementById('me-phone').textContent.startsWith('+'));
      assert.deepEqual(calls, ['/v1/me 401', '/v1/sessions/refresh 200', '/v1/me 200']);
      assert.equal((await page.textContent('#me-phone')).trim(), '+14155550106');
      const after = await page.evaluate(() => JSON.parse(sessionStorage.getItem('otpgate.session')));
      assert.notEqual(after.refresh_token, before.refresh_token, 'the rotated session is kept');
      assertNoProblems();
    });

    test('screenshots at 360 px and 1280 px', async () => {
      const dir = await resultsDir();
      const sizes = [
        { name: '360', viewport: { width: 360, height: 740 } },
        { name: '1280', viewport: { width: 1280, height: 800 } },
      ];
      let n = 0;
      for (const { name, viewport } of sizes) {
        const { context: ctx, page: p } = await newPage(viewport);
        try {
          await open(p);
          const noOverflow = () => p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
          assert.ok(await noOverflow(), `no horizontal scroll at ${name} px`);
          await p.screenshot({ path: path.join(dir, `signin-${name}-1-phone.png`), fullPage: true });

          await p.selectOption('#country', 'US');
          await p.fill('#phone', `415 555 01${10 + n++}`);
          await p.click('#send-btn');
          const code = await demoCode(p);
          await p.fill('#code', code === '000000' ? '111111' : '000000');
          await p.press('#code', 'Enter');
          await p.waitForSelector('#code-error:not([hidden])');
          assert.ok(await noOverflow(), `no horizontal scroll at ${name} px (code step)`);
          await p.screenshot({ path: path.join(dir, `signin-${name}-2-code-error.png`), fullPage: true });

          await p.fill('#code', code);
          await p.press('#code', 'Enter');
          await p.waitForSelector('#signed-in:not([hidden])');
          await p.screenshot({ path: path.join(dir, `signin-${name}-3-signed-in.png`), fullPage: true });
        } finally {
          await ctx.close();
        }
      }
      console.log(`screenshots saved to ${dir}`);
      assertNoProblems();
    });
  });
}
