/**
 * Just-in-time reviews against real PostgreSQL: a statement a `review` rule holds waits at the
 * gateway while psql shows the notice; reviewers approve or deny with `hoop review`; approved
 * bytes run as sent, in order with what was pipelined behind them; denial, timeout, the client's
 * cancel (psql's Ctrl-C) and its disconnect never run the statement; self-approval is refused,
 * two approvals are counted; the extended protocol is held at the Bind with its parameters; the
 * webhook (a real local HTTP server) receives the request and the decision; the recording holds
 * the review.
 */
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli.js';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { psql, spawnPsql, pgClient } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { query as queryMessage } from '../../src/postgres/wire/messages.js';
import { parseErrorFields } from '../../src/postgres/wire/reader.js';
import { errorIn } from '../harness/raw-pg.js';
import { bind, close, execute, parse, sync } from '../harness/pg-frontend.js';
import { eventually, quietFor } from '../harness/wait.js';

let policyRepo: PolicyGitRepo;
let stack: HoopStack;
let hook: Server;
const hooked: Array<{ path: string; body: Record<string, unknown> }> = [];
const running: RunningConnect[] = [];

const bundle = (connection: string, hookUrl: string): string => `version: 1
connections:
${connection}access:
  - { name: everyone, subjects: [alice, bob, carol, dave], connections: [app], mode: read-write }
statements:
  reviewers:
    - groups: [dba]
      timeout: 30s
      notify:
        - { url: "${hookUrl}/json", format: json }
        - { url: "\${env:REVIEW_SLACK_URL}", format: slack }
  rules:
    - { name: wide-delete, match: { kinds: [delete], missingWhere: true }, action: review, message: a DELETE of every row needs a DBA }
    - { name: drop, match: { kinds: [drop] }, action: review, review: { approvals: 2 } }
    - { name: truncate, match: { kinds: [truncate] }, action: review, review: { timeout: 1s } }
    - { name: touch-ledger, match: { tables: [public.ledger], kinds: [update] }, action: review, review: { window: 1min } }
    - { name: touch-t, match: { tables: ["public.t*"], kinds: [update] }, action: review, review: { window: 1min } }
    - { name: bump, match: { tables: [public.counter], kinds: [update] }, action: review }
    - { name: scratch-writes, match: { tables: [public.scratch], kinds: [insert] }, action: review, review: { groups: [security] } }
`;

async function reviewCli(subject: string, groups: string[], argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return stack.run(['review', ...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(subject, groups) });
}
const approve = (id: string, as = 'bob'): ReturnType<typeof reviewCli> => reviewCli(as, ['dba'], ['approve', id]);

/** The id of the one pending review whose SQL contains `text`, once it exists. */
async function pendingReview(text: string): Promise<string> {
  return eventually(
    async () => {
      const ls = await reviewCli('bob', ['dba'], ['ls', '--json']);
      const found = (JSON.parse(ls.stdout) as { reviews: Array<{ id: string; sql: string }> }).reviews.find((r) => r.sql.includes(text));
      expect(found, `a pending review of ${text}`).toBeDefined();
      return found!.id;
    },
    { timeout: 60_000, interval: 100 },
  );
}

/** Until the gateway has closed session `id` (its tunnel.close is logged). */
async function sessionClosed(id: string): Promise<void> {
  await eventually(() => expect(stack.logs().some((l) => l.event === 'tunnel.close' && l.session === id)).toBe(true));
}

async function connect(subject = 'alice', groups: string[] = []): Promise<RunningConnect> {
  const c = await stack.connect('app', await stack.token(subject, groups));
  running.push(c);
  return c;
}

const count = async (table: string): Promise<number> => Number((await stack.pg.psql(`select count(*) from ${table}`, { database: 'app' })).trim());
const refill = (): Promise<string> => stack.pg.psql(`truncate notes; insert into notes(body) select 'n' || g from generate_series(1, 5) g`, { database: 'app' });

