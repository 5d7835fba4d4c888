/**
 * Bad input closes that one connection with a protocol error; the gateway and `hoop connect`
 * keep serving everyone else. Checked both through `hoop connect` and by a client that talks to the
 * gateway's tunnel directly, bypassing the CLI.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { query, sslRequest, startupMessage, terminate } from '../../src/postgres/wire/messages.js';
import { openTunnel } from '../../src/tunnel/transport.js';
import { pgClient } from '../harness/clients.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { quietFor } from '../harness/wait.js';

let stack: HoopStack;
let app: RunningConnect;
let token: string;

beforeAll(async () => {
  stack = await startStack({ gateway: { postgres: { handshakeTimeoutMs: 1500, messageTimeoutMs: 1500 } } });
  token = await stack.token('alice');
  app = await stack.connect('app', token);
});

afterAll(async () => {
  await app?.stop();
  await stack?.close();
});

function message(type: string, length: number, body = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(length >>> 0, 1);
  return Buffer.concat([head, body]);
}

const malformed: Array<[string, Buffer]> = [
  ['an unknown message type', message('?', 4)],
  ['a length of 0x7fffffff', message('Q', 0x7fffffff)],
  ['a length below 4', message('Q', 3)],
  ['a Sync with a body', message('S', 8, Buffer.alloc(4))],
  ['a backend message type from a client', message('T', 6, Buffer.from([0, 0]))],
];

/** A healthy client that must keep working while others misbehave. */
async function stillServes(): Promise<void> {
  const client = await pgClient(app.info);
  try {
    expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
  } finally {
    await client.end();
  }
}

