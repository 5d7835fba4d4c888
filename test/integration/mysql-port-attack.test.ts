/**
 * Attacks on the gateway's MySQL port (`mysqlListen`): raw clients that sign in (or fail to) with
 * a direct credential, and what they can make the gateway hold or do.
 */
import { connect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NATIVE_PASSWORD, scramble } from '../../src/mysql/wire/auth.js';
import { Cap, handshakeResponse, parseGreeting, sslRequest, type Greeting } from '../../src/mysql/wire/handshake.js';
import { packet, PacketReader, type MySqlPacket } from '../../src/mysql/wire/packets.js';
import { parseErr } from '../../src/mysql/wire/results.js';
import { startMariaDb, type MariaServer, mariaConnectionYaml } from '../harness/mariadb.js';
import { packets } from '../harness/mysql-packets.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually, poll } from '../harness/wait.js';

let db: MariaServer;
let governed: HoopStack;
let repo: PolicyGitRepo;
let port: number;

beforeAll(async () => {
  db = await startMariaDb();
  repo = new PolicyGitRepo('hoop-mysql-attack-');
  governed = await startStack({
    gateway: { mysql: { handshakeTimeoutMs: 1500 } },
    env: { MARIA_PASSWORD: db.users.native.password },
    policy: () => {
      repo.commit(`version: 1
connections:
${mariaConnectionYaml(db.port)}
${mariaConnectionYaml(db.port, 'shop-one')}
access:
  - { name: people, subjects: [alice], connections: [shop], mode: read-write }
  - { name: one-at-a-time, subjects: [carol], connections: [shop-one], mode: read-write, maxSessions: 1 }
statements:
  rules:
    - { name: no-deletes, match: { kinds: [delete] }, action: deny, message: rows are not deleted here }
masking:
  columns:
    - { table: app.items, column: name, strategy: redact }
`);
      return repo.gatewayBlock(['${env:MARIA_*}']);
    },
    extraConfig: 'mysqlListen: 127.0.0.1:0\n',
  });
  port = Number(governed.logs().find((l) => l.event === 'gateway.mysql-listening')?.port);
});

afterAll(async () => {
  await governed?.close();
  repo?.remove();
  await db?.stop();
});

/** A direct credential of `subject`'s on `connection`. */
async function mint(connection = 'shop', subject = 'alice'): Promise<{ user: string; password: string }> {
  const r = await governed.run(['connect', connection, '--direct', '--once', '--json', '--gateway', governed.gateway.url, '--ca-file', governed.pki.caFile], {
    HOOP_TOKEN: await governed.token(subject),
  });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { user: string; password: string };
}

/** TCP to the MySQL port, its greeting read, an SSLRequest sent and TLS made over it. */
async function tlsAtPort(): Promise<{ raw: Socket; tls: TLSSocket; greeting: Greeting; p: ReturnType<typeof packets> }> {
  // A client that keeps its side open when the gateway closes its own (as a hostile one does).
  const raw = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  raw.on('error', () => undefined);
  const greetingPacket = await new Promise<MySqlPacket>((resolve) => {
    const reader = new PacketReader();
    const onData = (c: Buffer): void => {
      const [got] = reader.push(c);
      if (got) {
        raw.off('data', onData);
        raw.pause();
        resolve(got);
      }
    };
    raw.on('data', onData);
  });
  const greeting = parseGreeting(greetingPacket.payload);
  raw.write(packet(1, sslRequest(Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH, 1 << 24, 45)));
  const tls = tlsConnect({ socket: raw, rejectUnauthorized: false, allowHalfOpen: true } as ConnectionOptions);
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', resolve);
    tls.once('error', reject);
  });
  return { raw, tls, greeting, p: packets(tls) };
}

const CLIENT = Cap.LONG_PASSWORD | Cap.LONG_FLAG | Cap.PROTOCOL_41 | Cap.TRANSACTIONS | Cap.SECURE_CONNECTION | Cap.MULTI_RESULTS | Cap.PLUGIN_AUTH | Cap.SSL;

/** A HandshakeResponse proving `password` for `nonce`. */
function hello(user: string, password: string, nonce: Buffer, caps = CLIENT): Buffer {
  return handshakeResponse({
    capabilities: caps,
    maxPacketSize: 1 << 24,
    charset: 45,
    mariadbCapabilities: 0,
    user,
    authResponse: scramble(NATIVE_PASSWORD, password, nonce),
    authPlugin: NATIVE_PASSWORD,
    attributes: [],
  });
}

const query = (sql: string): Buffer => packet(0, Buffer.concat([Buffer.from([0x03]), Buffer.from(sql, 'utf8')]));

/** Writes `n` packets of 1 MiB on `to` as fast as the gateway reads them (unless it closes); resolves once they left this process, or it closed. */
async function flood(to: Duplex, raw: Socket, n: number): Promise<void> {
  const chunk = packet(0, Buffer.alloc((1 << 20) - 16, 0x41));
  for (let i = 0; i < n && !raw.destroyed; i++) {
    if (!to.write(chunk)) await new Promise<void>((r) => to.once('drain', r).once('close', r));
  }
  await poll(() => raw.destroyed || (to.writableLength === 0 && raw.writableLength === 0) || undefined, { timeout: 5_000, interval: 50 });
}