beforeAll(async () => {
  hook = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      hooked.push({ path: req.url ?? '', body: JSON.parse(body) as Record<string, unknown> });
      res.end('ok');
    });
  });
  hook.listen(0, '127.0.0.1');
  await once(hook, 'listening');
  const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
  process.env.REVIEW_SLACK_URL = `${hookUrl}/slack`;
  policyRepo = new PolicyGitRepo('hoop-reviews-');
  stack = await startStack({
    extraConfig: 'audit: { file: audit.jsonl, flushSeconds: 0.2 }',
    policy: ({ pg }) => {
      policyRepo.commit(bundle(connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' }), hookUrl));
      return policyRepo.gatewayBlock(['${env:APP_*}', '${env:REVIEW_*}']);
    },
  });
  await stack.pg.psql(
    `create table notes(id serial primary key, body text);
     create table ledger(id int primary key, amount int);
     insert into ledger values (1, 10), (2, 20);
     create table scratch(id int);
     create table t1(x int); create table t2(x int);
     create table counter(n int); insert into counter values (0);
     insert into t1 values (0); insert into t2 values (0);
     grant all on notes, notes_id_seq, ledger, scratch, t1, t2, counter to public`,
    { database: 'app' },
  );
});

afterAll(async () => {
  for (const c of running) await c.stop();
  await stack?.close();
  hook?.close();
  policyRepo?.remove();
  delete process.env.REVIEW_SLACK_URL;
});

