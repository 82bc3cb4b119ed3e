// The client's retry rules, deadline, abort and error reading, against scripted answers (an
// injected fetch) and small local HTTP servers; no otpgate needed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULTS, OtpgateClient, OtpgateError, newIdempotencyKey } from '../otpgate.js';
import { PACKAGE_DIR, startHttp } from './harness.mjs';

const VERIFICATION = {
  id: 'vf_1', status: 'pending', phone: '+1******0100', channel: 'sms',
  expires_at: '2030-01-01T00:00:00Z', expires_in: 120, resend_in: 30, attempts_left: 5,
};
const SESSION = { access_token: 'a', token_type: 'Bearer', expires_in: 900, refresh_token: 'rt_2', refresh_expires_in: 9 };

function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}
function apiError(status, code, extra = {}, headers = {}) {
  return json(status, { error: { code, message: `${code} message`, request_id: 'req-1', ...extra } }, headers);
}
function networkError() {
  return new TypeError('fetch failed');
}

/** A fetch that plays `script` (answers, errors, or functions of the request) in order. */
function scripted(...script) {
  const calls = [];
  const f = async (url, init) => {
    calls.push({ url, init, at: Date.now() });
    const step = script[Math.min(calls.length, script.length) - 1];
    const out = typeof step === 'function' ? await step(url, init) : step;
    if (out instanceof Error) throw out;
    return out;
  };
  return { fetch: f, calls };
}

function client(fetch, options = {}) {
  return new OtpgateClient({ baseUrl: 'http://otpgate.test', fetch, ...options });
}

async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected the call to fail');
}

