// otpgate as an OpenID Connect provider, driven by the npm package openid-client (an
// OpenID-certified relying-party library, unmodified) with headless Chromium as the user's
// browser, against a real otpgate (demo provider): discovery, authorization with PKCE, the phone
// sign-in on otpgate's page through the demo inbox, the code exchange, the ID token validated
// against the JWKS (RS256), UserInfo, refresh, single sign-on, revocation and RP-initiated logout.
// Run with: OTPGATE_TEST_BROWSER=1 npm test   (from web/; see web/README.md)
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import * as client from 'openid-client';
import { ENABLED, startServer, launchBrowser, inbox } from './harness.mjs';

if (!ENABLED) {
  const why = 'browser tests skipped: set OTPGATE_TEST_BROWSER=1 to run them (needs /usr/bin/chromium and a built otpgate)';
  console.log(`NOTICE: ${why}`);
  test('OpenID Connect with openid-client in Chromium', { skip: why }, () => {});
} else {
  suite();
}

// The relying party's side of the browser: a page at the redirect URIs that says where it is.
async function startApp() {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>app</title><p id="app">back at the app</p>');
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  return { base: `http://127.0.0.1:${port}`, close: () => new Promise((r) => srv.close(r)) };
}

function suite() {
  describe('OpenID Connect (openid-client)', () => {
    let browser;
    let server;
    let app;
    let config;
    let context;
    let page;
    const problems = [];

    before(async () => {
      app = await startApp();
      server = await startServer({
        configToml: (port) => `
[oidc]
issuer = "http://127.0.0.1:${port}"

[[oidc.clients]]
id = "web"
name = "Example web app"
kind = "public"
redirect_uris = ["${app.base}/callback"]
post_logout_redirect_uris = ["${app.base}/"]
`,
      });
      browser = await launchBrowser();
      context = await browser.newContext({ locale: 'en-US', timezoneId: 'UTC' });
      context.setDefaultTimeout(15000);
      page = await context.newPage();
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
      });
      // The issuer is http on loopback (development): openid-client allows it only when told.
      config = await client.discovery(new URL(server.url), 'web', undefined, client.None(), {
        execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
      });
    });

    after(async () => {
      await context?.close();
      await browser?.close();
      await server?.stop();
      await app?.close();
    });

    const redirectUri = () => `${app.base}/callback`;

    async function authorizationUrl(extra = {}) {
      const codeVerifier = client.randomPKCECodeVerifier();
      const params = {
        redirect_uri: redirectUri(),
        scope: 'openid phone offline_access',
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state: client.randomState(),
        nonce: client.randomNonce(),
        ...extra,
      };
      return { url: client.buildAuthorizationUrl(config, params), codeVerifier, params };
    }

    async function backAtTheApp(action) {
      const arrived = page.waitForURL((u) => u.href.startsWith(app.base + '/'));
      await action();
      await arrived;
      return new URL(page.url());
    }

    let tokens;
    let claims;

    test('discovery, PKCE authorization, phone sign-in, code exchange, ID token against the JWKS', async () => {
      assert.equal(config.serverMetadata().issuer, server.url);
      assert.deepEqual(config.serverMetadata().code_challenge_methods_supported, ['S256']);
      const { url, codeVerifier, params } = await authorizationUrl({ login_hint: '+14155550123' });
      await page.goto(url.href);
      await page.waitForSelector('body[data-ready="true"][data-oidc="true"]');
      assert.match(await page.textContent('#phone-form .lead'), /Example web app/);
      assert.equal(await page.inputValue('#phone'), '+14155550123', 'login_hint prefills the phone');

      const sent = page.waitForResponse((r) => r.url().endsWith('/v1/verifications') && r.request().method() === 'POST');
      await page.click('#send-btn');
      assert.equal((await sent).status(), 201);
      await page.waitForSelector('#code-form:not([hidden])');
      const [message] = await inbox(server.url, '+14155550123');
      assert.match(message.code, /^\d{6}$/, 'the demo inbox has the code');

      await page.fill('#code', message.code);
      const current = await backAtTheApp(() => page.press('#code', 'Enter'));
      assert.equal(current.searchParams.get('state'), params.state, 'state comes back exactly');

      tokens = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: codeVerifier,
        expectedState: params.state,
        expectedNonce: params.nonce,
        idTokenExpected: true,
      });
      claims = tokens.claims();
      assert.equal(claims.nonce, params.nonce);
      assert.equal(claims.iss, server.url);
      assert.equal(claims.aud, 'web');
      assert.deepEqual(claims.amr, ['sms']);
      assert.equal(claims.phone_number, '+14155550123');
      assert.equal(claims.phone_number_verified, true);
      assert.match(claims.sub, /^usr_/);
      const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url').toString());
      assert.equal(header.alg, 'RS256');
      const jwks = await (await fetch(`${server.url}/.well-known/jwks.json`)).json();
      assert.ok(jwks.keys.some((k) => k.kid === header.kid && k.kty === 'RSA'), 'signed by an RSA key of the JWKS');
      assert.deepEqual(problems, [], 'no page errors or CSP violations');
    });

    test('UserInfo and refresh', async () => {
      const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      assert.equal(info.phone_number, '+14155550123');
      const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
      assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'refresh tokens rotate');
      assert.equal(refreshed.claims().sub, claims.sub);
      tokens = refreshed;
    });

    test('single sign-on: a second authorization skips the phone', async () => {
      const { url, codeVerifier, params } = await authorizationUrl({ prompt: 'none' });
      const current = await backAtTheApp(() => page.goto(url.href));
      const again = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: codeVerifier, expectedState: params.state, expectedNonce: params.nonce, idTokenExpected: true,
      });
      assert.equal(again.claims().sub, claims.sub);
      await client.tokenRevocation(config, again.refresh_token);
      await assert.rejects(client.refreshTokenGrant(config, again.refresh_token), (e) => e.error === 'invalid_grant');
    });

    test('RP-initiated logout ends the login session', async () => {
      const end = client.buildEndSessionUrl(config, {
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: `${app.base}/`,
        state: 'bye',
      });
      const current = await backAtTheApp(() => page.goto(end.href));
      assert.equal(current.pathname, '/');
      assert.equal(current.searchParams.get('state'), 'bye');
      const { url, codeVerifier, params } = await authorizationUrl({ prompt: 'none' });
      const after = await backAtTheApp(() => page.goto(url.href));
      assert.equal(after.searchParams.get('error'), 'login_required', 'signed out: prompt=none cannot sign in');
      await assert.rejects(
        client.authorizationCodeGrant(config, after, { pkceCodeVerifier: codeVerifier, expectedState: params.state }),
        (e) => e.error === 'login_required',
      );
    });
  });
}
