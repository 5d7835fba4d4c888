/**
 * Automated reviewers (src/gateway/reviews/review-service.ts): a local HTTP service, checking the gateway's
 * HMAC signature on every request, decides held statements. Its approval runs the statement as
 * held, its denial refuses it with its reason, its abstention and its silence (past its timeout)
 * leave the review to the human reviewers, and its decisions are the review's record. Its answers
 * echo the review and the statement's hash and are signed: a cache replaying an earlier approval,
 * or an unsigned answer, decides nothing.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi } from '../harness/api.js';
import { pgClient } from '../harness/clients.js';
import { connectionYaml } from '../harness/postgres.js';
import { startRepoStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';
import type { TunnelChannel } from '../../src/tunnel/channel.js';

const KEY = 'the-judge-key-0123456789abcdef';
/** What the service was sent, and whether each request's signature held. */
const asked: Array<{ signed: boolean; sql: string; requester: string; rule: string }> = [];
/** Each request's whole review, as the service got it. */
const bodies: Array<Record<string, unknown>> = [];
/** The last approval sent, as a cache in front of a judge would keep it and send it again. */
let lastApproval: { body: string; signature: string } | undefined;
const judge = createServer((req: IncomingMessage, res) => {
  let body = '';
  req.on('data', (b: Buffer) => (body += b.toString()));
  req.on('end', () => {
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(req.headers['hoop-signature']));
    const expected = m ? createHmac('sha256', KEY).update(`${m[1]}.${body}`).digest() : Buffer.alloc(32);
    const signed = m !== null && timingSafeEqual(Buffer.from(m[2]!, 'hex'), expected) && Math.abs(Date.now() / 1000 - Number(m[1])) < 60;
    const { review } = JSON.parse(body) as { review: { id: string; sha256: string; sql: string; requester: { subject: string }; rule: string } };
    bodies.push(review);
    asked.push({ signed, sql: review.sql, requester: review.requester.subject, rule: review.rule });
    const answer = (decision: string, reason?: string): void => {
      const text = JSON.stringify({ review: review.id, sha256: review.sha256, decision, ...(reason ? { reason } : {}) });
      const t = Math.floor(Date.now() / 1000);
      const signature = `t=${t},v1=${createHmac('sha256', KEY).update(`${t}.${text}`).digest('hex')}`;
      if (decision === 'approve') lastApproval = { body: text, signature };
      res.writeHead(200, { 'Content-Type': 'application/json', 'Hoop-Signature': signature }).end(text);
    };
    if (!signed) return void res.writeHead(401).end();
    // A cache that answers a statement it has seen before with the approval it kept; an answer with no signature.
    if (review.sql.includes('cached') && lastApproval) return void res.writeHead(200, { 'Content-Type': 'application/json', 'Hoop-Signature': lastApproval.signature }).end(lastApproval.body);
    if (review.sql.includes('unsigned')) return void res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ review: review.id, sha256: review.sha256, decision: 'approve' }));
    if (review.sql.includes('slow')) return; // never answers: its timeout (1 s) leaves it to people
    if (review.sql.includes('maybe')) return answer('abstain');
    if (/\bwhere\b/i.test(review.sql)) return answer('approve', 'one row, by its key');
    answer('deny', 'it would touch every row');
  });
});
let stack: HoopStack;
const running: RunningConnect[] = [];

beforeAll(async () => {
  await new Promise<void>((r) => judge.listen(0, '127.0.0.1', () => r()));
  process.env.JUDGE_KEY = KEY; // the service's key: a secret reference the gateway resolves
  const url = `http://127.0.0.1:${(judge.address() as AddressInfo).port}/judge`;
  stack = await startRepoStack(
    'hoop-review-service-',
    (pg) => `version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice, bob], connections: [app], mode: read-write }
statements:
  rules:
    - name: writes-reviewed
      match: { kinds: [delete, update] }
      action: review
      review:
        groups: [dba]
        timeout: 30s
        service: { name: risk-judge, url: ${JSON.stringify(url)}, secret: "\${env:JUDGE_KEY}", timeout: 1s }
`,
    ['${env:APP_PASSWORD}', '${env:JUDGE_KEY}'],
  );
  await stack.pg.psql("create table jobs (id int primary key, state text); insert into jobs select g, 'new' from generate_series(1, 5) g; grant all on jobs to public", { database: 'app' });
});

afterAll(async () => {
  for (const c of running) await c.stop();
  await stack?.close();
  judge.close();
});

async function client() {
  const c = await stack.connect('app', await stack.token('alice'));
  running.push(c);
  const cl = await pgClient(c.info);
  cl.on('error', () => undefined);
  return cl;
}

const rows = async (): Promise<string> => (await stack.pg.psql("select string_agg(id || state, ',' order by id) from jobs", { database: 'app' })).trim();

async function reviewOf(text: string): Promise<{ id: string; state: string; decisions: Array<{ subject: string; issuer: string; decision: string; reason?: string }> }> {
  const ls = await stack.run(['review', 'ls', '--state', 'all', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('bob', ['dba']) });
  return (JSON.parse(ls.stdout) as { reviews: Array<{ id: string; sql: string; state: string; decisions: [] }> }).reviews.find((r) => r.sql.includes(text))!;
}

