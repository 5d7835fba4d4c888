import { listenOnLoopback } from '../harness/listen.js';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors.js';
import { UpstreamPostgresError, cancelUpstreamPostgres, connectUpstreamPostgres, type UpstreamPostgres, type UpstreamPostgresOptions } from '../../src/postgres/gateway/upstream.js';
import { authenticationOk, authenticationSASL, authenticationSASLContinue, authenticationSASLFinal, backendKeyData, query, readyForQuery, terminate } from '../../src/postgres/wire/messages.js';
import { MessageReader, parseErrorFields, parseSaslInitialResponse, type PgMessage } from '../../src/postgres/wire/reader.js';
import { ScramServer, makeScramSecret } from '../../src/postgres/wire/scram.js';
import { readStartupPacket } from '../../src/postgres/pipeline/startup.js';
import { createTestPki, type TestPki } from '../harness/certs.js';
import { freePort, startPgCluster, type PgCluster, type PgUser } from '../harness/postgres.js';
import { eventually } from '../harness/wait.js';

let pki: TestPki;
let otherPki: TestPki;
let plain: PgCluster;
let secure: PgCluster;

beforeAll(async () => {
  [pki, otherPki] = await Promise.all([createTestPki(), createTestPki()]);
  const cert = await pki.issue('pg', ['IP:127.0.0.1', 'DNS:localhost']);
  [plain, secure] = await Promise.all([startPgCluster(), startPgCluster({ ssl: { certFile: cert.certFile, keyFile: cert.keyFile } })]);
});

afterAll(async () => {
  await Promise.all([plain?.stop(), secure?.stop()]);
  await Promise.all([pki?.cleanup(), otherPki?.cleanup()]);
});

function options(cluster: PgCluster, user: PgUser, extra: Partial<UpstreamPostgresOptions> = {}): UpstreamPostgresOptions {
  return {
    host: cluster.host,
    port: cluster.port,
    user: user.user,
    database: cluster.database,
    password: user.password,
    tls: { mode: 'disable' },
    params: [['application_name', 'hoop-test']],
    timeoutMs: 10_000,
    ...extra,
  };
}

/** Runs one simple-protocol query over the handed-over socket; returns the text of each DataRow column and any error. */
async function simpleQuery(up: UpstreamPostgres, sql: string): Promise<{ rows: string[][]; error?: ReturnType<typeof parseErrorFields> }> {
  const reader = new MessageReader({ side: 'backend' });
  if (up.leftover.length > 0) reader.push(up.leftover);
  const rows: string[][] = [];
  let error: ReturnType<typeof parseErrorFields> | undefined;
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      reader.push(chunk);
      try {
        for (let m: PgMessage | null = reader.next(); m; m = reader.next()) {
          const t = String.fromCharCode(m.type);
          if (t === 'D') rows.push(dataRow(m.body));
          if (t === 'E') error = parseErrorFields(m.body);
          if (t === 'Z') {
            up.socket.off('data', onData);
            up.socket.pause();
            resolve(error ? { rows, error } : { rows });
            return;
          }
        }
      } catch (err) {
        reject(err);
      }
    };
    up.socket.on('data', onData);
    up.socket.once('close', () => reject(new Error('closed')));
    up.socket.write(query(sql));
    up.socket.resume();
  });
}

function dataRow(body: Buffer): string[] {
  const n = body.readUInt16BE(0);
  const out: string[] = [];
  let at = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(at);
    at += 4;
    out.push(len < 0 ? 'NULL' : body.toString('utf8', at, at + len));
    if (len > 0) at += len;
  }
  return out;
}

function close(up: UpstreamPostgres): void {
  up.socket.end(terminate());
}

async function failure(p: Promise<unknown>): Promise<UpstreamPostgresError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UpstreamPostgresError);
  return err as UpstreamPostgresError;
}