describe('retries', () => {
  test('defaults: 3 retries, a 15 s deadline', () => {
    assert.deepEqual([DEFAULTS.retries, DEFAULTS.deadlineMs], [3, 15000]);
    const c = new OtpgateClient({ baseUrl: 'http://x/' });
    assert.deepEqual([c.retries, c.deadlineMs, c.baseUrl], [3, 15000, 'http://x']);
  });

  test('network errors, 503 and 502 are retried with backoff; every retry of a send keeps its key', async () => {
    const s = scripted(networkError(), apiError(503, 'service_unavailable'), new Response('<html>', { status: 502 }), json(201, VERIFICATION));
    const retries = [];
    const v = await client(s.fetch, { onRetry: (r) => retries.push(r) }).send('+14155550100');
    assert.deepEqual(v, VERIFICATION);
    assert.equal(s.calls.length, 4);
    const keys = s.calls.map((c) => c.init.headers['Idempotency-Key']);
    assert.ok(keys[0] && keys.every((k) => k === keys[0]), `one key: ${keys}`);
    assert.deepEqual(retries.map((r) => [r.retry, r.error.code]), [[1, 'network_error'], [2, 'service_unavailable'], [3, 'unexpected_response']]);
    // Jittered exponential backoff: retry n waits between half and all of 250 ms * 2^(n-1).
    retries.forEach((r, i) => {
      const full = 250 * 2 ** i;
      assert.ok(r.delayMs >= full / 2 && r.delayMs <= full, `retry ${r.retry} waited ${r.delayMs} ms`);
    });
    for (let i = 1; i < s.calls.length; i++) {
      assert.ok(s.calls[i].at - s.calls[i - 1].at >= retries[i - 1].delayMs - 5, 'it waited before retrying');
    }
  });

  test('two sends are two keys; a key of the caller\'s is used as given', async () => {
    const s = scripted(() => json(201, VERIFICATION));
    const c = client(s.fetch);
    await c.send('+14155550100');
    await c.send('+14155550100');
    await c.send('+14155550100', { idempotencyKey: 'my-key-1' });
    const keys = s.calls.map((x) => x.init.headers['Idempotency-Key']);
    assert.notEqual(keys[0], keys[1]);
    assert.equal(keys[2], 'my-key-1');
  });

  test('`retries` bounds the attempts, on the client and per call', async () => {
    const down = () => apiError(503, 'service_unavailable');
    const s = scripted(down);
    const e = await failure(client(s.fetch, { retries: 1 }).me('t'));
    assert.equal(e.code, 'service_unavailable');
    assert.equal(s.calls.length, 2);

    const t = scripted(down);
    await failure(client(t.fetch, { retries: 1 }).me('t', { retries: 0 }));
    assert.equal(t.calls.length, 1, 'per call wins');

    const u = scripted(down);
    await failure(client(u.fetch).me('t'));
    assert.equal(u.calls.length, 4, 'default: 3 retries');
  });

  test('a 429 is retried after its Retry-After when that fits the deadline', async () => {
    const s = scripted(apiError(429, 'rate_limited', { retry_after: 1 }, { 'retry-after': '1' }), json(200, VERIFICATION));
    await client(s.fetch).send('+14155550100');
    assert.equal(s.calls.length, 2);
    assert.ok(s.calls[1].at - s.calls[0].at >= 995, 'waited the Retry-After');

    const t = scripted(apiError(429, 'rate_limited', { retry_after: 20 }, { 'retry-after': '20' }), json(200, VERIFICATION));
    const started = Date.now();
    const e = await failure(client(t.fetch).send('+14155550100'));
    assert.deepEqual([e.code, e.status, e.retryAfter], ['rate_limited', 429, 20]);
    assert.equal(t.calls.length, 1, '20 s does not fit 15 s');
    assert.ok(Date.now() - started < 1000, 'answered at once');

    const u = scripted(apiError(429, 'rate_limited', { retry_after: 1 }), json(200, VERIFICATION));
    await failure(client(u.fetch).send('+14155550100', { deadlineMs: 900 }));
    assert.equal(u.calls.length, 1, 'per call: 1 s does not fit 0.9 s');
  });

  test('a 503 Retry-After longer than the backoff is honoured', async () => {
    const s = scripted(apiError(503, 'provider_unavailable', { retry_after: 1 }), json(201, VERIFICATION));
    await client(s.fetch).send('+14155550100');
    assert.ok(s.calls[1].at - s.calls[0].at >= 995);
  });

  test('final answers are not retried', async () => {
    for (const [status, code] of [[429, 'too_many_attempts'], [422, 'invalid_code'], [401, 'unauthorized'], [500, 'internal'], [400, 'invalid_request']]) {
      const s = scripted(apiError(status, code, { retry_after: 0 }));
      const e = await failure(client(s.fetch).send('+14155550100'));
      assert.deepEqual([e.code, e.status], [code, status]);
      assert.equal(s.calls.length, 1, code);
    }
  });

  test('a check is retried only after rate_limited: it is not safe to repeat', async () => {
    for (const answer of [networkError, () => apiError(503, 'service_unavailable', { retry_after: 0 }), () => apiError(503, 'provider_unavailable', { retry_after: 0 }), () => new Response('', { status: 502 })]) {
      const s = scripted(answer, json(200, { status: 'approved' }));
      await failure(client(s.fetch).check('+14155550100', '123456'));
      assert.equal(s.calls.length, 1, 'no retry');
    }
    const s = scripted(apiError(429, 'rate_limited', { retry_after: 0 }), json(200, { status: 'approved' }));
    assert.deepEqual(await client(s.fetch).check('+14155550100', '123456'), { status: 'approved' });
    assert.equal(s.calls.length, 2);
  });

  test('deleteMe is not repeated after a lost answer; me, cancel and revoke are', async () => {
    const del = scripted(networkError(), new Response(null, { status: 204 }));
    assert.equal((await failure(client(del.fetch).deleteMe('t'))).code, 'network_error');
    assert.equal(del.calls.length, 1);
    for (const run of [(c) => c.me('t'), (c) => c.cancel('vf_1'), (c) => c.revoke('rt_1')]) {
      const s = scripted(networkError(), (url, init) => (init.method === 'GET' ? json(200, { id: 'usr_1', phone: '+1', created_at: 'x' }) : new Response(null, { status: 204 })));
      await run(client(s.fetch));
      assert.equal(s.calls.length, 2);
    }
  });

  test('a refresh retry starts only inside the reuse-grace window', async () => {
    const slowLoss = () => new Promise((_, reject) => setTimeout(() => reject(networkError()), 120));
    const s = scripted(slowLoss, json(200, { session: SESSION }));
    const e = await failure(client(s.fetch, { refreshRetryWindowMs: 100 }).refresh('rt_1'));
    assert.equal(e.code, 'network_error');
    assert.equal(s.calls.length, 1, 'past the window: not presented again');

    const t = scripted(networkError(), json(200, { session: SESSION }));
    assert.deepEqual(await client(t.fetch).refresh('rt_1'), SESSION);
    assert.equal(t.calls.length, 2, 'inside the window: retried');
    assert.equal(t.calls[1].init.body, JSON.stringify({ refresh_token: 'rt_1' }), 'with the same token');

    const u = scripted(networkError(), json(200, { session: SESSION }));
    await failure(client(u.fetch).refresh('rt_1', { refreshRetryWindowMs: 0 }));
    assert.equal(u.calls.length, 1, 'per call');
  });
});