describe('review services', () => {
  it('approve: the held statement runs as it was held, and the review records the service', async () => {
    const cl = await client();
    const r = await cl.query("update jobs set state = 'done' where id = 1");
    expect(r.rowCount).toBe(1);
    expect(await rows()).toBe('1done,2new,3new,4new,5new');
    expect(asked.at(-1)).toEqual({ signed: true, sql: "update jobs set state = 'done' where id = 1", requester: 'alice', rule: 'writes-reviewed' });
    const review = await reviewOf('where id = 1');
    expect(review).toMatchObject({ state: 'approved', decisions: [{ subject: 'service:risk-judge', issuer: 'hoop', decision: 'approve', reason: 'one row, by its key' }] });
    await cl.end();
  });

  it("sends the service the tables the statement names and the client's stated intent", async () => {
    const raw = await stack.tunnel('app', await stack.token('alice'));
    (raw.stream as TunnelChannel).sendControl({ type: 'context', fields: { tool: 'run_sql', intent: 'mark job 2 done, as the ticket asks' } });
    expect((await raw.simple("update jobs set state = 'done' where id = 2")).some((m) => m.type === 0x43)).toBe(true);
    expect(bodies.at(-1)).toMatchObject({ sql: "update jobs set state = 'done' where id = 2", tables: ['jobs'], intent: 'mark job 2 done, as the ticket asks', rule: 'writes-reviewed' });
    expect((await reviewOf('where id = 2')) as unknown).toMatchObject({ intent: 'mark job 2 done, as the ticket asks' });
    raw.stream.end();
    await stack.pg.psql("update jobs set state = 'new' where id = 2", { database: 'app' });
  });

  it("sends the service, and shows reviewers, the prompt its person gave an agent's run, and the agent", async () => {
    const prompt = 'Close job 3: the customer cancelled.\nDo nothing else.';
    const begun = await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runs', await stack.token('alice'), { connections: ['app'], agent: 'claude', isolation: 'none', prompt });
    expect(begun.status).toBe(201);
    const run = begun.body as { id: string; token: string; controlToken: string; prompt?: string };
    expect(run.prompt).toBe(prompt);
    const raw = await stack.tunnel('app', run.token);
    expect((await raw.simple("update jobs set state = 'done' where id = 3")).some((m) => m.type === 0x43)).toBe(true);
    expect(bodies.at(-1)).toMatchObject({ sql: "update jobs set state = 'done' where id = 3", via: 'run', agent: 'claude', run: run.id, prompt });
    const shown = await stack.run(['review', 'show', (await reviewOf('where id = 3')).id, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], {
      HOOP_TOKEN: await stack.token('bob', ['dba']),
    });
    expect(shown.stdout).toContain("sent by the agent claude (run), whose run's prompt was, in its person's words:\n    > Close job 3: the customer cancelled.\n    > Do nothing else.\n");
    raw.stream.end();
    await callApi(stack.gateway.url, stack.pki.ca, 'POST', `/v1/runs/${run.id}/end`, run.controlToken);
    await stack.pg.psql("update jobs set state = 'new' where id = 3", { database: 'app' });
  });

  it("deny: the client gets the service's reason and nothing ran", async () => {
    const cl = await client();
    const err = await cl.query("update jobs set state = 'gone'").then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe('42501');
    expect(err?.message).toContain('it would touch every row');
    expect(await rows()).toBe('1done,2new,3new,4new,5new');
    expect((await reviewOf("set state = 'gone'")).decisions).toEqual([expect.objectContaining({ subject: 'service:risk-judge', decision: 'deny' })]);
    await cl.end();
  });

  it('abstain, silence past its timeout, an approval replayed from another review and an unsigned one leave it to the human reviewers', async () => {
    for (const text of ['maybe', 'slow', 'cached', 'unsigned']) {
      const cl = await client();
      const held = cl.query(`update jobs set state = '${text}' where id = 2 or id = 3`);
      // Past the service's second: still pending, for a person to decide.
      await eventually(async () => expect(asked.some((a) => a.sql.includes(`'${text}'`))).toBe(true), { timeout: 60_000, interval: 100 });
      const pending = await eventually(
        async () => {
          const r = await reviewOf(`'${text}'`);
          expect(r.state).toBe('pending');
          return r;
        },
        { timeout: 60_000, interval: 100 },
      );
      const failed = { slow: /aborted|timeout/i, cached: /its answer is for review rv-\w+ \(statement [0-9a-f]{12}…\), not this one/, unsigned: /its answer has no Hoop-Signature header/ }[
        text as 'slow'
      ];
      if (failed)
        await eventually(() => expect(stack.logs().some((l) => l.event === 'review.service-failed' && l.id === pending.id && failed.test(String(l.error)))).toBe(true), {
          timeout: 30_000,
          interval: 100,
        });
      expect((await reviewOf(`'${text}'`)).decisions).toEqual([]);
      const approve = await stack.run(['review', 'approve', pending.id, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('bob', ['dba']) });
      expect(approve.code, approve.stderr).toBe(0);
      expect((await held).rowCount).toBe(2);
      await cl.end();
    }
    expect(await rows()).toBe('1done,2unsigned,3unsigned,4new,5new');
    expect(asked.every((a) => a.signed)).toBe(true);
  });
});
