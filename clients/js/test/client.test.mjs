// The client against a real otpgate (the debug binary, started per suite in a temporary
// directory): the whole flow, every error code of the table a client can meet, and retries after
// lost answers, through a proxy that lets otpgate answer and then cuts the connection.
//
// Codes of the table a client cannot meet, so not tested here:
// - unsupported_media_type: the client sends every body as application/json;
// - method_not_allowed: it uses only the contract's methods;
// - internal: a bug in otpgate (the client reads it like any other error, see retries.test.mjs).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { OtpgateClient, OtpgateError } from '../otpgate.js';
import {
  NO_IP_LIMITS, codeFor, inbox, startHttp, startLossyProxy, startOtpgate, startRedis,
} from './harness.mjs';

/** A fetch that counts the requests it makes. */
function counting() {
  const calls = [];
  const f = (url, init) => {
    calls.push({ url, method: init.method, headers: init.headers });
    return fetch(url, init);
  };
  return { fetch: f, calls };
}

/** The OtpgateError `promise` rejects with (fails if it resolves or rejects with anything else). */
async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OtpgateError, `an OtpgateError, got ${e && e.stack}`);
    return e;
  }
  assert.fail('expected the call to fail');
}

function wrongCode(code) {
  return code.slice(0, -1) + String((Number(code.at(-1)) + 1) % 10);
}

const GB = '+447400123456';