describe('deadline and abort', () => {
  test('the deadline ends a call that hangs: timeout', async () => {
    const hang = await startHttp(() => new Promise(() => {}));
    try {
      const started = Date.now();
      const e = await failure(new OtpgateClient({ baseUrl: hang.url, deadlineMs: 400 }).me('t'));
      assert.ok(e instanceof OtpgateError);
      assert.deepEqual([e.code, e.status], ['timeout', 0]);
      const took = Date.now() - started;
      assert.ok(took >= 390 && took < 2000, `took ${took} ms`);
      assert.equal(hang.requests.length, 1, 'no time left for a retry');
    } finally {
      await hang.close();
    }
  });

  test('the deadline bounds the retries too', async () => {
    const s = scripted(networkError);
    const started = Date.now();
    const e = await failure(client(s.fetch, { retries: 100 }).me('t', { deadlineMs: 1000 }));
    assert.equal(e.code, 'network_error');
    assert.ok(Date.now() - started <= 1000, 'no wait past the deadline');
    assert.ok(s.calls.length > 2 && s.calls.length < 100, `${s.calls.length} attempts`);
  });

  test('an AbortSignal cancels a request in flight and a wait between retries', async () => {
    const hang = await startHttp(() => new Promise(() => {}));
    try {
      const ac = new AbortController();
      const call = new OtpgateClient({ baseUrl: hang.url }).me('t', { signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      const e = await failure(call);
      assert.equal(e.name, 'AbortError');
    } finally {
      await hang.close();
    }

    const s = scripted(apiError(503, 'service_unavailable', { retry_after: 10 }));
    const ac = new AbortController();
    const started = Date.now();
    const call = client(s.fetch).me('t', { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('user left')), 50);
    const e = await failure(call);
    assert.equal(e.message, 'user left', 'rejects with the signal\'s reason');
    assert.ok(Date.now() - started < 1000);
    assert.equal(s.calls.length, 1);

    const already = AbortSignal.abort();
    const t = scripted(json(200, {}));
    assert.equal((await failure(client(t.fetch).me('t', { signal: already }))).name, 'AbortError');
    assert.equal(t.calls.length, 0);
  });
});

describe('requests and answers', () => {
  test('what goes on the wire', async () => {
    const s = scripted(json(201, VERIFICATION), json(200, { status: 'approved' }), json(200, {}), new Response(null, { status: 204 }));
    const c = new OtpgateClient({ baseUrl: 'https://verify.example.com/otp/', fetch: s.fetch });
    await c.send('+14155550100', { channel: 'whatsapp', locale: 'pt-BR', botToken: 'tok' });
    await c.check('+14155550100', '012345');
    await c.me('acc');
    await c.cancel('vf_a/b');
    const [send, check, me, cancel] = s.calls;
    assert.equal(send.url, 'https://verify.example.com/otp/v1/verifications');
    assert.equal(send.init.method, 'POST');
    assert.equal(send.init.headers['Content-Type'], 'application/json');
    assert.deepEqual(JSON.parse(send.init.body), { phone: '+14155550100', channel: 'whatsapp', locale: 'pt-BR', bot_token: 'tok' });
    assert.deepEqual(Object.keys(send.init).sort(), ['body', 'headers', 'method', 'signal']);
    assert.deepEqual(JSON.parse(check.init.body), { phone: '+14155550100', code: '012345' });
    assert.equal(check.init.headers['Idempotency-Key'], undefined);
    assert.equal(me.init.headers.Authorization, 'Bearer acc');
    assert.equal(me.init.body, undefined);
    assert.equal(cancel.url, 'https://verify.example.com/otp/v1/verifications/vf_a%2Fb');
    assert.equal(cancel.init.method, 'DELETE');
  });

  test('an error answer becomes an OtpgateError with every field', async () => {
    const s = scripted(apiError(422, 'invalid_code', { attempts_left: 3, field: 'code' }));
    const e = await failure(client(s.fetch).check('+1', '000000'));
    assert.ok(e instanceof OtpgateError && e instanceof Error);
    assert.equal(e.name, 'OtpgateError');
    assert.deepEqual(
      { code: e.code, status: e.status, message: e.message, attemptsLeft: e.attemptsLeft, field: e.field, requestId: e.requestId, retryAfter: e.retryAfter },
      { code: 'invalid_code', status: 422, message: 'invalid_code message', attemptsLeft: 3, field: 'code', requestId: 'req-1', retryAfter: undefined },
    );
  });

  test('Retry-After from the header, in seconds or as a date', async () => {
    const inTwoMinutes = new Date(Date.now() + 120000).toUTCString();
    for (const [header, expected] of [['7', 7], [inTwoMinutes, 120]]) {
      const s = scripted(new Response('{"error":{"code":"rate_limited","message":"m","request_id":"r"}}', { status: 429, headers: { 'retry-after': header } }));
      const e = await failure(client(s.fetch).send('+1', { retries: 0 }));
      assert.ok(Math.abs(e.retryAfter - expected) <= 1, `${header}: ${e.retryAfter}`);
    }
  });

  test('answers that are not otpgate\'s: unexpected_response', async () => {
    const html = scripted(new Response('<h1>Bad gateway</h1>', { status: 502 }));
    const e = await failure(client(html.fetch).check('+1', '000000'));
    assert.deepEqual([e.code, e.status], ['unexpected_response', 502]);
    const notJson = scripted(new Response('hello', { status: 200 }));
    assert.equal((await failure(client(notJson.fetch).me('t'))).code, 'unexpected_response');
  });

  test('nothing listening: network_error after the retries', async () => {
    const closed = await startHttp(() => {});
    await closed.close();
    const retries = [];
    const e = await failure(new OtpgateClient({ baseUrl: closed.url, onRetry: (r) => retries.push(r) }).me('t'));
    assert.deepEqual([e.code, e.status], ['network_error', 0]);
    assert.ok(e.cause instanceof Error, 'the fetch error is the cause');
    assert.equal(retries.length, 3);
  });

  test('bad options are refused', () => {
    assert.throws(() => new OtpgateClient({}), TypeError);
    assert.throws(() => new OtpgateClient({ baseUrl: 'http://x?a=1' }), TypeError);
    assert.throws(() => new OtpgateClient({ baseUrl: 'http://x', retries: -1 }), TypeError);
    assert.throws(() => new OtpgateClient({ baseUrl: 'http://x', deadlineMs: 'soon' }), TypeError);
  });
});

describe('portability', () => {
  test('idempotency keys are random v4 UUIDs, with or without crypto.randomUUID', () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    assert.match(newIdempotencyKey(), uuid);
    const real = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
    try {
      const webcrypto = globalThis.crypto;
      Object.defineProperty(globalThis, 'crypto', { value: { getRandomValues: (b) => webcrypto.getRandomValues(b) }, configurable: true });
      const a = newIdempotencyKey();
      assert.match(a, uuid);
      Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true });
      const b = newIdempotencyKey();
      assert.match(b, uuid);
      assert.notEqual(a, b);
    } finally {
      Object.defineProperty(globalThis, 'crypto', real);
    }
  });

  test('the module imports nothing and uses no Node built-ins', async () => {
    const source = await readFile(path.join(PACKAGE_DIR, 'otpgate.js'), 'utf8');
    const code = source.replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
    assert.doesNotMatch(code, /\bimport\b|\brequire\s*\(/, 'no imports');
    assert.doesNotMatch(code, /\b(process|Buffer|global|__dirname|setImmediate)\b/, 'no Node globals');
    assert.doesNotMatch(code, /#[a-zA-Z_]/, 'no private class members (not in every React Native engine)');
    const pkg = JSON.parse(await readFile(path.join(PACKAGE_DIR, 'package.json'), 'utf8'));
    assert.equal(pkg.name, 'otpgate');
    assert.equal(pkg.dependencies, undefined, 'no runtime dependencies');
  });
});
