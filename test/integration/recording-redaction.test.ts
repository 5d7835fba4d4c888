/**
 * Secrets typed into requests stay out of recordings and reviews (issue 72, class 8): through
 * `hoop connect` and psql, a role's password and a card number in an INSERT reach the database as
 * typed, while the session's recording, its index and a reviewer see each as `[redacted:<hash>]`,
 * the same value hashed alike in two sessions; the CLI's own record still agrees with the
 * gateway's (`hoop sessions verify`). So do secrets a driver binds as parameters (node-postgres):
 * nothing the gateway keeps on disk holds them, its recording nor the CLI's record.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { psql, spawnPsql } from '../harness/clients.js';
import { filesAsText } from '../harness/records.js';
import { connectionYaml } from '../harness/postgres.js';
import type { CliResult } from '../harness/run-cli.js';
import { startRepoStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

const CARD = '4111 1111 1111 1111';
let stack: HoopStack;
let connected: RunningConnect;

beforeAll(async () => {
  stack = await startRepoStack(
    'hoop-redaction-',
    (pg) => `version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice, bob], connections: [app], mode: read-write }
statements:
  rules:
    - { name: role-changes-reviewed, match: { kinds: [alter] }, action: review, review: { groups: [dba], timeout: 60s } }
masking:
  detectors: [{ detector: payment-card, strategy: redact }]
`,
  );
  await stack.pg.psql(
    `create table cards (number text); create table creds (name text, password text unique); create table creds2 (name text, password text check (length(password) < 4));
     grant all on cards, creds, creds2 to public; alter role ${stack.pg.users.scram.user} createrole`,
    { database: 'app' },
  );
  connected = await stack.connect('app', await stack.token('alice'));
});

afterAll(async () => {
  await connected?.stop();
  await stack?.close();
});

async function hoop(argv: string[], subject = 'alice', groups: string[] = []): Promise<CliResult> {
  return stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(subject, groups) });
}

/** Waits until the CLI's record of session `id` is up and agrees with the gateway's (`hoop sessions verify`). */
async function recordsAgree(id: string): Promise<void> {
  await eventually(
    async () => {
      const verify = await hoop(['sessions', 'verify', id]);
      expect(verify.stdout).toMatch(/cross-check: the gateway's and the CLI's records agree/);
    },
    { timeout: 60_000, interval: 250 },
  );
}

/** The newest ended session of alice's whose recording holds `text` once redacted: its id and its recording as JSON lines. */
async function sessionWith(marker: RegExp): Promise<{ id: string; events: string }> {
  return eventually(
    async () => {
      const ls = JSON.parse((await hoop(['sessions', 'ls', '--json'])).stdout) as { sessions: Array<{ id: string; endedAt?: string }> };
      for (const s of ls.sessions.filter((x) => x.endedAt !== undefined)) {
        const events = (await hoop(['sessions', 'export', s.id])).stdout;
        if (marker.test(events)) return { id: s.id, events };
      }
      throw new Error('no such session yet');
    },
    { timeout: 60_000, interval: 200 },
  );
}