describe('a statement held for review', () => {
  it('tells psql at once, waits, and runs exactly what was sent once a reviewer approves', async () => {
    await refill();
    const c = await connect();
    const child = spawnPsql(c.info, ['-v', 'ON_ERROR_STOP=1', '-c', 'DELETE FROM notes', '-c', "select 'after' as step"]);
    let err = '';
    let out = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const id = await pendingReview('DELETE FROM notes');
    // The notice reached psql while it waits, and the statement has not run.
    await eventually(() => expect(err).toContain(`NOTICE:  hoop: statement held for review ${id} (rule "wide-delete"): a DELETE of every row needs a DBA`), { timeout: 60_000 });
    expect(err).toContain(`hoop review approve ${id}`);
    expect(await count('notes')).toBe(5);
    const show = await reviewCli('bob', ['dba'], ['show', id]);
    expect(show.stdout).toContain('DELETE FROM notes');
    expect(show.stdout).toContain('requested by alice');

    const approved = await approve(id);
    expect(approved.stdout).toContain(`review ${id}: approved by bob`);
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(0);
    expect(out).toContain('DELETE 5');
    expect(out).toContain('after');
    expect(await count('notes')).toBe(0);
    // The webhook got the request and the decision, both bodies.
    await expect.poll(() => hooked.filter((h) => (h.body.review as { id?: string } | undefined)?.id === id).map((h) => h.body.event)).toEqual(['review.requested', 'review.decided']);
    const slack = hooked.filter((h) => h.path === '/slack' && String(h.body.text).includes(id));
    expect(slack).toHaveLength(2);
    expect(String(slack[0]!.body.text)).toContain('alice waits for approval on app');
    // The audit stream has both events, without the SQL text.
    await expect
      .poll(() => {
        const lines = existsSync(join(stack.dir, 'audit.jsonl'))
          ? readFileSync(join(stack.dir, 'audit.jsonl'), 'utf8')
              .trim()
              .split('\n')
              .map((l) => JSON.parse(l) as Record<string, unknown>)
          : [];
        return lines.filter((l) => l.review === id);
      })
      .toEqual([
        expect.objectContaining({ event: 'review.requested', subject: 'alice', connection: 'app', rule: 'wide-delete', state: 'pending', groups: ['dba'], approvals: 1 }),
        expect.objectContaining({ event: 'review.decided', state: 'approved', decisions: [expect.objectContaining({ subject: 'bob', decision: 'approve' })] }),
      ]);
    expect(readFileSync(join(stack.dir, 'audit.jsonl'), 'utf8')).not.toContain('DELETE FROM notes');
    // hoop connect's terminal said where the review stood.
    expect(c.stderr()).toContain(`statement held for review ${id} (rule "wide-delete"): waiting for one approval from dba`);
    expect(c.stderr()).toContain(`review ${id} approved by bob: the statement runs`);
    // The session's recording holds the review: raised, then approved, before the DELETE's outcome.
    const session = JSON.parse((await reviewCli('alice', [], ['show', id, '--json'])).stdout) as { session: string };
    await expect
      .poll(
        async () =>
          (await stack.run(['sessions', 'replay', session.session, '--no-tty', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') })).stdout,
        { timeout: 60_000 },
      )
      .toMatch(new RegExp(`DELETE FROM notes\\n-- hoop: held for review ${id} by rule "wide-delete"[^\\n]*\\n-- hoop: review ${id} approved: bob approved\\nDELETE 5`));
  });

  it('hoop exec waits for the decision, saying where the review stands', async () => {
    await refill();
    const exec = stack.run(['exec', 'app', '-c', 'DELETE FROM notes', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
    const id = await pendingReview('DELETE FROM notes');
    await approve(id);
    const r = await exec;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('DELETE 5');
    expect(r.stderr).toContain(`hoop: statement held for review ${id}`);
    expect(r.stderr).toContain(`hoop: review ${id} approved by bob`);
    expect(await count('notes')).toBe(0);
  });

  it("a denial reaches the client with the reviewer's reason, and the statement never runs", async () => {
    await refill();
    const c = await connect();
    const result = psql(c.info, ['-c', 'DELETE FROM notes']);
    const id = await pendingReview('DELETE FROM notes');
    const nobody = await reviewCli('bob', ['dba'], ['deny', id]);
    expect(nobody.code).not.toBe(0);
    expect(nobody.stderr).toContain('needs a reason');
    const denied = await reviewCli('bob', ['dba'], ['deny', id, '--reason', 'not on a Friday']);
    expect(denied.stdout).toContain('denied by bob: not on a Friday');
    const r = await result;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`ERROR:  hoop: denied by reviewer bob (review ${id}): not on a Friday`);
    expect(await count('notes')).toBe(5);
    const again = await reviewCli('carol', ['dba'], ['approve', id]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(`review ${id} is denied already`);
  });

  it('pipelined messages behind a held one wait, in order, and keep the transaction', async () => {
    await refill();
    const raw = await stack.tunnel('app', await stack.token('alice'));
    // One write: BEGIN; the held DELETE; a SELECT behind it; ROLLBACK.
    raw.write(Buffer.concat([queryMessage('BEGIN'), queryMessage('DELETE FROM notes'), queryMessage('select count(*) from notes'), queryMessage('ROLLBACK')]));
    const id = await pendingReview('DELETE FROM notes');
    const notice = await raw.waitFor('N');
    expect(parseErrorFields(notice!.body).message).toContain(id);
    expect(await count('notes')).toBe(5);
    await approve(id);
    // Five ReadyForQuery: the startup's and one per statement (with four, the ROLLBACK's answer raced the read).
    const messages = await raw.messagesSince(0, 5);
    const tags = messages.filter((m) => m.type === 0x43).map((m) => m.body.toString('latin1').replace(/\0$/, ''));
    expect(tags).toEqual(['BEGIN', 'DELETE 5', 'SELECT 1', 'ROLLBACK']);
    const row = messages.find((m) => m.type === 0x44)!;
    expect(row.body.toString('latin1')).toContain('0'); // inside the transaction the DELETE had run
    const statuses = messages.filter((m) => m.type === 0x5a).map((m) => String.fromCharCode(m.body[0]!));
    expect(statuses).toEqual(['I', 'T', 'T', 'T', 'I']); // the first: the startup's
    expect(await count('notes')).toBe(5); // rolled back
    raw.destroy();
  });

  it('holds the extended protocol at the Bind, with its parameters, and runs the portal once approved', async () => {
    const client = await pgClient((await connect()).info);
    try {
      const pending = client.query('UPDATE ledger SET amount = amount + $1 WHERE id > $2', [5, 0]);
      const id2 = await pendingReview('WHERE id > $2');
      const show = JSON.parse((await reviewCli('bob', ['dba'], ['show', id2, '--json'])).stdout) as { params: unknown[] };
      expect(show.params).toEqual(['5', '0']);
      await approve(id2);
      expect((await pending).rowCount).toBe(2);
      // The window: the same statement shape in this session runs without a new review for a minute.
      const again = await client.query('UPDATE ledger SET amount = amount + $1 WHERE id > $2', [1, 1]);
      expect(again.rowCount).toBe(1);
    } finally {
      await client.end();
    }
    expect((await stack.pg.psql('select sum(amount) from ledger', { database: 'app' })).trim()).toBe(String(30 + 10 + 1));
  });

  it('refuses, never holds, a Bind whose values hoop would hide from its reviewer: a secret parameter hid the one beside it too', async () => {
    const client = await pgClient((await connect()).info);
    try {
      const before = (await stack.pg.psql('select n from counter', { database: 'app' })).trim();
      const refused = await client.query("UPDATE counter SET n = n + 1 /* marker-mauve */ WHERE length(set_config('app.api_token', $1, true)) = 8 AND $2 = 'x'", ['tok-7731', 'x']).then(
        () => undefined,
        (err: { code?: string; message?: string }) => err,
      );
      expect(refused).toMatchObject({ code: '42501', message: expect.stringMatching(/its reviewer could not read all it runs: hoop hides every value of it, as it names a credential/) });
      expect((await stack.pg.psql('select n from counter', { database: 'app' })).trim()).toBe(before);
      const listed = JSON.parse((await reviewCli('bob', ['dba'], ['ls', '--json'])).stdout).reviews as Array<{ state: string; sql: string }>;
      expect(listed.filter((r) => r.sql.includes('marker-mauve') && r.state === 'pending')).toEqual([]);
      expect(JSON.stringify(listed)).not.toContain('tok-7731');
    } finally {
      await client.end();
    }
  });

  it('shows a reviewer every parameter whole, and refuses, never holds, a Bind whose parameters are too long to show', async () => {
    const client = await pgClient((await connect()).info);
    try {
      const long = `${'x'.repeat(5000)}-the-end`;
      const pending = client.query("UPDATE counter SET n = n + length($1) - length($1) WHERE $2 = 'marker-5k'", [long, 'marker-5k']);
      const id = await pendingReview("'marker-5k'");
      const show = JSON.parse((await reviewCli('bob', ['dba'], ['show', id, '--json'])).stdout) as { params: unknown[] };
      expect(show.params).toEqual([long, 'marker-5k']);
      await approve(id);
      expect((await pending).rowCount).toBe(1);
      // 100 KiB of parameters: no reviewer could read it all, so it is refused at once, and nothing runs.
      const before = (await stack.pg.psql('select n from counter', { database: 'app' })).trim();
      const refused = await client.query("UPDATE counter SET n = n + 1 + length($1) WHERE $2 = 'marker-100k'", ['y'.repeat(100 * 1024), 'marker-100k']).then(
        () => undefined,
        (err: { code?: string; message?: string }) => err,
      );
      expect(refused).toMatchObject({ code: '42501', message: expect.stringMatching(/cannot be held for review, as a reviewer could not read all it runs \(its parameters are longer than 64 KiB\)/) });
      expect((await stack.pg.psql('select n from counter', { database: 'app' })).trim()).toBe(before);
      expect(JSON.parse((await reviewCli('bob', ['dba'], ['ls', '--json'])).stdout).reviews.filter((r: { sql: string }) => r.sql.includes('marker-100k'))).toEqual([]);
    } finally {
      await client.end();
    }
  });

  it('refuses, never holds, a statement whose values hoop would hide from its reviewer: a credential named in a comment hid every value (the sixteenth attack)', async () => {
    const c = await connect();
    const before = (await stack.pg.psql('select n from counter', { database: 'app' })).trim();
    const r = await psql(c.info, ['-c', "UPDATE counter SET n = n + length('a value the reviewer would not see') -- token"]);
    expect(r.stderr).toMatch(/could not wait \(its reviewer could not read all it runs: hoop hides every value of it, as it names a credential or a cipher/);
    expect((await stack.pg.psql('select n from counter', { database: 'app' })).trim()).toBe(before);
    expect(JSON.parse((await reviewCli('bob', ['dba'], ['ls', '--json'])).stdout).reviews.filter((x: { state: string; sql: string }) => x.state === 'pending' && x.sql.includes('-- token'))).toEqual(
      [],
    );
    // The same write without the word is held, its value shown.
    const held = psql(c.info, ['-c', "UPDATE counter SET n = n + length('a value the reviewer sees')"]);
    const id = await pendingReview("'a value the reviewer sees'");
    await approve(id);
    expect((await held).code).toBe(0);
  });

  it("an approval's window covers the same statement with other numbers in that session, never another table", async () => {
    const client = await pgClient((await connect()).info);
    try {
      const first = client.query('UPDATE t1 SET x = 1');
      await approve(await pendingReview('UPDATE t1 SET x = 1'));
      expect((await first).rowCount).toBe(1);
      expect((await client.query('UPDATE t1 SET x = 2')).rowCount).toBe(1); // no review: the same shape
      // Settled at once: the denial can arrive before the deny command returns.
      const other = client.query('UPDATE t2 SET x = 1').then(
        () => new Error('the denied statement ran'),
        (e: unknown) => e as Error,
      );
      const id = await pendingReview('UPDATE t2 SET x = 1'); // t2 is not t1 with another number
      await reviewCli('bob', ['dba'], ['deny', id, '--reason', 'not t2']);
      expect((await other).message).toMatch(/denied by reviewer bob/);
    } finally {
      await client.end();
    }
    expect((await stack.pg.psql('select (select x from t1), (select x from t2)', { database: 'app' })).trim()).toBe('2|0');
  });

  it('statements under several review rules wait for one review that satisfies them all, or are refused when no group may', async () => {
    await refill();
    await stack.pg.psql('create table if not exists doomed2(id int); grant all on doomed2 to public', { database: 'app' });
    const raw = await stack.tunnel('app', await stack.token('alice'));
    // wide-delete (dba, 1 approval) and drop (dba, 2 approvals): one review of dba, 2 approvals.
    raw.write(queryMessage('DELETE FROM notes; DROP TABLE doomed2'));
    const id = await pendingReview('DROP TABLE doomed2');
    const shown = JSON.parse((await reviewCli('bob', ['dba'], ['show', id, '--json'])).stdout) as { approvals: number; groups: string[] };
    expect(shown).toMatchObject({ approvals: 2, groups: ['dba'] });
    await reviewCli('bob', ['dba'], ['deny', id, '--reason', 'no']);
    raw.destroy();
    // wide-delete (dba) and scratch-writes (security): nobody may approve both, so it is refused at once.
    const fresh = await stack.tunnel('app', await stack.token('alice'));
    const refused = await fresh.simple('DELETE FROM notes; INSERT INTO scratch VALUES (1)');
    expect(errorIn(refused)?.message).toContain('hoop: denied by rule "review-conflict"');
    expect(await count('notes')).toBe(5);
    expect(await count('scratch')).toBe(0);
    fresh.destroy();
  });

  it('a client that does not wait (detached) gets its approval run once: in its session if it stayed, else once in a later one, for exactly what was reviewed', async () => {
    const alice = await stack.token('alice');
    const n = async (): Promise<number> => Number((await stack.pg.psql('select n from counter', { database: 'app' })).trim());
    const detached = (sessionId?: string): ReturnType<HoopStack['tunnel']> => stack.tunnel('app', alice, { detachReviews: true, ...(sessionId ? { sessionId } : {}) });
    await stack.pg.psql('update counter set n = 0', { database: 'app' });
    // It stayed: the approval runs there, and is used.
    const stayed = await detached();
    stayed.write(queryMessage('UPDATE counter SET n = n + 1'));
    await approve(await pendingReview('UPDATE counter SET n = n + 1'));
    await expect.poll(n).toBe(1);
    const later = await detached();
    later.write(queryMessage('UPDATE counter SET n = n + 1'));
    const again = await pendingReview('UPDATE counter SET n = n + 1'); // not claimed: a new review
    await reviewCli('bob', ['dba'], ['deny', again, '--reason', 'once is enough']);
    stayed.destroy();
    later.destroy();

    // It left: nothing runs on approval; one later session runs exactly that, once.
    const left = await detached('detached-left');
    left.write(queryMessage('UPDATE counter SET n = n + 10'));
    const id = await pendingReview('UPDATE counter SET n = n + 10');
    left.destroy();
    await sessionClosed('detached-left');
    await approve(id);
    // A window in which the approval could (wrongly) run somewhere.
    await quietFor(300);
    expect(await n()).toBe(1);
    const claimer = await detached();
    expect(errorIn(await claimer.simple('UPDATE counter SET n = n + 10'))).toBeUndefined();
    expect(await n()).toBe(11);
    claimer.write(queryMessage('UPDATE counter SET n = n + 10'));
    await reviewCli('bob', ['dba'], ['deny', await pendingReview('UPDATE counter SET n = n + 10'), '--reason', 'used']);
    claimer.destroy();

    // EXECUTE: the review shows what it runs, and an approval covers that body only.
    const first = await detached('detached-first');
    await first.simple('PREPARE s AS UPDATE counter SET n = n + 100');
    first.write(queryMessage('EXECUTE s'));
    const exec = await pendingReview('EXECUTE s');
    const show = await reviewCli('bob', ['dba'], ['show', exec]);
    expect(show.stdout).toContain('-- which runs, or may run:');
    expect(show.stdout).toContain('PREPARE s AS UPDATE counter SET n = n + 100');
    first.destroy();
    // A name PREPAREd in SQL and bound in the extended protocol runs its body: held, never passed as "only a PREPARE".
    const bound = await stack.tunnel('app', alice, { sessionId: 'bound-prepared' });
    await bound.simple('PREPARE b AS UPDATE counter SET n = n + 5');
    bound.write(Buffer.concat([bind('', 'b'), execute(''), sync()]));
    await reviewCli('bob', ['dba'], ['deny', await pendingReview('PREPARE b AS UPDATE counter SET n = n + 5'), '--reason', 'bound']);
    bound.destroy();
    await sessionClosed('detached-first');
    await sessionClosed('bound-prepared');
    await approve(exec);
    const other = await detached();
    await other.simple('PREPARE s AS UPDATE counter SET n = n + 1000');
    other.write(queryMessage('EXECUTE s'));
    const notClaimed = await pendingReview('n = n + 1000');
    await reviewCli('bob', ['dba'], ['deny', notClaimed, '--reason', 'another body']);
    other.destroy();
    expect(await n()).toBe(11);
  });

  it('a prepared name changes at the gateway only as the server confirms: a skipped Parse, Close or DEALLOCATE never hides the statement it left', async () => {
    await refill();
    const raw = await stack.tunnel('app', await stack.token('alice'));
    /** Sends `parts` and waits for their ReadyForQuery messages. */
    const round = async (parts: Buffer[], ready = 1): Promise<void> => {
      const from = raw.raw.length;
      raw.write(Buffer.concat(parts));
      await raw.messagesSince(from, ready);
    };
    const heldThenDenied = async (text: string): Promise<void> => {
      await reviewCli('bob', ['dba'], ['deny', await pendingReview(text), '--reason', 'caught']);
    };
    // The unnamed statement: a Parse the server skips (an error before it in its batch) does not replace it.
    await round([parse('', 'DELETE FROM notes'), sync()]);
    await round([parse('bad', 'SELECT * FROM no_such_table'), parse('', 'SELECT 1'), sync()]);
    let from = raw.raw.length;
    raw.write(Buffer.concat([bind('', ''), execute(''), sync()]));
    await heldThenDenied('DELETE FROM notes');
    await raw.messagesSince(from, 1);
    // A Close the server skips does not forget a name; a failing Parse of it does not rename it.
    await round([parse('x', 'DELETE FROM notes'), sync()]);
    await round([parse('bad', 'SELECT * FROM no_such_table'), close('S', 'x'), sync()]);
    await round([parse('x', 'SELECT 1'), sync()]);
    from = raw.raw.length;
    raw.write(Buffer.concat([bind('', 'x'), execute(''), sync()]));
    await heldThenDenied('DELETE FROM notes');
    await raw.messagesSince(from, 1);
    // A DEALLOCATE in a Query that fails before it does not forget the statement.
    await raw.simple('PREPARE y AS DELETE FROM notes');
    await raw.simple('SELECT 1/0; DEALLOCATE y');
    await raw.simple('PREPARE y AS SELECT 1');
    raw.write(queryMessage('EXECUTE y'));
    await heldThenDenied('PREPARE y AS DELETE FROM notes');
    expect(await count('notes')).toBe(5);
    raw.destroy();
  });

  it("psql's cancel (SIGINT) withdraws the review, and the statement never runs", async () => {
    await refill();
    const c = await connect();
    const child = spawnPsql(c.info, ['-c', 'DELETE FROM notes']);
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const id = await pendingReview('DELETE FROM notes');
    await eventually(() => expect(err).toContain('NOTICE'), { timeout: 60_000 });
    child.kill('SIGINT');
    await once(child, 'exit');
    expect(err).toContain('ERROR:  canceling statement due to user request');
    expect(err).toContain(`hoop withdrew review ${id}`);
    const show = JSON.parse((await reviewCli('alice', [], ['show', id, '--json'])).stdout) as { state: string; closedBecause: string };
    expect(show).toMatchObject({ state: 'withdrawn', closedBecause: 'the client cancelled the statement' });
    const late = await approve(id);
    expect(late.stderr).toContain('withdrawn already');
    expect(await count('notes')).toBe(5);
  });

  it('a client that goes away withdraws its review; approving later runs nothing', async () => {
    await refill();
    const raw = await stack.tunnel('app', await stack.token('alice'));
    raw.write(queryMessage('DELETE FROM notes'));
    const id = await pendingReview('DELETE FROM notes');
    raw.destroy();
    await expect.poll(async () => (JSON.parse((await reviewCli('alice', [], ['show', id, '--json'])).stdout) as { state: string }).state).toBe('withdrawn');
    expect((await approve(id)).code).not.toBe(0);
    // A window in which a wrongly accepted approval would run the DELETE.
    await quietFor(200);
    expect(await count('notes')).toBe(5);
  });

  it('hoop review watch, without a terminal, prints each review that starts waiting, once', async () => {
    await refill();
    const out = new PassThrough();
    let printed = '';
    out.on('data', (d: Buffer) => (printed += d.toString()));
    const controller = new AbortController();
    const watching = main(['review', 'watch', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], {
      stdout: out,
      stderr: new PassThrough(),
      env: { HOOP_TOKEN: await stack.token('bob', ['dba']) },
      cwd: stack.dir,
      signal: controller.signal,
    });
    const raw = await stack.tunnel('app', await stack.token('alice'));
    raw.write(queryMessage('DELETE FROM notes'));
    const id = await pendingReview('DELETE FROM notes');
    await eventually(() => expect(printed).toContain(`review ${id}: pending (0 of 1 approval`), { timeout: 60_000 });
    expect(printed).toContain('    DELETE FROM notes');
    expect(printed).toContain(`approve: hoop review approve ${id}`);
    // Another review starts waiting: once watch printed it, it has looked again since it printed the first, which it must not print a second time.
    const other = await stack.tunnel('app', await stack.token('alice'));
    other.write(queryMessage('DELETE FROM scratch'));
    const second = await pendingReview('DELETE FROM scratch');
    await eventually(() => expect(printed).toContain(`review ${second}: pending`));
    expect(printed.split(`review ${id}:`).length).toBe(2); // once
    expect(printed.split(`review ${second}:`).length).toBe(2);
    controller.abort();
    expect(await watching).toBe(0);
    raw.destroy();
    other.destroy();
  });

  it('times out with an error that says so', async () => {
    const c = await connect();
    const r = await psql(c.info, ['-c', 'TRUNCATE scratch']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ERROR: {2}hoop: approval required \(rule "truncate"\): review rv-[0-9a-f]+ was not decided within 1 s, so the statement did not run/);
  });

  it('refuses self-approval, and counts two approvals from distinct reviewers', async () => {
    await stack.pg.psql('create table if not exists doomed(id int); grant all on doomed to public', { database: 'app' });
    const c = await connect('dave', ['dba']);
    const result = psql(c.info, ['-c', 'DROP TABLE doomed']);
    const id = await pendingReview('DROP TABLE doomed');
    const self = await reviewCli('dave', ['dba'], ['approve', id]);
    expect(self.code).not.toBe(0);
    expect(self.stderr).toContain('may not approve their own statement');
    const outsider = await reviewCli('carol', [], ['approve', id]);
    expect(outsider.code).not.toBe(0);
    const one = await approve(id, 'bob');
    expect(one.stdout).toContain('pending (1 of 2 approvals');
    expect((await approve(id, 'bob')).stderr).toContain('approved review');
    expect(await stack.pg.psql("select count(*) from pg_tables where tablename = 'doomed'", { database: 'app' })).toContain('1');
    const two = await approve(id, 'carol');
    expect(two.stdout).toContain('approved by bob, carol');
    expect((await result).code).toBe(0);
    expect((await stack.pg.psql("select count(*) from pg_tables where tablename = 'doomed'", { database: 'app' })).trim()).toBe('0');
  });
});
