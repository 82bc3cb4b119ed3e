// Test harness: a real otpgate server in a fresh temporary directory, and Debian's Chromium
// driven by playwright-core (no browser download).
import { spawn } from 'node:child_process';
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const RESULTS_DIR = path.join(WEB_DIR, 'test-results');

export const ENABLED = process.env.OTPGATE_TEST_BROWSER === '1';

export function otpgateBin() {
  const env = process.env.OTPGATE_TEST_BIN;
  return env ? path.resolve(process.cwd(), env) : path.resolve(WEB_DIR, '../target/debug/otpgate');
}

export function chromiumPath() {
  return process.env.CHROMIUM_BIN || '/usr/bin/chromium';
}

async function freePort() {
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

// Starts `$OTPGATE_TEST_BIN serve --listen 127.0.0.1:<port>` in its own temporary working directory
// (so it gets its own SQLite file and its own rate limits) and waits for /healthz. `configToml`,
// if given, is called with the chosen port and its result written to otpgate.toml there (for
// settings that name the server's own URL, like the OpenID Connect issuer).
export async function startServer({ configToml } = {}) {
  const bin = otpgateBin();
  if (!existsSync(bin)) {
    throw new Error(`otpgate binary not found at ${bin}: build it (cargo build -p otpgate) or set OTPGATE_TEST_BIN`);
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'otpgate-web-test-'));
  const port = await freePort();
  const args = ['serve', '--listen', `127.0.0.1:${port}`];
  if (configToml) {
    await writeFile(path.join(dir, 'otpgate.toml'), configToml(port));
    args.push('--config', path.join(dir, 'otpgate.toml'));
  }
  const extra = (process.env.OTPGATE_TEST_SERVE_ARGS || '').split(/\s+/).filter(Boolean);
  const child = spawn(bin, [...args, ...extra], {
    cwd: dir,
    // The server refuses unknown OTPGATE_* variables; it ignores OTPGATE_TEST_*, which is why
    // the harness's own settings use that prefix.
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
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
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

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: chromiumPath(),
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

export async function resultsDir() {
  await mkdir(RESULTS_DIR, { recursive: true });
  return RESULTS_DIR;
}

// Messages the demo provider "sent" to `phone`, newest first.
export async function inbox(serverUrl, phone) {
  const res = await fetch(`${serverUrl}/dev/inbox?phone=${encodeURIComponent(phone)}`);
  if (!res.ok) throw new Error(`/dev/inbox answered ${res.status}`);
  const body = await res.json();
  return (body.messages || []).filter((m) => m.to === phone);
}