describe('otpgate client against a real otpgate (demo provider)', () => {
  let server;
  let verifier;
  let client;

  before(async () => {
    // A bot-check verifier: "good" passes, "down" is an outage, anything else fails.
    verifier = await startHttp((req, body, res) => {
      const token = new URLSearchParams(body.toString()).get('response');
      if (token === 'down') return res.writeHead(500).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ success: token === 'good' }));
    });
    server = await startOtpgate(`
[codes]
resend_cooldown_secs = 2
${NO_IP_LIMITS}
[bot_check]
kind = "turnstile"
secret = "test-bot-secret"
required_for = ["GB"]
verify_url = "${verifier.url}/siteverify"
`);
    client = new OtpgateClient({ baseUrl: server.url });
  });

  after(async () => {
    await server?.stop();
    await verifier?.close();
  });

  test('send, check, me, refresh, revoke: a whole sign-in', async () => {
    const phone = '+14155550120';
    const v = await client.send(phone, { channel: 'sms', locale: 'en' });
    assert.match(v.id, /^vf_/);
    assert.equal(v.status, 'pending');
    assert.equal(v.channel, 'sms');
    assert.equal(v.phone, '+1******0120');
    assert.ok(v.expires_in > 0 && v.resend_in > 0 && v.attempts_left === 5, JSON.stringify(v));

    const { status, user, session } = await client.check(phone, await codeFor(server.url, phone));
    assert.equal(status, 'approved');
    assert.equal(user.phone, phone);
    assert.equal(user.created, true);
    assert.equal(session.token_type, 'Bearer');

    const me = await client.me(session.access_token);
    assert.deepEqual([me.id, me.phone], [user.id, phone]);

    const next = await client.refresh(session.refresh_token);
    assert.notEqual(next.refresh_token, session.refresh_token);
    assert.equal((await client.me(next.access_token)).id, user.id);

    assert.equal(await client.revoke(next.refresh_token), undefined);
    const revoked = await failure(client.refresh(next.refresh_token));
    assert.deepEqual([revoked.code, revoked.status], ['unauthorized', 401]);
    // Revoking again is not an error (nothing to revoke).
    await client.revoke(next.refresh_token);
  });

  test('cancel ends a verification; unknown ids are fine', async () => {
    const phone = '+14155550121';
    const v = await client.send(phone);
    assert.equal(await client.cancel(v.id), undefined);
    const e = await failure(client.check(phone, await codeFor(server.url, phone)));
    assert.deepEqual([e.code, e.status], ['verification_not_found', 404]);
    await client.cancel(v.id);
    await client.cancel('vf_does/not?exist');
  });

  test('deleteMe erases the user; their tokens stop working', async () => {
    const phone = '+14155550122';
    await client.send(phone);
    const { session } = await client.check(phone, await codeFor(server.url, phone));
    await client.deleteMe(session.access_token);
    assert.equal((await failure(client.me(session.access_token))).code, 'unauthorized');
    assert.equal((await failure(client.refresh(session.refresh_token))).code, 'unauthorized');
  });

  test('a send whose answer was lost is retried with the same key and texts once', async () => {
    const phone = '+14155550123';
    const proxy = await startLossyProxy(server.url, (x, all) => x.url === '/v1/verifications' && all.length === 1);
    try {
      const retries = [];
      const lossy = new OtpgateClient({ baseUrl: proxy.url, onRetry: (info) => retries.push(info) });
      const v = await lossy.send(phone);

      const sends = proxy.exchanges.filter((x) => x.url === '/v1/verifications');
      assert.equal(sends.length, 2, 'one retry');
      assert.equal(sends[0].lost, true);
      assert.equal(sends[0].status, 201, 'the first request went through: a message was sent');
      const keys = sends.map((x) => x.headers['idempotency-key']);
      assert.ok(keys[0] && keys[0] === keys[1], `one Idempotency-Key for both: ${keys}`);
      assert.equal(sends[1].answerHeaders['idempotent-replayed'], 'true', 'the retry got the stored answer');
      assert.equal(v.id, JSON.parse(sends[0].answer).id, 'the lost answer, replayed');
      assert.equal((await inbox(server.url, phone)).length, 1, 'exactly one SMS');
      assert.deepEqual(retries.map((r) => [r.operation, r.retry, r.error.code]), [['send', 1, 'network_error']]);

      // Another logical send is another key (a resend: the cooldown answers it).
      const again = await failure(lossy.send(phone, { retries: 0 }));
      assert.equal(again.code, 'rate_limited');
      assert.notEqual(proxy.exchanges.at(-1).headers['idempotency-key'], keys[0]);
    } finally {
      await proxy.close();
    }
  });

  test('with no retries, a lost send answer is a network_error', async () => {
    const phone = '+14155550124';
    const proxy = await startLossyProxy(server.url, () => true);
    try {
      const e = await failure(new OtpgateClient({ baseUrl: proxy.url, retries: 0 }).send(phone));
      assert.deepEqual([e.code, e.status], ['network_error', 0]);
      assert.equal(proxy.exchanges.length, 1);
      assert.equal((await inbox(server.url, phone)).length, 1, 'the message went out all the same');
    } finally {
      await proxy.close();
    }
  });

  // Needs the server's refresh-token reuse grace (sessions.refresh_reuse_grace_secs, issue 14):
  // without it the retry presents a spent token, gets 401 and revokes the chain.
  test('a refresh whose answer was lost gets the same successor and keeps the session', async () => {
    const phone = '+14155550125';
    await client.send(phone);
    const { session } = await client.check(phone, await codeFor(server.url, phone));
    const isRefresh = (x) => x.url === '/v1/sessions/refresh';
    const proxy = await startLossyProxy(server.url, (x, all) => isRefresh(x) && all.filter(isRefresh).length === 1);
    try {
      const lossy = new OtpgateClient({ baseUrl: proxy.url });
      const next = await lossy.refresh(session.refresh_token);
      const refreshes = proxy.exchanges.filter(isRefresh);
      assert.equal(refreshes.length, 2, 'retried once');
      assert.equal(refreshes[0].lost, true);
      assert.equal(refreshes[0].status, 200, 'the first refresh spent the token');
      const lost = JSON.parse(refreshes[0].answer).session;
      assert.equal(next.refresh_token, lost.refresh_token, 'the retry got the successor of the lost answer');
      // The chain lives: the successor works and refreshes on.
      assert.equal((await client.me(next.access_token)).phone, phone);
      const after = await client.refresh(next.refresh_token);
      assert.equal((await client.me(after.access_token)).phone, phone);
    } finally {
      await proxy.close();
    }
  });

  test('a refresh is not retried once a retry could fall outside the reuse grace', async () => {
    const phone = '+14155550126';
    await client.send(phone);
    const { session } = await client.check(phone, await codeFor(server.url, phone));
    const proxy = await startLossyProxy(server.url, () => true);
    try {
      const lossy = new OtpgateClient({ baseUrl: proxy.url, refreshRetryWindowMs: 0 });
      const e = await failure(lossy.refresh(session.refresh_token));
      assert.equal(e.code, 'network_error');
      assert.equal(proxy.exchanges.length, 1, 'the spent token was not presented again');
    } finally {
      await proxy.close();
    }
  });

  test('the bot-check token goes through as bot_token', async () => {
    const missing = await failure(client.send(GB));
    assert.deepEqual([missing.code, missing.status, missing.field], ['invalid_request', 400, 'bot_token']);
    const bad = await failure(client.send(GB, { botToken: 'bad' }));
    assert.deepEqual([bad.code, bad.field], ['invalid_request', 'bot_token']);
    const v = await client.send(GB, { botToken: 'good' });
    assert.equal(v.status, 'pending');
    const forms = verifier.requests.map((r) => new URLSearchParams(r.body).get('response'));
    assert.deepEqual(forms, ['bad', 'good']);
  });

  describe('every error code a client can meet', () => {
    test('invalid_request: a field the server refuses (with field)', async () => {
      const locale = await failure(client.send('+14155550130', { locale: 'en_US' }));
      assert.deepEqual([locale.code, locale.status, locale.field], ['invalid_request', 400, 'locale']);
      assert.ok(locale.message.length > 0 && locale.requestId, 'message and request id');
      const code = await failure(client.check('+14155550130', '12a456'));
      assert.deepEqual([code.code, code.field], ['invalid_request', 'code']);
    });

    test('payload_too_large: a body over the server limit', async () => {
      const e = await failure(client.send(GB, { botToken: 'x'.repeat(5000) }));
      assert.deepEqual([e.code, e.status], ['payload_too_large', 413]);
    });

    test('invalid_phone', async () => {
      const e = await failure(client.send('+1 555'));
      assert.deepEqual([e.code, e.status, e.field], ['invalid_phone', 422, 'phone']);
    });

    test('unsupported_region: a premium-rate number', async () => {
      const e = await failure(client.send('+19002345678'));
      assert.deepEqual([e.code, e.status], ['unsupported_region', 422]);
    });

    test('invalid_code, then too_many_attempts (never retried)', async () => {
      const phone = '+14155550131';
      await client.send(phone);
      const wrong = wrongCode(await codeFor(server.url, phone));
      const first = await failure(client.check(phone, wrong));
      assert.deepEqual([first.code, first.status, first.field, first.attemptsLeft], ['invalid_code', 422, 'code', 4]);
      const counted = counting();
      const c = new OtpgateClient({ baseUrl: server.url, fetch: counted.fetch });
      let last;
      let checks = 0;
      while (checks < 6 && (!last || last.code === 'invalid_code')) {
        last = await failure(c.check(phone, wrong));
        checks++;
      }
      assert.deepEqual([last.code, last.status], ['too_many_attempts', 429]);
      // Even the right code is refused now.
      const dead = await failure(c.check(phone, await codeFor(server.url, phone)));
      assert.equal(dead.code, 'too_many_attempts');
      assert.equal(counted.calls.length, checks + 1, 'one request per check: a 429 too_many_attempts is final');
    });

    test('verification_not_found', async () => {
      const e = await failure(client.check('+14155550132', '123456'));
      assert.deepEqual([e.code, e.status], ['verification_not_found', 404]);
    });

    test('rate_limited: retried when Retry-After fits the deadline, answered when it does not', async () => {
      const phone = '+14155550133';
      const first = await client.send(phone);

      const counted = counting();
      const c = new OtpgateClient({ baseUrl: server.url, fetch: counted.fetch });
      const e = await failure(c.send(phone, { deadlineMs: 1000 }));
      assert.deepEqual([e.code, e.status], ['rate_limited', 429]);
      assert.ok(e.retryAfter >= 1 && e.retryAfter <= 2, `retryAfter ${e.retryAfter}`);
      assert.equal(counted.calls.length, 1, 'a wait past the deadline is not taken');

      counted.calls.length = 0;
      const started = Date.now();
      const resent = await c.send(phone);
      assert.equal(resent.id, first.id, 'a resend of the same verification');
      assert.equal(counted.calls.length, 2, 'the 429 was retried after its Retry-After');
      assert.ok(Date.now() - started >= 900, 'and it waited');
    });

    test('unauthorized', async () => {
      const me = await failure(client.me('not-a-token'));
      assert.deepEqual([me.code, me.status], ['unauthorized', 401]);
      const refresh = await failure(client.refresh('rt_not_a_token'));
      assert.deepEqual([refresh.code, refresh.status], ['unauthorized', 401]);
    });

    test('provider_unavailable: the bot-check verifier is down', async () => {
      const counted = counting();
      const c = new OtpgateClient({ baseUrl: server.url, fetch: counted.fetch });
      const e = await failure(c.send(GB, { botToken: 'down' }));
      assert.deepEqual([e.code, e.status], ['provider_unavailable', 503]);
      assert.equal(e.retryAfter, 30);
      assert.equal(counted.calls.length, 1, 'a 30 s Retry-After does not fit the 15 s deadline');
    });

    test('not_found: a base URL that is not otpgate\'s', async () => {
      const e = await failure(new OtpgateClient({ baseUrl: server.url + '/otp' }).me('x'));
      assert.deepEqual([e.code, e.status], ['not_found', 404]);
    });
  });
});