describe('secrets in requests', () => {
  it("are recorded as keyed hashes: a role's password and a card number reach the database, never the recording, and the CLI's record still agrees", async () => {
    const r = await psql(connected.info, [
      '-c',
      "create role r1 login password 'hunter2-secret'",
      '-c',
      `insert into cards values ('${CARD}')`,
      '-c',
      "create role r2 login password 'hunter2-secret'",
    ]);
    expect(r.code, r.stderr).toBe(0);
    // The database holds what was typed.
    expect((await stack.pg.psql('select number from cards', { database: 'app' })).trim()).toBe(CARD);
    expect((await stack.pg.psql("select count(*) from pg_authid where rolname in ('r1', 'r2') and rolpassword is not null", { database: 'app' })).trim()).toBe('2');
    const { id, events } = await sessionWith(/create role r1/);
    expect(events).not.toContain('hunter2-secret');
    expect(events).not.toContain(CARD);
    const hashes = [...events.matchAll(/create role r\d login password '(\[redacted:[0-9a-f]{8}\])'/g)].map((m) => m[1]);
    expect(hashes).toHaveLength(2);
    expect(hashes[0]).toBe(hashes[1]); // the same password, seen to be the same
    expect(events).toMatch(/insert into cards values \('\[redacted:[0-9a-f]{8}\]'\)/);
    // The index's SQL too.
    expect((await hoop(['sessions', 'show', id])).stdout).not.toContain('hunter2-secret');
    // The CLI's own record, which holds what its client typed, agrees with the gateway's where it redacted.
    // (once hoop connect has uploaded it: it does as its session ends)
    await eventually(
      async () => {
        const verify = await hoop(['sessions', 'verify', id]);
        expect(verify.code, verify.stdout + verify.stderr).toBe(0);
        expect(verify.stdout).toMatch(/cross-check: the gateway's and the CLI's records agree on \d+ statement/);
      },
      { timeout: 60_000, interval: 250 },
    );
  });

  it("stay out of the server's error that repeats them: a cast error quoting the password is recorded redacted (the fifteenth attack)", async () => {
    const r = await psql(connected.info, ['-c', "select 1 from pg_authid where rolpassword = 'pw-echo-TTTT'::int::text"]);
    expect(r.stderr).toContain('invalid input syntax for type integer: "pw-echo-TTTT"'); // the client gets what the server said
    const { events } = await sessionWith(/pw_authid|pg_authid where rolpassword/);
    expect(events).toMatch(/"t":"error".*"message":"\[redacted:[0-9a-f]{8}\]"/);
    expect(events).not.toContain('pw-echo-TTTT');
  });

  it("stay out of what the server repeats of any sent before (a bound password in a unique key's error, a typed one, a COPY's row), in the recording and in the CLI's record on disk (a helper's attack)", async () => {
    const { info } = connected;
    const client = new pg.Client({ host: info.host, port: info.port, user: info.user, password: info.password, database: info.database, ssl: false });
    await client.connect();
    const errors: string[] = [];
    const failing = (text: string, values?: unknown[]): Promise<void> =>
      client.query(text, values).then(
        () => void errors.push('ok'),
        (e: { detail?: string; message: string }) => void errors.push(`${e.message} ${e.detail ?? ''}`),
      );
    try {
      for (let i = 0; i < 2; i++) await failing('insert into creds (name, password) values ($1, $2)', ['a', 'uniq-secret-8121']);
      await failing('insert into creds2 (name, password) values ($1, $2)', ['a', 'check-secret-8122']);
      for (let i = 0; i < 2; i++) await failing("insert into creds (name, password) values ('b', 'lit-secret-8123')");
    } finally {
      await client.end();
    }
    // The client got what the server said.
    expect(errors.join('\n')).toContain('Key (password)=(uniq-secret-8121) already exists.');
    expect(errors.join('\n')).toContain('Failing row contains (a, check-secret-8122).');
    const copy = await psql(connected.info, ['-c', 'copy creds2 (name, password) from stdin'], { input: 'a\tcopy-secret-8124\n\\.\n' });
    expect(copy.stderr).toContain('copy-secret-8124');
    const { id } = await sessionWith(/copy creds2/);
    await recordsAgree(id);
    const files = filesAsText(join(stack.dir, 'hoop-data'));
    for (const secret of ['uniq-secret-8121', 'check-secret-8122', 'lit-secret-8123', 'copy-secret-8124']) expect(files.filter((f) => f.includes(secret)).length, secret).toBe(0);
    const { events } = await sessionWith(/creds \(name, password\) values \(\$1, \$2\)/);
    expect(events).not.toMatch(/already exists/);
    expect(events).toMatch(/"code":"23505".*"message":"\[redacted:[0-9a-f]{8}\]"/);
  });

  it('are shown to a reviewer as they are recorded: redacted, whole otherwise; approved, the statement runs as typed', async () => {
    const held = spawnPsql(connected.info, ['-c', "alter role r1 password 'rotated-secret'"]);
    let out = '';
    held.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const review = await eventually(
      async () => {
        const ls = JSON.parse((await hoop(['review', 'ls', '--json'], 'bob', ['dba'])).stdout) as { reviews: Array<{ id: string; state: string; sql: string }> };
        const r = ls.reviews.find((x) => x.state === 'pending' && x.sql.startsWith('alter role r1'));
        expect(r).toBeDefined();
        return r!;
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(review.sql).toMatch(/^alter role r1 password '\[redacted:[0-9a-f]{8}\]'$/);
    const shown = await hoop(['review', 'show', review.id], 'bob', ['dba']);
    expect(shown.stdout).not.toContain('rotated-secret');
    expect((await hoop(['review', 'approve', review.id], 'bob', ['dba'])).code).toBe(0);
    const code = await new Promise<number | null>((resolve) => held.on('close', resolve));
    expect(code, out).toBe(0);
    // It ran as typed: the password is the new one.
    expect((await stack.pg.psql("select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'r1'", { database: 'app' })).trim()).toBe('t');
  });

  it('bound as parameters by a driver, are recorded as keyed hashes too: a secret setting, a card number; the gateway keeps them nowhere', async () => {
    const { info } = connected;
    const client = new pg.Client({ host: info.host, port: info.port, user: info.user, password: info.password, database: info.database, ssl: false });
    await client.connect();
    try {
      // (the result says only that it was set: set_config's own answer is the value, which the server sends back as rows are)
      await client.query("select set_config('app.api_token', $1, false) is not null", ['tok-secret-9137']);
      await client.query('insert into cards values ($1)', ['5555 5555 5555 4444']);
      // A Bind of 200 KiB: its values are read by the detectors in the gateway's worker, the path waiting for it.
      await client.query('insert into cards values ($1)', ['card 5555 5555 5555 4444; '.repeat(8000)]);
      // A named statement, bound twice (the second Bind without its Parse).
      for (let i = 0; i < 2; i++) await client.query({ name: 'keyed', text: "select set_config('app.api_key', $1, false) is not null as k", values: ['key-secret-5521'] });
    } finally {
      await client.end();
    }
    expect((await stack.pg.psql("select count(*) from cards where number = '5555 5555 5555 4444'", { database: 'app' })).trim()).toBe('1');
    const { id, events } = await sessionWith(/is not null as k/);
    expect(events).toMatch(/\[redacted:[0-9a-f]{8}\]/);
    // Once the CLI's record is up too (it agrees with the gateway's), nothing on the gateway's disk holds what was bound.
    await recordsAgree(id);
    const files = filesAsText(join(stack.dir, 'hoop-data'));
    // The statement names a setting by set_config: every value of it is a keyed hash, the statement's shape stays.
    expect(files.filter((f) => f.includes('select set_config(')).length).toBeGreaterThanOrEqual(2);
    for (const secret of ['tok-secret-9137', 'key-secret-5521', '5555 5555 5555 4444']) expect(files.filter((f) => f.includes(secret)).length, secret).toBe(0);
  });
});