describe("an attacker at the gateway's MySQL port", () => {
  it('refused for a wrong password, cannot make the gateway hold what it sends after, nor keep its connection past the handshake deadline', async () => {
    const d = await mint();
    const { raw, tls, greeting, p } = await tlsAtPort();
    tls.write(packet(2, hello(d.user, 'not-the-password', greeting.nonce)));
    expect(parseErr((await p.next()).payload).code).toBe(1045);
    // Its side stays open (allowHalfOpen): the connection is cut only once the gateway closes it whole (a write then meets a reset).
    let cut = false;
    tls.once('close', () => (cut = true));
    // The attacker keeps its side open and writes on (96 packets of 1 MiB): the gateway cuts it at the handshake deadline (1.5 s here), and so holds nothing of it.
    await flood(tls, raw, 96);
    await eventually(
      () => {
        if (!cut) tls.write(packet(0, Buffer.from('ping')));
        expect(cut).toBe(true);
      },
      { timeout: 60_000, interval: 200 },
    );
    tls.destroy();
  });

  it('refused for not asking for TLS, cannot make the gateway hold what it sends after', async () => {
    const raw = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    raw.on('error', () => undefined);
    const p = packets(raw);
    const g = parseGreeting((await p.next()).payload);
    raw.write(packet(1, hello('dc_AAAAAAAAAAAAAAAAAAAAAA', 'x', g.nonce, CLIENT & ~Cap.SSL)));
    expect(parseErr((await p.next()).payload).code).toBe(3159);
    // It writes on, its side open: the gateway drops what it reads and cuts it at the handshake deadline (1.5 s here), not the guard's 10 s.
    const started = Date.now();
    await flood(raw, raw, 96);
    await p.closed;
    expect(Date.now() - started).toBeLessThan(8_000);
    raw.destroy();
  });

  it('pipelines a denied statement right behind its sign-in: it is judged (refused), and the session goes on', async () => {
    const d = await mint();
    const { tls, greeting, p } = await tlsAtPort();
    tls.write(Buffer.concat([packet(2, hello(d.user, d.password, greeting.nonce)), query('DELETE FROM items WHERE id = 1'), query('SELECT name FROM items WHERE id = 1')]));
    const ok = await p.next();
    expect(ok.payload[0]).toBe(0);
    const denied = await p.next();
    expect(parseErr(denied.payload)).toMatchObject({ code: 1227 });
    const rest: MySqlPacket[] = [];
    for (let i = 0; i < 5; i++) rest.push(await p.next());
    const answer = rest.map((x) => x.payload.toString('latin1')).join('|');
    expect(answer).toContain('name');
    expect(answer).not.toContain('one');
    tls.destroy();
    expect((await db.sql('SELECT count(*) FROM app.items WHERE id = 1')).trim()).toBe('1');
  });

  it('refused at admission (over its maxSessions), cannot keep its connection open: the gateway cuts it after a grace', async () => {
    const d = await mint('shop-one', 'carol');
    const first = await tlsAtPort();
    first.tls.write(packet(2, hello(d.user, d.password, first.greeting.nonce)));
    expect((await first.p.next()).payload[0]).toBe(0);
    // A second session of carol's is over the rule's maxSessions: refused. This client keeps its side open (allowHalfOpen) and says nothing more.
    const second = await tlsAtPort();
    let cut = false;
    second.tls.once('close', () => (cut = true));
    second.tls.on('error', () => undefined);
    second.tls.write(packet(2, hello(d.user, d.password, second.greeting.nonce)));
    expect(parseErr((await second.p.next()).payload)).toMatchObject({ code: 1040 });
    // Once past the handshake deadline (1.5 s) and the gateway's 5 s linger, a write meets a closed connection: polled, a write at each look.
    await eventually(
      () => {
        if (!cut && !second.tls.destroyed) second.tls.write(packet(0, Buffer.from('ping')));
        expect(cut).toBe(true);
      },
      { timeout: 60_000, interval: 200 },
    );
    second.tls.destroy();
    first.tls.destroy();
  });

  it('cannot prove a credential without its password: an empty or zero proof, a proof replayed from another connection, a switch answered with garbage', async () => {
    const d = await mint();
    const attempt = async (make: (nonce: Buffer) => Buffer[]): Promise<number> => {
      const { tls, greeting, p } = await tlsAtPort();
      const [first, ...rest] = make(greeting.nonce);
      tls.write(packet(2, first!));
      let reply = await p.next();
      for (const r of rest) {
        expect(reply.payload[0]).toBe(0xfe);
        tls.write(packet(reply.next, r));
        reply = await p.next();
      }
      tls.destroy();
      return reply.payload[0] === 0xff ? parseErr(reply.payload).code : reply.payload[0]!;
    };
    const withProof = (proof: Buffer, plugin = NATIVE_PASSWORD): Buffer =>
      handshakeResponse({ capabilities: CLIENT, maxPacketSize: 1 << 24, charset: 45, mariadbCapabilities: 0, user: d.user, authResponse: proof, authPlugin: plugin, attributes: [] });
    expect(await attempt(() => [withProof(Buffer.alloc(0))])).toBe(1045);
    expect(await attempt(() => [withProof(Buffer.alloc(20))])).toBe(1045);
    // A proof seen on another connection (another nonce) proves nothing here.
    const seen = await tlsAtPort();
    const replayed = scramble(NATIVE_PASSWORD, d.password, seen.greeting.nonce);
    seen.tls.destroy();
    expect(await attempt(() => [withProof(replayed)])).toBe(1045);
    // Another plugin: switched to mysql_native_password, whose answer must be the proof.
    expect(await attempt(() => [withProof(Buffer.alloc(32, 1), 'caching_sha2_password'), Buffer.from('garbage')])).toBe(1045);
    expect(await attempt(() => [withProof(Buffer.alloc(0), 'mysql_clear_password'), Buffer.from(`${d.password}\0`)])).toBe(1045);
    expect(await attempt((nonce) => [withProof(Buffer.alloc(0), 'dialog'), scramble(NATIVE_PASSWORD, d.password, nonce)])).toBe(0);
  });
});