describe('through hoop connect', () => {
  it.each(malformed)('%s closes that connection with 08P01', async (_what, bytes) => {
    const bystander = await pgClient(app.info);
    const raw = await RawFrontend.tcp(app.info.port);
    await raw.startup(app.info.password);
    raw.write(bytes);
    const err = await raw.error();
    expect(err?.code).toBe('08P01');
    expect(await raw.closed()).toBe(true);
    expect((await bystander.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    await bystander.end();
    await stillServes();
  });

  it('refuses bytes sent after an SSLRequest before its answer', async () => {
    const raw = await RawFrontend.tcp(app.info.port);
    raw.write(Buffer.concat([sslRequest(), startupMessage([['user', 'hoop']])]));
    expect((await raw.error())?.code).toBe('08P01');
    expect(await raw.closed()).toBe(true);
    await stillServes();
  });

  it('closes on an impossible startup length (a Terminate before any startup too) without an ErrorResponse, as PostgreSQL does', async () => {
    const big = Buffer.alloc(8);
    big.writeUInt32BE(0x7fffffff, 0);
    big.writeUInt32BE(196608, 4);
    for (const bytes of [big, terminate(), Buffer.alloc(0)]) {
      const raw = await RawFrontend.tcp(app.info.port);
      if (bytes.length > 0) raw.write(bytes);
      else raw.stream.end();
      expect(await raw.closed()).toBe(true);
      expect(raw.raw.length).toBe(0);
    }
    // A packet of a sane length for another protocol version is answered, as PostgreSQL answers it.
    const raw = await RawFrontend.tcp(app.info.port);
    raw.write(Buffer.from([0, 0, 0, 8, 1, 2, 3, 4]));
    expect((await raw.error())?.code).toBe('0A000');
    await stillServes();
  });

  it('lets node-postgres end a client before its startup without an error', async () => {
    const errors: unknown[] = [];
    const client = new pg.Client({ host: app.info.host, port: app.info.port, user: app.info.user, database: app.info.database, password: app.info.password, ssl: false });
    client.on('error', (e) => errors.push(e));
    const connecting = client.connect().catch((e: unknown) => errors.push(e));
    await client.end();
    // (node-postgres leaves the promise of a connect it abandoned pending, whatever the server does.)
    // A window for an error the server might still send to show up in.
    await Promise.race([connecting, quietFor(500)]);
    expect(errors.map(String).filter((e) => e.includes('FATAL') || e.includes('hoop'))).toEqual([]);
    await stillServes();
  });

  it('refuses replication and startup settings the gateway does not let through with 0A000, naming them', async () => {
    for (const extra of [
      ['replication', 'database'],
      ['options', '-c role=postgres'],
      ['work_mem', '1GB'],
      ['options', '-c work_mem=1GB'],
    ] as Array<[string, string]>) {
      const raw = await RawFrontend.tcp(app.info.port);
      // replication is refused before the local sign-in; the gateway refuses the others after it.
      await raw.startup(app.info.password, [['user', 'hoop'], ['database', 'app'], extra]).catch(() => undefined);
      const err = await raw.error();
      expect(err?.code).toBe('0A000');
      expect(err?.message).toContain(extra[1]!.includes('-c') ? extra[1]!.slice(3, extra[1]!.indexOf('=')) : extra[0]);
    }
  });

  it('passes the startup settings drivers send, also as options -c, to the server', async () => {
    const raw = await RawFrontend.tcp(app.info.port);
    await raw.startup(app.info.password, [
      ['user', 'hoop'],
      ['database', 'app'],
      ['statement_timeout', '45s'],
      ['options', '-c lock_timeout=3s --application-name=drv'],
    ]);
    const from = raw.raw.length;
    raw.write(query("select current_setting('statement_timeout') || ' ' || current_setting('lock_timeout') || ' ' || current_setting('application_name')"));
    const row = (await raw.messagesSince(from, 1)).find((m) => m.type === 0x44);
    expect(row?.body.toString()).toContain('45s 3s drv');
    raw.destroy();
  });
});

describe('straight to the gateway tunnel (no CLI)', () => {
  async function tunnel(): Promise<RawFrontend> {
    const { channel } = await openTunnel({ gateway: stack.gateway.url, connection: 'app', token, sessionId: `raw-${Date.now()}-x`, clientVersion: 'test', ca: stack.pki.ca });
    return new RawFrontend(channel);
  }

  it.each(malformed)('%s closes that tunnel with 08P01', async (_what, bytes) => {
    const raw = await tunnel();
    await raw.startup('');
    raw.write(bytes);
    expect((await raw.error())?.code).toBe('08P01');
    expect(await raw.closed()).toBe(true);
    await stillServes();
  });

  it('applies the startup allow-list', async () => {
    for (const extra of [
      ['replication', 'true'],
      ['options', '-c default_transaction_read_only=off'],
      ['session_authorization', 'postgres'],
    ] as Array<[string, string]>) {
      const raw = await tunnel();
      raw.write(startupMessage([['user', 'hoop'], extra]));
      expect((await raw.error())?.code).toBe('0A000');
    }
  });

  it('closes on a Terminate before the startup without an ErrorResponse', async () => {
    const raw = await tunnel();
    raw.write(terminate());
    expect(await raw.closed()).toBe(true);
    expect(raw.raw.length).toBe(0);
  });

  it("signs in with the gateway's credential for the role the access allows; a role it does not allow is refused 28000, naming those it does", async () => {
    const raw = await tunnel();
    await raw.startup('', [
      ['user', 'hoop'],
      ['database', 'app'],
    ]);
    raw.write(query('select current_user'));
    const row = await raw.waitFor('D');
    expect(row!.body.toString()).toContain(stack.pg.users.scram.user);
    raw.write(terminate());

    const refused = await tunnel();
    refused.write(
      startupMessage([
        ['user', 'postgres'],
        ['database', 'app'],
      ]),
    );
    const e = await refused.error(30_000);
    expect(e?.code).toBe('28000');
    expect(e?.message).toContain(`hoop: role "postgres" is not allowed to you on connection "app" through hoop: you may use "${stack.pg.users.scram.user}"`);
    expect(await refused.closed()).toBe(true);
  });

  it('closes a tunnel whose client never sends its startup packet (handshake deadline)', async () => {
    const started = Date.now();
    const raw = await tunnel();
    expect((await raw.error(30_000))?.message).toContain('in time');
    // At the deadline (handshakeTimeoutMs: 1.5 s here), not before.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect(await raw.closed()).toBe(true);
  });

  it('closes a tunnel whose client stops in the middle of a message (read deadline)', async () => {
    const raw = await tunnel();
    await raw.startup('');
    raw.write(message('Q', 1000, Buffer.from('select')));
    expect((await raw.error(30_000))?.message).toContain('middle of a message');
    expect(await raw.closed()).toBe(true);
  });
});
