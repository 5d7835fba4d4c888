/**
 * Agents' runs at the gateway's API, as a client that bypasses the CLI would use it: what a
 * person may ask for and what is refused (bad bodies, a connection the agent may not use, too
 * many open runs, a run asking for a run), the control credential (heartbeats and the end, and
 * nobody else's), a run credential's reach (its connections only, no renewal, nothing after its
 * end), and the principal the gateway records for its sessions.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRun } from '../../src/agent/agent-run.js';
import { runTokenProvider } from '../../src/auth/token-provider.js';
import { createLogger } from '../../src/log.js';
import { callApi, type ApiAnswer } from '../harness/api.js';
import { HeldClock } from '../harness/held-clock.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually, pace, poll } from '../harness/wait.js';
import { MAX_OPEN_RUNS } from '../../src/gateway/runs/runs.js';
import { cancelRequest, query as queryMessage } from '../../src/postgres/wire/messages.js';
import { errorIn } from '../harness/raw-pg.js';

let stack: HoopStack;
let repo: PolicyGitRepo;
let alice: string;

const api = (method: string, path: string, token?: string, body?: unknown): Promise<ApiAnswer> => callApi(stack.gateway.url, stack.pki.ca, method, path, token, body);
const begin = (token: string, body: Record<string, unknown> = {}): Promise<ApiAnswer> => api('POST', '/v1/runs', token, { connections: ['app'], agent: 'claude', isolation: 'bwrap', ...body });

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-runs-api-');
  stack = await startStack({
    policy: async ({ pg }) => {
      repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}${connectionYaml(pg, { name: 'other', password: '${env:APP_PASSWORD}' })}${connectionYaml(pg, { name: 'people-only', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice, carol], connections: [app, other], mode: read-write }
  - { name: no-agents-here, subjects: [alice], connections: [people-only], mode: read-only, via: [connect, exec] }
runs: { maxSeconds: 3600, heartbeatTimeout: 60s }
`);
      return repo.gatewayBlock(['${env:APP_*}']);
    },
  });
  alice = await stack.token('alice');
});

afterAll(async () => {
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

describe('beginning a run', () => {
  it('answers the run, its credential and its control credential; the credential stands for the person, as that agent', async () => {
    const r = await begin(alice);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      id: expect.stringMatching(/^run-[A-Za-z0-9_-]{16}$/),
      agent: 'claude',
      via: 'run',
      isolation: 'bwrap',
      connections: ['app'],
      subject: 'alice',
      heartbeatTimeoutMs: 60_000,
    });
    expect(r.body.token).toMatch(/^hooprun_[A-Za-z0-9_-]{43}$/);
    expect(r.body.controlToken).toMatch(/^hoopctl_[A-Za-z0-9_-]{43}$/);
    expect(r.body).not.toHaveProperty('tokenHash');
    expect(Date.parse(r.body.expiresAt as string) - Date.now()).toBeGreaterThan(3500_000);
    const who = await api('GET', '/v1/whoami', r.body.token as string);
    expect(who.body).toMatchObject({ subject: 'alice', run: { id: r.body.id, agent: 'claude', via: 'run', isolated: true, connections: ['app'] } });
    const connections = await api('GET', '/v1/connections', r.body.token as string);
    expect((connections.body.connections as Array<{ name: string }>).map((c) => c.name)).toEqual(['app']);
  });

  it('refuses bad bodies, saying what is wrong', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [[], /must be a JSON object/],
      [{ isolation: 'bwrap' }, /connections must list/],
      [{ connections: Array.from({ length: 65 }, (_, i) => `c${i}`), isolation: 'bwrap' }, /0 to 64 names/],
      [{ connections: ['app'], isolation: 'BWRAP!' }, /isolation must say/],
      [{ connections: ['app'], isolation: 'none', via: 'connect' }, /via must be run or mcp/],
      [{ connections: ['app'], isolation: 'none', agent: 7 }, /agent must be a name/],
    ];
    for (const [body, message] of cases) {
      const r = await api('POST', '/v1/runs', alice, body);
      expect({ body, status: r.status }).toEqual({ body, status: 400 });
      expect((r.body.error as { message: string }).message).toMatch(message);
    }
    expect((await api('POST', '/v1/runs', undefined, { connections: ['app'], isolation: 'none' })).status).toBe(401);
  });

  it('refuses a connection the agent may not use, naming it, though its person may', async () => {
    const r = await begin(alice, { connections: ['app', 'people-only'] });
    expect(r.status).toBe(403);
    expect((r.body.error as { message: string }).message).toBe(`alice's agent claude (via run) may not use the connection "people-only"`);
    expect((await begin(alice, { connections: ['nope'] })).status).toBe(404);
  });

  it(`holds at most ${MAX_OPEN_RUNS} open runs per person`, async () => {
    const carol = await stack.token('carol');
    const opened: Array<Promise<ApiAnswer>> = [];
    for (let i = 0; i < MAX_OPEN_RUNS; i++) opened.push(begin(carol));
    const all = await Promise.all(opened);
    expect(all.filter((r) => r.status === 201)).toHaveLength(MAX_OPEN_RUNS);
    const over = await begin(carol);
    expect(over.status).toBe(429);
    expect((over.body.error as { message: string }).message).toBe(`carol has ${MAX_OPEN_RUNS} runs open already`);
    // Ending one makes room.
    await api('POST', `/v1/runs/${all[0]!.body.id as string}/end`, all[0]!.body.controlToken as string);
    expect((await begin(carol)).status).toBe(201);
  });
});

describe('the control credential', () => {
  it("alone keeps the run alive and ends it: not the run's own credential, not another run's, not the person's", async () => {
    const a = (await begin(alice)).body;
    const b = (await begin(alice)).body;
    const id = a.id as string;
    for (const token of [a.token, b.controlToken, alice, 'hoopctl_not-a-real-one-at-all-0000000000000000']) {
      const r = await api('POST', `/v1/runs/${id}/heartbeat`, token as string);
      expect(r.status).toBe(401);
    }
    expect((await api('POST', `/v1/runs/${id}/heartbeat`, a.controlToken as string)).status).toBe(200);
    expect((await api('POST', `/v1/runs/${id}/end`, a.controlToken as string)).status).toBe(200);
    const again = await api('POST', `/v1/runs/${id}/heartbeat`, a.controlToken as string);
    expect(again.status).toBe(410);
    expect((again.body.error as { message: string }).message).toBe(`run ${id} has ended (its hoop ended it)`);
    const after = await api('GET', '/v1/whoami', a.token as string);
    expect(after.status).toBe(401);
    expect(after.body.error).toMatchObject({ reason: 'run-ended' });
  });

  it('a run asks for no run: its credential is refused as forbidden', async () => {
    const a = (await begin(alice)).body;
    const r = await begin(a.token as string);
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: 'HOOP_RUN_FORBIDDEN' });
  });
});

describe("a run lives no longer than its person's sign-in", () => {
  it("takes the time of the person's current token each heartbeat brings, and its groups only to narrow them; another person's is refused, one refused for good ends it", async () => {
    const run = (await begin(await stack.token('alice', ['engineers', 'dba']))).body;
    const [id, control] = [run.id as string, run.controlToken as string];
    expect((await api('GET', '/v1/whoami', run.token as string)).body).toMatchObject({ groups: ['engineers', 'dba'] });
    // Alice's fresh token: she is no longer in engineers, and is in ops now: the run drops engineers and never takes ops.
    const fresh = await stack.oidc.token({ subject: 'alice', groups: ['dba', 'ops'], audience: 'hoop-test', expiresInSeconds: 900 });
    const beat = await api('POST', `/v1/runs/${id}/heartbeat`, control, { personToken: fresh });
    expect(beat.status).toBe(200);
    expect(Date.parse(beat.body.ownerExpiresAt as string) - Date.now()).toBeGreaterThan(800_000);
    expect((await api('GET', '/v1/whoami', run.token as string)).body).toMatchObject({ subject: 'alice', groups: ['dba'] });
    // An older token of hers, still valid, with the group the run lost: the run does not get it back.
    const older = await stack.oidc.token({ subject: 'alice', groups: ['engineers', 'dba'], audience: 'hoop-test', expiresInSeconds: 900 });
    const again = await api('POST', `/v1/runs/${id}/heartbeat`, control, { personToken: older });
    expect(again.status).toBe(200);
    expect((await api('GET', '/v1/whoami', run.token as string)).body).toMatchObject({ groups: ['dba'] });
    // Carol's token cannot speak for alice's run; the run's own credential is no person's.
    expect((await api('POST', `/v1/runs/${id}/heartbeat`, control, { personToken: await stack.token('carol') })).status).toBe(403);
    expect((await api('POST', `/v1/runs/${id}/heartbeat`, control, { personToken: run.token })).body.ownerExpiresAt).toBe(again.body.ownerExpiresAt);
    // A token the gateway refuses for good (not one it cannot check for now) ends the run.
    const refused = await api('POST', `/v1/runs/${id}/heartbeat`, control, { personToken: 'eyJhbGciOiJub25lIn0.e30.' });
    expect(refused.status).toBe(410);
    expect((refused.body.error as { message: string }).message).toBe(`run ${id} has ended (the gateway refused its person's credential)`);
    expect((await api('GET', '/v1/whoami', run.token as string)).status).toBe(401);
  });

  it("ends when its person's last token runs out, however often its hoop beats, and its sessions with it", async () => {
    const short = await stack.oidc.token({ subject: 'alice', groups: [], audience: 'hoop-test', expiresInSeconds: 6 }); // long enough for a session to start on a loaded machine
    const run = (await begin(short)).body;
    const raw = await stack.tunnel('app', run.token as string);
    const ended = raw.error(30_000);
    // Its hoop keeps beating, but brings no newer token of hers.
    let beat: ApiAnswer;
    do {
      beat = await api('POST', `/v1/runs/${run.id as string}/heartbeat`, run.controlToken as string, { personToken: short });
      if (beat.status === 200) await pace(500); // a hoop's heartbeat cadence
    } while (beat.status === 200);
    expect(beat.status).toBe(410);
    expect((beat.body.error as { message: string }).message).toBe(`run ${run.id as string} has ended (its person's own sign-in ran out)`);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(run.ownerExpiresAt as string));
    expect(await ended).toMatchObject({ severity: 'FATAL', code: '28000', message: expect.stringContaining("its person's own sign-in ran out") });
    expect((await api('GET', '/v1/whoami', run.token as string)).status).toBe(401);
  });
});

describe("a run's sessions", () => {
  it("reach only the run's connections, never renew, carry the principal, and end with the run", async () => {
    const run = (await begin(alice, { connections: ['app'] })).body;
    const token = run.token as string;
    await expect(stack.tunnel('other', token)).rejects.toThrow(/run run-\S+ may use only "app", not "other"/);
    const raw = await stack.tunnel('app', token);
    const rows = await raw.simple('select 1');
    expect(rows.some((m) => m.type === 0x44)).toBe(true);
    // A renewal of any kind is refused (here the person's own token): the session goes on as the run's.
    const channel = raw.stream as unknown as { sendControl(m: Record<string, unknown>): void; once(event: string, fn: (m: Record<string, unknown>) => void): void };
    const answer = new Promise<Record<string, unknown>>((resolve) => channel.once('control', resolve));
    channel.sendControl({ type: 'token', token: alice });
    expect(await answer).toMatchObject({ type: 'token-rejected', reason: 'run-credential' });
    // Ending the run ends the session.
    await api('POST', `/v1/runs/${run.id as string}/end`, run.controlToken as string);
    const ended = await raw.error(30_000);
    expect(ended).toMatchObject({ severity: 'FATAL', code: '28000', message: `hoop: run ${run.id as string} ended (its hoop ended it); its sessions end with it` });
    // The index names the person, the run, the agent and how it came.
    const session = await eventually(
      async () => {
        const ls = await api('GET', `/v1/sessions?run=${run.id as string}`, alice);
        const session = (ls.body.sessions as Array<Record<string, unknown>>)[0];
        expect(session?.endedAt).toBeDefined();
        return session;
      },
      { timeout: 60_000, interval: 100 },
    );
    expect(session).toMatchObject({ subject: 'alice', runId: run.id, agent: 'claude', via: 'run', isolated: true, reason: 'run-ended' });
  });

  it("cannot cancel its person's query with its cancel key, nor can anyone through another connection's name; its person can", async () => {
    const run = (await begin(alice, { connections: ['app', 'other'] })).body;
    const session = await stack.tunnel('app', alice);
    const key = (await session.messagesSince(0, 1)).find((m) => m.type === 0x4b)!.body;
    const body = { processId: key.readUInt32BE(0), secretKey: key.readUInt32BE(4) };
    const from = session.raw.length;
    session.write(queryMessage('select pg_sleep(30)'));
    await eventually(async () => expect((await stack.pg.psql("select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'")).trim()).toBe('1'));
    const cancel = async (token: string, connection: string): Promise<unknown> => (await api('POST', `/v1/connections/${connection}/cancel`, token, body)).body.outcome;
    expect(await cancel(run.token as string, 'app')).toBe('no matching session');
    expect(await cancel(alice, 'other')).toBe('no matching session');
    // Nor on the tunnel, as a client's CancelRequest comes when hoop connect cannot use the API.
    const raw = await stack.tunnel('app', run.token as string, { startup: false });
    raw.write(cancelRequest(body.processId, body.secretKey));
    await raw.closed();
    expect(
      stack
        .logs()
        .filter((l) => l.event === 'tunnel.close' && l.reason === 'cancel-request')
        .at(-1)?.detail,
    ).toBe('no matching session');
    expect(await cancel(alice, 'app')).toBe('forwarded');
    const answer = await session.messagesSince(from, 1);
    expect(errorIn(answer)?.code).toBe('57014');
    session.destroy();
    await api('POST', `/v1/runs/${run.id as string}/end`, run.controlToken as string);
  });
});

describe("a run's heartbeats, on the CLI's clock and the gateway's", () => {
  const time = new HeldClock();
  let held: HoopStack;
  let heldRepo: PolicyGitRepo;

  beforeAll(async () => {
    heldRepo = new PolicyGitRepo('hoop-runs-clock-');
    held = await startStack({
      gateway: { clock: time },
      policy: async ({ pg }) => {
        heldRepo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice], connections: [app], mode: read-only }
runs: { maxSeconds: 3600, heartbeatTimeout: 5s }
`);
        return heldRepo.gatewayBlock(['${env:APP_*}']);
      },
    });
  });

  afterAll(async () => {
    await held?.close();
    if (heldRepo) rmSync(heldRepo.base, { recursive: true, force: true });
  });

  it('keep a run its hoop holds open through four heartbeat timeouts of held time; a run nobody beats for has ended', async () => {
    const token = await held.token('alice');
    const heldApi = (method: string, path: string, credential: string, body?: unknown): Promise<ApiAnswer> => callApi(held.gateway.url, held.pki.ca, method, path, credential, body);
    const run = await AgentRun.begin({
      person: runTokenProvider(held.gateway.url, held.pki.ca, token),
      connections: ['app'],
      agent: 'claude',
      via: 'run',
      isolation: 'bwrap',
      say: () => {},
      log: createLogger({ level: 'error', sink: { write: () => {} } }),
      clock: time,
    });
    const silent = (await heldApi('POST', '/v1/runs', token, { connections: ['app'], agent: 'claude', isolation: 'bwrap' })).body;
    const heartbeatAt = (id: string): number => {
      const runs = JSON.parse(readFileSync(join(held.dir, 'hoop-data', 'runs.json'), 'utf8')) as Array<{ id: string; heartbeatAt: string }>;
      return Date.parse(runs.find((r) => r.id === id)?.heartbeatAt ?? '');
    };
    // 20 s of both clocks, a heartbeat's interval (5 s / 4) at a time: each step's beat is heard at the step's time.
    for (let step = 0; step < 16; step++) {
      time.advance(1250);
      const due = time.now();
      expect(await poll(() => (heartbeatAt(run.id) >= due ? step : undefined), { timeout: 60_000 })).toBe(step);
    }
    expect((await heldApi('GET', '/v1/whoami', run.token)).body).toMatchObject({ subject: 'alice', run: { id: run.id } });
    const lost = await heldApi('GET', '/v1/whoami', silent.token as string);
    expect(lost.status).toBe(401);
    expect((lost.body.error as { message: string }).message).toBe(`run ${silent.id as string} has ended (its hoop stopped answering); its credential is no longer accepted`);
    await run.end();
    expect((await heldApi('GET', '/v1/whoami', run.token)).status).toBe(401);
  });
});