describe('authentication against PostgreSQL 15', () => {
  it('signs in with SCRAM-SHA-256 and hands over a usable socket', async () => {
    const up = await connectUpstreamPostgres(options(plain, plain.users.scram));
    expect(up.tls).toBe(false);
    expect(up.leftover.length).toBe(0);
    expect(up.backendKey.processId).toBeGreaterThan(0);
    const params = new Map(up.serverParams);
    expect(params.get('server_version')).toMatch(/^\d+/);
    expect(params.get('application_name')).toBe('hoop-test');
    expect(params.get('session_authorization')).toBe(plain.users.scram.user);
    expect(up.socket.isPaused()).toBe(true);
    expect(await simpleQuery(up, 'select 1')).toEqual({ rows: [['1']] });
    expect(await simpleQuery(up, 'select current_user, current_database()')).toEqual({
      rows: [[plain.users.scram.user, plain.database]],
    });
    close(up);
  });

  it('signs in with md5', async () => {
    const up = await connectUpstreamPostgres(options(plain, plain.users.md5));
    expect(await simpleQuery(up, 'select current_user')).toEqual({ rows: [[plain.users.md5.user]] });
    close(up);
  });

  it('sends a cleartext password only over verified TLS unless allowed', async () => {
    const refused = await failure(connectUpstreamPostgres(options(plain, plain.users.cleartext)));
    expect(refused.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
    expect(refused.message).toMatch(/cleartext password over an unencrypted connection/);
    const allowed = await connectUpstreamPostgres(options(plain, plain.users.cleartext, { allowCleartextWithoutTls: true }));
    expect(await simpleQuery(allowed, 'select 1')).toEqual({ rows: [['1']] });
    close(allowed);
    // TLS that does not check the server's certificate is not enough: it could be anyone's server.
    const unverified = await failure(connectUpstreamPostgres(options(secure, secure.users.cleartext, { tls: { mode: 'require' } })));
    expect(unverified.message).toMatch(/cleartext password over TLS that did not verify its certificate/);
    const overTls = await connectUpstreamPostgres(options(secure, secure.users.cleartext, { tls: { mode: 'verify-full', ca: pki.ca } }));
    expect(overTls.tls).toBe(true);
    expect(await simpleQuery(overTls, 'select current_user')).toEqual({ rows: [[secure.users.cleartext.user]] });
    close(overTls);
  });

  it('reports a wrong password as UPSTREAM_AUTH_FAILED, without the password', async () => {
    for (const user of [plain.users.scram, plain.users.md5, plain.users.cleartext]) {
      const password = `wrong-${user.password}`;
      const err = await failure(connectUpstreamPostgres(options(plain, { user: user.user, password }, { allowCleartextWithoutTls: true })));
      expect(err.code).toBe(ErrorCode.UPSTREAM_AUTH_FAILED);
      expect(err.sqlstate).toBe('28P01');
      expect(err.message).toMatch(/said "password authentication failed for user/);
      expect(err.hint).toBeTruthy();
      expect(`${err.message} ${err.hint} ${String(err.cause)}`).not.toContain(password);
      expect(`${err.message} ${err.hint}`).not.toContain(user.password);
    }
  });

  it('reports other server errors as UPSTREAM_UNAVAILABLE with their SQLSTATE', async () => {
    const err = await failure(connectUpstreamPostgres(options(plain, plain.users.scram, { database: 'no_such_db' })));
    expect(err.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
    expect(err.sqlstate).toBe('3D000');
    expect(err.message).toMatch(/no_such_db/);
  });

  it('a pg_hba reject is an authorization failure', async () => {
    const err = await failure(connectUpstreamPostgres(options(secure, secure.users.tlsOnly)));
    expect(err.code).toBe(ErrorCode.UPSTREAM_AUTH_FAILED);
    expect(err.sqlstate).toBe('28000');
  });
});

describe('unreachable upstreams', () => {
  it('nothing listening', async () => {
    const port = await freePort();
    const err = await failure(connectUpstreamPostgres({ ...options(plain, plain.users.scram), port }));
    expect(err.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
    expect(err.message).toMatch(/could not connect to upstream 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expect(err.hint).toMatch(/running and reachable/);
    expect(err.sqlstate).toBeUndefined();
  });

  it('a server that never answers runs into the deadline', async () => {
    await withFakeServer(
      () => undefined,
      async (port) => {
        const t0 = Date.now();
        const err = await failure(connectUpstreamPostgres({ ...options(plain, plain.users.scram), port, timeoutMs: 300 }));
        // At the deadline asked for, not before (the message says which deadline it was).
        expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
        expect(err.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
        expect(err.message).toMatch(/within 300 ms/);
      },
    );
  });

  it('an aborted attempt stops at once', async () => {
    await withFakeServer(
      () => undefined,
      async (port) => {
        const ac = new AbortController();
        const p = connectUpstreamPostgres({ ...options(plain, plain.users.scram), port, signal: ac.signal });
        setTimeout(() => ac.abort(new Error('session over')), 50);
        const err = await failure(p);
        expect(err.message).toMatch(/aborted/);
      },
    );
  });
});

describe('TLS modes', () => {
  const tlsOptions = (tls: UpstreamPostgresOptions['tls'], cluster = secure) => options(cluster, cluster.users.scram, { tls });

  it('prefer and require encrypt when the server offers TLS', async () => {
    for (const mode of ['prefer', 'require'] as const) {
      const up = await connectUpstreamPostgres(tlsOptions({ mode }));
      expect(up.tls).toBe(true);
      expect(await simpleQuery(up, 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')).toEqual({ rows: [['t']] });
      close(up);
    }
  });

  it('disable does not', async () => {
    const up = await connectUpstreamPostgres(tlsOptions({ mode: 'disable' }));
    expect(up.tls).toBe(false);
    expect(await simpleQuery(up, 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')).toEqual({ rows: [['f']] });
    close(up);
  });

  it('verify-full with the right CA, by IP and by name', async () => {
    const byIp = await connectUpstreamPostgres(tlsOptions({ mode: 'verify-full', ca: pki.ca }));
    expect(byIp.tls).toBe(true);
    expect(await simpleQuery(byIp, 'select 1')).toEqual({ rows: [['1']] });
    close(byIp);
    const byName = await connectUpstreamPostgres(tlsOptions({ mode: 'verify-full', ca: pki.ca, serverName: 'localhost' }));
    expect(byName.tls).toBe(true);
    close(byName);
  });

  it('verify-full fails with a wrong CA, no CA, or a wrong server name', async () => {
    const wrongCa = await failure(connectUpstreamPostgres(tlsOptions({ mode: 'verify-full', ca: otherPki.ca })));
    expect(wrongCa.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
    expect(wrongCa.message).toMatch(/TLS handshake with upstream 127\.0\.0\.1:\d+ failed/);
    expect(wrongCa.hint).toMatch(/tls settings/);
    const systemRoots = await failure(connectUpstreamPostgres(tlsOptions({ mode: 'verify-full' })));
    expect(systemRoots.message).toMatch(/TLS handshake/);
    const wrongName = await failure(connectUpstreamPostgres(tlsOptions({ mode: 'verify-full', ca: pki.ca, serverName: 'db.example.com' })));
    expect(wrongName.message).toMatch(/TLS handshake.*db\.example\.com/);
  });

  it('require checks the chain, not the name, when a CA is given', async () => {
    const ok = await connectUpstreamPostgres(tlsOptions({ mode: 'require', ca: pki.ca, serverName: 'db.example.com' }));
    expect(ok.tls).toBe(true);
    close(ok);
    const wrongCa = await failure(connectUpstreamPostgres(tlsOptions({ mode: 'require', ca: otherPki.ca })));
    expect(wrongCa.message).toMatch(/TLS handshake/);
  });

  it('a TLS-only user gets in over TLS', async () => {
    const up = await connectUpstreamPostgres(options(secure, secure.users.tlsOnly, { tls: { mode: 'verify-full', ca: pki.ca } }));
    expect(await simpleQuery(up, 'select current_user')).toEqual({ rows: [[secure.users.tlsOnly.user]] });
    close(up);
  });

  it('require and verify-full fail against a server without TLS; prefer falls back to plain', async () => {
    for (const mode of ['require', 'verify-full'] as const) {
      const err = await failure(connectUpstreamPostgres(tlsOptions({ mode, ca: pki.ca }, plain)));
      expect(err.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
      expect(err.message).toMatch(new RegExp(`does not support TLS, but the connection's tls mode is ${mode}`));
    }
    const up = await connectUpstreamPostgres(tlsOptions({ mode: 'prefer' }, plain));
    expect(up.tls).toBe(false);
    expect(await simpleQuery(up, 'select 1')).toEqual({ rows: [['1']] });
    close(up);
  });
});

describe('cancel', () => {
  for (const [label, mode] of [
    ['plain', 'disable'],
    ['TLS', 'require'],
  ] as const) {
    it(`cancels a running query (${label})`, async () => {
      const cluster = mode === 'disable' ? plain : secure;
      const o = options(cluster, cluster.users.scram, { tls: { mode } });
      const up = await connectUpstreamPostgres(o);
      const running = simpleQuery(up, 'select pg_sleep(10)');
      await waitUntil(async () => (await cluster.psql(`select count(*) from pg_stat_activity where pid = ${up.backendKey.processId} and state = 'active'`)).trim() === '1');
      await cancelUpstreamPostgres({ host: o.host, port: o.port, tls: o.tls, timeoutMs: 5000 }, up.backendKey);
      const result = await running;
      // 57014 (query_canceled): the cancel ended it, not the end of its 10 s.
      expect(result.error?.code).toBe('57014');
      expect(await simpleQuery(up, 'select 2')).toEqual({ rows: [['2']] });
      close(up);
    });
  }

  it('reports an unreachable server', async () => {
    const port = await freePort();
    const err = await failure(cancelUpstreamPostgres({ host: '127.0.0.1', port, tls: { mode: 'disable' } }, { processId: 1, secretKey: 2 }));
    expect(err.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
  });
});

describe('hostile or broken servers', () => {
  it('refuses plaintext bytes buffered after the SSLRequest answer (CVE-2021-23222)', async () => {
    await withFakeServer(
      (socket) => socket.once('data', () => socket.write(Buffer.concat([Buffer.from('S'), authenticationOk(), readyForQuery('I')]))),
      async (port) => {
        const err = await failure(connectUpstreamPostgres({ ...options(plain, plain.users.scram), port, tls: { mode: 'require' } }));
        expect(err.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
        expect(err.message).toMatch(/unencrypted data after its answer to SSLRequest/);
      },
    );
  });

  it('refuses AuthenticationOk before SCRAM is finished', async () => {
    await withFakeServer(
      (socket) => {
        let step = 0;
        socket.on('data', () => {
          if (step++ === 0) socket.write(authenticationSASL(['SCRAM-SHA-256']));
          else socket.write(Buffer.concat([authenticationOk(), backendKeyData(1, 2), readyForQuery('I')]));
        });
      },
      async (port) => {
        const err = await failure(connectUpstreamPostgres({ ...options(plain, plain.users.scram), port }));
        expect(err.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
        expect(err.message).toMatch(/AuthenticationOk before finishing SCRAM/);
      },
    );
  });

  it('refuses a server whose SCRAM signature is wrong', async () => {
    await withFakeServer(
      (socket) => {
        const scram = new ScramServer(makeScramSecret('other password'));
        const reader = new MessageReader({ side: 'frontend' });
        let step = 0;
        socket.on('data', (chunk: Buffer) => {
          if (step === 0) {
            expect(readStartupPacket(chunk)?.packet.kind).toBe('startup');
            socket.write(authenticationSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']));
            step++;
            return;
          }
          reader.push(chunk);
          for (let m = reader.next(); m; m = reader.next()) {
            if (step++ === 1) {
              socket.write(authenticationSASLContinue(scram.handleClientFirst(parseSaslInitialResponse(m.body).data)));
            } else {
              // Accept whatever proof came and answer with a signature made from another password.
              socket.write(authenticationSASLFinal(Buffer.from(`v=${Buffer.alloc(32, 1).toString('base64')}`)));
            }
          }
        });
      },
      async (port) => {
        const err = await failure(connectUpstreamPostgres({ ...options(plain, plain.users.scram), port }));
        expect(err.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
        expect(err.message).toMatch(/could not prove it knows the password/);
      },
    );
  });

  it('refuses a server that offers only SASL mechanisms hoop does not speak', async () => {
    await withFakeServer(
      (socket) => socket.once('data', () => socket.write(authenticationSASL(['SCRAM-SHA-256-PLUS']))),
      async (port) => {
        const err = await failure(connectUpstreamPostgres({ ...options(plain, plain.users.scram), port }));
        expect(err.message).toMatch(/offers no SASL mechanism hoop supports \(offered: SCRAM-SHA-256-PLUS\)/);
      },
    );
  });

  it('refuses a server that speaks garbage', async () => {
    await withFakeServer(
      (socket) => socket.once('data', () => socket.write('HTTP/1.1 400 Bad Request\r\n\r\n')),
      async (port) => {
        const err = await failure(connectUpstreamPostgres({ ...options(plain, plain.users.scram), port }));
        expect(err.code).toBe(ErrorCode.UPSTREAM_UNAVAILABLE);
        expect(err.message).toMatch(/broke the protocol/);
      },
    );
  });

  it('a server that closes during startup', async () => {
    await withFakeServer(
      (socket) => socket.once('data', () => socket.destroy()),
      async (port) => {
        const err = await failure(connectUpstreamPostgres({ ...options(plain, plain.users.scram), port }));
        expect(err.message).toMatch(/closed the connection during the startup/);
      },
    );
  });
});

async function withFakeServer(onConnection: (socket: Socket) => void, body: (port: number) => Promise<void>): Promise<void> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  const port = await listenOnLoopback(server);
  try {
    await body(port);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  await eventually(async () => expect(await check(), 'condition not met in time').toBe(true), { timeout: timeoutMs });
}