describe('otpgate client: errors of other deployments', () => {
  test('undeliverable: the provider cannot reach the number', async () => {
    // Twilio Messaging answering 21612 ("cannot route to this number").
    const twilio = await startHttp((req, body, res) => {
      res.writeHead(400, { 'content-type': 'application/json' })
        .end(JSON.stringify({ code: 21612, message: 'not routable', status: 400 }));
    });
    const server = await startOtpgate(`
${NO_IP_LIMITS}
[provider]
kind = "twilio-messaging"
[provider.twilio]
account_sid = "AC00000000000000000000000000000000"
auth_token = "test-auth-token"
[provider.twilio.messaging]
from = "+15005550006"
base_url = "${twilio.url}"
`);
    try {
      const e = await failure(new OtpgateClient({ baseUrl: server.url }).send('+14155550140'));
      assert.deepEqual([e.code, e.status, e.field], ['undeliverable', 422, 'phone']);
      assert.equal(twilio.requests.length, 1);
    } finally {
      await server.stop();
      await twilio.close();
    }
  });

  test('service_unavailable: the hot store is down', async (t) => {
    const redis = await startRedis();
    if (!redis) {
      t.skip('no redis-server on the PATH');
      return;
    }
    const server = await startOtpgate(`
${NO_IP_LIMITS}
[store]
hot = "${redis.url}"
durable = "sqlite://otpgate.db"
timeout_ms = 500
`);
    try {
      const counted = counting();
      const c = new OtpgateClient({ baseUrl: server.url, fetch: counted.fetch });
      await c.send('+14155550141');
      await redis.stop();
      counted.calls.length = 0;
      const e = await failure(c.send('+14155550142', { deadlineMs: 3000 }));
      assert.deepEqual([e.code, e.status], ['service_unavailable', 503]);
      assert.equal(e.retryAfter, 5);
      assert.equal(counted.calls.length, 1, 'a 5 s Retry-After does not fit a 3 s deadline');
    } finally {
      await server.stop();
      await redis.stop();
    }
  });
});
