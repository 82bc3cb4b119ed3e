// The package's types against the contract the server publishes: GET /openapi.json from a real
// otpgate -> TypeScript (openapi-typescript) -> tsc over test/contract.ts, which asserts that
// otpgate.d.ts names exactly the same bodies, answers and error codes. Then the same check on
// altered copies of the document, each of which must fail it: the check can see a change.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import { PACKAGE_DIR, startOtpgate } from './harness.mjs';

const TSC = path.join(PACKAGE_DIR, 'node_modules', 'typescript', 'bin', 'tsc');

/** Compiles test/contract.ts against the types of `doc`; resolves with { ok, output }. */
async function checkAgainst(doc) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'otpgate-contract-'));
  try {
    await writeFile(path.join(dir, 'openapi.d.ts'), astToString(await openapiTS(doc)));
    const tsconfig = {
      compilerOptions: {
        // No DOM library and no checking inside the .d.ts files (`npm run typecheck` does that):
        // only the assertions of contract.ts, which keeps each run short.
        target: 'ES2022', lib: ['ES2022'], module: 'ESNext', moduleResolution: 'Bundler',
        strict: true, noEmit: true, types: [], skipLibCheck: true,
        paths: {
          otpgate: [path.join(PACKAGE_DIR, 'otpgate.d.ts')],
          'otpgate-openapi': [path.join(dir, 'openapi.d.ts')],
        },
      },
      files: [path.join(PACKAGE_DIR, 'test', 'contract.ts')],
    };
    await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
    return await new Promise((resolve) => {
      execFile(process.execPath, [TSC, '-p', path.join(dir, 'tsconfig.json')], (error, stdout, stderr) => {
        resolve({ ok: !error, output: stdout + stderr });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('types against GET /openapi.json', () => {
  let server;
  let doc;

  before(async () => {
    server = await startOtpgate();
    const res = await fetch(`${server.url}/openapi.json`);
    assert.equal(res.status, 200);
    doc = await res.json();
  });
  after(async () => { await server?.stop(); });

  test('otpgate.d.ts matches the server\'s contract', async () => {
    const { ok, output } = await checkAgainst(doc);
    assert.ok(ok, `the package's types differ from the server's /openapi.json:\n${output}`);
  });

  const changes = {
    'a field added to an answer': (d) => { d.components.schemas.SessionView.properties.scope = { type: 'string' }; },
    'a field added to a request': (d) => { d.components.schemas.SendVerificationRequest.properties.app_hash = { type: ['string', 'null'] }; },
    'a field that becomes required': (d) => { d.components.schemas.SendVerificationRequest.required.push('locale'); },
    'an error code added': (d) => { d.components.schemas.ErrorCode.enum.push('phone_blocked'); },
    'a field whose type changes': (d) => { d.components.schemas.MeView.properties.created_at = { type: 'integer' }; },
    'a path renamed': (d) => {
      d.paths['/v1/sessions/refresh2'] = d.paths['/v1/sessions/refresh'];
      delete d.paths['/v1/sessions/refresh'];
    },
    'a status changed': (d) => {
      const send = d.paths['/v1/verifications'].post.responses;
      send['202'] = send['201'];
      delete send['201'];
    },
  };
  for (const [name, change] of Object.entries(changes)) {
    test(`fails on ${name}`, async () => {
      const altered = structuredClone(doc);
      change(altered);
      const { ok, output } = await checkAgainst(altered);
      assert.equal(ok, false, `tsc accepted the altered contract:\n${output}`);
      assert.match(output, /contract\.ts\(\d+,\d+\): error TS/, output);
    });
  }
});
