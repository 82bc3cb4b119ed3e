// Test harness: a real otpgate (`$OTPGATE_TEST_BIN serve`, default ../../target/debug/otpgate) in a
// fresh temporary directory with its own configuration file, plus the small HTTP servers the
// tests put around it (a proxy that loses answers, fake verifiers and providers). Everything
// listens on 127.0.0.1.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function otpgateBin() {
  const env = process.env.OTPGATE_TEST_BIN;
  return env ? path.resolve(process.cwd(), env) : path.resolve(PACKAGE_DIR, '../../target/debug/otpgate');
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Limits that would otherwise trip over a test suite sending everything from 127.0.0.1. */
export const NO_IP_LIMITS = `
[limits]
ip_send = { count = 0, period_secs = 60 }
ip_send_hourly = { count = 0, period_secs = 3600 }
ip_check = { count = 0, period_secs = 60 }
prefix_send = { count = 0, period_secs = 3600 }
`;

/**
 * Starts `otpgate serve --config <dir>/otpgate.toml --listen 127.0.0.1:<free port>` in a new
 * temporary directory (its own SQLite file, keys and limits) and waits for /healthz.
 */
export async function startOtpgate(configToml = '') {
  const bin = otpgateBin();
  if (!existsSync(bin)) {
    throw new Error(`otpgate binary not found at ${bin}: build it (cargo build -p otpgate) or set OTPGATE_TEST_BIN`);
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'otpgate-js-test-'));
  const config = path.join(dir, 'otpgate.toml');
  await writeFile(config, configToml);
  const port = await freePort();
  const child = spawn(bin, ['serve', '--config', config, '--listen', `127.0.0.1:${port}`], {
    cwd: dir,
    // The server refuses unknown OTPGATE_* variables (it ignores OTPGATE_TEST_*).
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk) => { log = (log + chunk.toString()).slice(-20000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (exited) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`otpgate exited early (${JSON.stringify(exited)}):\n${log}`);
    }
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`otpgate did not answer /healthz within 30 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    log: () => log,
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Messages the demo provider "sent" to `phone`, newest first. */
export async function inbox(serverUrl, phone) {
  const res = await fetch(`${serverUrl}/dev/inbox?phone=${encodeURIComponent(phone)}`);
  if (!res.ok) throw new Error(`/dev/inbox answered ${res.status}`);
  return ((await res.json()).messages || []).filter((m) => m.to === phone);
}

/** The newest code sent to `phone`. */
export async function codeFor(serverUrl, phone) {
  const [newest] = await inbox(serverUrl, phone);
  if (!newest) throw new Error(`no message for ${phone}`);
  return newest.code;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** An HTTP server on 127.0.0.1 answering with `handler(req, body, res)`; it keeps what it got. */
export async function startHttp(handler) {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const body = await readBody(req);
    requests.push({ method: req.method, url: req.url, headers: req.headers, body: body.toString() });
    try {
      await handler(req, body, res);
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/**
 * A proxy in front of otpgate that forwards every request and, for those `lose(request)` picks,
 * lets otpgate answer and then cuts the client's connection instead of passing the answer on:
 * the request took effect, the answer was lost. `exchanges` keeps each request with otpgate's
 * answer (`lost: true` for the ones the client never saw).
 */
export async function startLossyProxy(target, lose) {
  const exchanges = [];
  const server = http.createServer(async (req, res) => {
    const body = await readBody(req);
    const headers = { ...req.headers };
    for (const h of ['host', 'connection', 'content-length', 'transfer-encoding', 'accept-encoding']) delete headers[h];
    const upstream = await fetch(target + req.url, {
      method: req.method,
      headers,
      body: body.length ? body : undefined,
    });
    const text = await upstream.text();
    const exchange = {
      method: req.method, url: req.url, headers: req.headers, body: body.toString(),
      status: upstream.status, answerHeaders: Object.fromEntries(upstream.headers), answer: text, lost: false,
    };
    exchanges.push(exchange);
    if (lose(exchange, exchanges)) {
      exchange.lost = true;
      req.socket.destroy();
      return;
    }
    const out = {};
    upstream.headers.forEach((v, k) => {
      if (!['connection', 'transfer-encoding', 'content-length', 'content-encoding', 'keep-alive'].includes(k)) out[k] = v;
    });
    res.writeHead(upstream.status, out);
    res.end(text);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    exchanges,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/** A `redis-server` of our own on a free port, or null when there is none on the PATH. */
export async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const failed = await new Promise((resolve) => {
    child.once('error', () => resolve(true));
    child.once('spawn', () => resolve(false));
  });
  if (failed) return null;
  const deadline = Date.now() + 10000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error('redis-server did not start'); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
}
