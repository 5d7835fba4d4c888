/**
 * A gateway whose `policy:` block has no `allowedSigners` applies unsigned commits: it says so
 * once at start (a warn line `policy.unsigned_accepted` with a hint how to require signatures),
 * not on every pull, and not at all when signatures are required. `hoop gateway` shows that line
 * on stderr, where its start-up log goes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import type { PolicySourceConfig } from '../../src/gateway/config/config.js';
import { GatewayPolicySource } from '../../src/gateway/config/policy-source.js';
import { createLogger } from '../../src/log.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { eventually } from '../harness/wait.js';

const BUNDLE =
  'version: 1\nconnections:\n  - { name: db, type: postgres, host: 127.0.0.1, database: d, user: u, password: "${env:DB_PASSWORD}" }\naccess:\n  - { name: team, subjects: [alice], connections: [db] }\n';

let repo: PolicyGitRepo;
let key: string;
let signers: string;
let n = 0;

beforeAll(() => {
  repo = new PolicyGitRepo('hoop-policy-source-');
  key = repo.sshKey('key');
  signers = join(repo.base, 'allowed_signers');
  writeFileSync(signers, `author@example.org namespaces="git" ${readFileSync(`${key}.pub`, 'utf8').trim()}\n`);
  repo.commit(BUNDLE, key);
});
afterAll(() => repo.remove());

const env = (): NodeJS.ProcessEnv => ({ ...repo.env, DB_PASSWORD: 'x' });

function source(allowedSignersFile?: string): PolicySourceConfig {
  return {
    repo: repo.dir,
    ref: 'main',
    ...(allowedSignersFile ? { allowedSignersFile } : {}),
    allowedSecrets: ['${env:DB_PASSWORD}'],
    allowedCommands: [],
    pullIntervalSeconds: 3600,
    workDir: join(repo.base, `work${n++}`),
  };
}

/** Opens a policy source with a logger whose lines are kept. */
async function open(config: PolicySourceConfig): Promise<{ ps: GatewayPolicySource; events: () => Record<string, unknown>[] }> {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', sink: { write: (l: string) => lines.push(l) } });
  const ps = await GatewayPolicySource.open(config, { log, env: env() });
  return { ps, events: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('a policy repo without allowedSigners', () => {
  it('is said once at start, with a hint how to require signatures', async () => {
    const { ps, events } = await open(source());
    try {
      const warned = events().filter((e) => e.event === 'policy.unsigned_accepted');
      expect(warned).toEqual([
        expect.objectContaining({
          level: 'warn',
          ref: 'main',
          message: expect.stringContaining('applied without a signature check'),
          hint: expect.stringContaining('set policy.allowedSigners'),
        }),
      ]);
      repo.commit(BUNDLE.replace('[alice]', '[alice, bob]'));
      await ps.refresh();
      expect(events().filter((e) => e.event === 'policy.unsigned_accepted')).toHaveLength(1);
    } finally {
      await ps.close();
    }
  });

  it('is not said when signatures are required', async () => {
    repo.commit(`${BUNDLE}# signed\n`, key);
    const { ps, events } = await open(source(signers));
    try {
      expect(events().some((e) => e.event === 'policy.applied')).toBe(true);
      expect(events().some((e) => e.event === 'policy.unsigned_accepted')).toBe(false);
    } finally {
      await ps.close();
    }
  });

  it('hoop gateway shows it on stderr at start', async () => {
    const file = join(repo.base, 'gateway.yaml');
    writeFileSync(
      file,
      `listen: 127.0.0.1:0\nissuers:\n  - { issuer: "http://127.0.0.1:1", audience: hoop }\ndataDir: ./data\npolicy: { repo: ${repo.dir}, allowedSecrets: ["\${env:DB_PASSWORD}"], pullIntervalSeconds: 3600 }\n`,
    );
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    const stop = new AbortController();
    const done = main(['gateway', '--config', file, '--insecure-dev-http'], { stdout, stderr, env: env(), cwd: repo.base, signal: stop.signal });
    // Until it listens (or has ended, which the expectation below reports).
    let finished = false;
    void done.then(
      () => (finished = true),
      () => (finished = true),
    );
    await eventually(() => expect(finished || err.includes('gateway.listening')).toBe(true), { timeout: 45_000, interval: 25 }).catch(() => undefined);
    stop.abort();
    expect(await done).toBe(0);
    const lines = err.split('\n').filter((l) => l.includes('policy.unsigned_accepted'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'warn', component: 'gateway', hint: expect.stringContaining('policy.allowedSigners') });
  });
});
