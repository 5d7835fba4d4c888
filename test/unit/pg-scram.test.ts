import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors.js';
import { PgProtocolError } from '../../src/postgres/wire/protocol-error.js';
import { ScramAuthError, ScramClient, ScramServer, SCRAM_SHA_256, SCRAM_SHA_256_PLUS, makeScramSecret, md5Password, saslPrep, tlsServerEndPoint } from '../../src/postgres/wire/scram.js';
import { mintCertificate } from '../../src/x509.js';
import { createHash } from 'node:crypto';
import { thrown } from '../harness/thrown.js';

// RFC 7677 section 3. The ServerSignature printed in the RFC is wrong (see
// https://www.rfc-editor.org/errata/rfc7677); this is the corrected value every implementation computes.
const vector = {
  password: 'pencil',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNoncePart: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

function rejects(fn: () => unknown, cls: typeof PgProtocolError | typeof ScramAuthError): Error {
  const caught = thrown(fn);
  expect(caught).toBeInstanceOf(cls);
  return caught as Error;
}

describe('ScramClient', () => {
  it('follows the RFC 7677 test vector', () => {
    const c = new ScramClient(vector.password, vector.clientNonce, 'user');
    expect(c.clientFirstMessage().toString()).toBe(vector.clientFirst);
    expect(c.handleServerFirst(b(vector.serverFirst)).toString()).toBe(vector.clientFinal);
    expect(() => c.verifyServerFinal(b(vector.serverFinal))).not.toThrow();
  });

  it('the non-blocking variant gives the same client-final-message', async () => {
    const c = new ScramClient(vector.password, vector.clientNonce, 'user');
    c.clientFirstMessage();
    expect((await c.handleServerFirstAsync(b(vector.serverFirst))).toString()).toBe(vector.clientFinal);
    c.verifyServerFinal(b(vector.serverFinal));
  });

  it('sends an empty user name by default, as libpq does', () => {
    expect(new ScramClient('x', 'abc').clientFirstMessage().toString()).toBe('n,,n=,r=abc');
    expect(new ScramClient('x', 'abc', 'a=b,c').clientFirstMessage().toString()).toBe('n,,n=a=3Db=2Cc,r=abc');
    const random = new ScramClient('x').clientFirstMessage().toString();
    expect(random).toMatch(/^n,,n=,r=[A-Za-z0-9+/=]{24}$/);
  });

  function atServerFinal(): ScramClient {
    const c = new ScramClient(vector.password, vector.clientNonce, 'user');
    c.clientFirstMessage();
    c.handleServerFirst(b(vector.serverFirst));
    return c;
  }

  it('refuses a wrong server signature and a server error', () => {
    const e = rejects(() => atServerFinal().verifyServerFinal(b('v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')), ScramAuthError);
    expect((e as ScramAuthError).sqlstate).toBe('28P01');
    expect((e as ScramAuthError).code).toBe(ErrorCode.ACCESS_DENIED);
    rejects(() => atServerFinal().verifyServerFinal(b('v=AAAA')), ScramAuthError);
    expect(rejects(() => atServerFinal().verifyServerFinal(b('e=invalid-proof')), ScramAuthError).message).toMatch(/invalid-proof/);
    rejects(() => atServerFinal().verifyServerFinal(b('x=1')), PgProtocolError);
    rejects(() => atServerFinal().verifyServerFinal(b('v=not base64!')), PgProtocolError);
  });

  it('refuses a malformed or hostile server-first-message', () => {
    const first = (msg: string) => () => {
      const c = new ScramClient('pencil', 'abc');
      c.clientFirstMessage();
      return c.handleServerFirst(b(msg));
    };
    const salt = 's=W22ZaJ0SNY7soEsUEjb6gQ==';
    expect(first(`r=abcdef,${salt},i=4096`)()).toBeInstanceOf(Buffer);
    expect(first(`r=abcdef,${salt},i=4096,x=ext`)()).toBeInstanceOf(Buffer);
    rejects(first(`r=xyzdef,${salt},i=4096`), PgProtocolError);
    rejects(first(`r=abc,${salt},i=4096`), PgProtocolError);
    rejects(first(`r=ab,${salt},i=4096`), PgProtocolError);
    rejects(first(`r=abcdef,i=4096`), PgProtocolError);
    rejects(first(`r=abcdef,s=,i=4096`), PgProtocolError);
    rejects(first(`r=abcdef,s=***,i=4096`), PgProtocolError);
    rejects(first(`r=abcdef,${salt}`), PgProtocolError);
    rejects(first(`r=abcdef,${salt},i=999`), PgProtocolError);
    expect(first(`r=abcdef,${salt},i=1000`)()).toBeInstanceOf(Buffer);
    rejects(first(`r=abcdef,${salt},i=1000001`), PgProtocolError);
    rejects(first(`r=abcdef,${salt},i=0`), PgProtocolError);
    rejects(first(`r=abcdef,${salt},i=-1`), PgProtocolError);
    rejects(first(`r=abcdef,${salt},i=4096x`), PgProtocolError);
    rejects(first(`m=ext,r=abcdef,${salt},i=4096`), PgProtocolError);
    rejects(first(`e=other-error`), ScramAuthError);
    rejects(first(`garbage`), PgProtocolError);
  });

  it('refuses messages out of order', () => {
    const c = new ScramClient('pencil', 'abc');
    rejects(() => c.handleServerFirst(b('r=abcdef,s=AAAA,i=4096')), PgProtocolError);
    rejects(() => c.verifyServerFinal(b('v=AAAA')), PgProtocolError);
    c.clientFirstMessage();
    rejects(() => c.clientFirstMessage(), PgProtocolError);
  });
});

describe('ScramServer', () => {
  it('follows the RFC 7677 test vector', () => {
    const secret = makeScramSecret(vector.password, 4096, vector.salt);
    const s = new ScramServer(secret, vector.serverNoncePart);
    expect(s.handleClientFirst(b(vector.clientFirst)).toString()).toBe(vector.serverFirst);
    expect(s.handleClientFinal(b(vector.clientFinal)).toString()).toBe(vector.serverFinal);
  });

  function roundTrip(serverPassword: string, clientPassword: string): void {
    const server = new ScramServer(makeScramSecret(serverPassword));
    const client = new ScramClient(clientPassword);
    const serverFirst = server.handleClientFirst(client.clientFirstMessage());
    const serverFinal = server.handleClientFinal(client.handleServerFirst(serverFirst));
    client.verifyServerFinal(serverFinal);
  }

  it('round-trips with the right password', () => {
    roundTrip('correct horse battery staple', 'correct horse battery staple');
    roundTrip('', '');
    roundTrip('p\u00e4ss\u2168', 'p\u00e4ss\u2168');
    roundTrip('\u2168', 'IX');
  });

  it('refuses a wrong password with ScramAuthError', () => {
    const e = rejects(() => roundTrip('right', 'wrong'), ScramAuthError);
    expect(e.message).not.toMatch(/right|wrong/);
  });

  it('signs in again with a remembered salted password, and derives another password anew (and refuses it)', async () => {
    // How often PBKDF2 runs is counted in pg-scram-cache.test.ts, what it saves is measured in test/perf/parsing-speed.test.ts.
    const salt = Buffer.from('the same salt for every exchange, again');
    const secret = makeScramSecret('pw', 4096, salt);
    const signIn = async (password: string): Promise<void> => {
      const server = new ScramServer(secret);
      const client = new ScramClient(password);
      const final = await client.handleServerFirstAsync(server.handleClientFirst(client.clientFirstMessage()));
      client.verifyServerFinal(server.handleClientFinal(final));
    };
    await signIn('pw');
    await signIn('pw');
    await signIn('pw');
    // Another password with the same salt is derived anew, and refused.
    await expect(signIn('not pw')).rejects.toBeInstanceOf(ScramAuthError);
    // The synchronous path shares what was derived, and checks the same way.
    roundTripWith(secret, 'pw');
    rejects(() => roundTripWith(secret, 'PW'), ScramAuthError);
  });

  function roundTripWith(secret: ReturnType<typeof makeScramSecret>, password: string): void {
    const server = new ScramServer(secret);
    const client = new ScramClient(password);
    const serverFinal = server.handleClientFinal(client.handleServerFirst(server.handleClientFirst(client.clientFirstMessage())));
    client.verifyServerFinal(serverFinal);
  }

  it('a server-final-message replayed from another exchange fails the client check', () => {
    const client = new ScramClient('pw');
    const server = new ScramServer(makeScramSecret('pw'));
    const serverFirst = server.handleClientFirst(client.clientFirstMessage());
    const clientFinal = client.handleServerFirst(serverFirst);
    server.handleClientFinal(clientFinal);
    rejects(() => client.verifyServerFinal(b(vector.serverFinal)), ScramAuthError);
  });

  it('accepts gs2 flag y with the matching channel binding', () => {
    const secret = makeScramSecret(vector.password, 4096, vector.salt);
    const s = new ScramServer(secret, vector.serverNoncePart);
    s.handleClientFirst(b('y,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
    // The proof in the vector covers c=biws; with y the binding is base64("y,,") = eSws and the proof changes.
    rejects(() => s.handleClientFinal(b(vector.clientFinal)), PgProtocolError);
  });

  it('computes a y-flag exchange end to end', async () => {
    const { createHmac, createHash, pbkdf2Sync } = await import('node:crypto');
    const secret = makeScramSecret('pw', 4096);
    const s = new ScramServer(secret, 'SERVER');
    const bare = 'n=,r=CLIENT';
    const serverFirst = s.handleClientFirst(b(`y,,${bare}`)).toString();
    const withoutProof = 'c=eSws,r=CLIENTSERVER';
    const authMessage = `${bare},${serverFirst},${withoutProof}`;
    const salted = pbkdf2Sync('pw', secret.salt, 4096, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const storedKey = createHash('sha256').update(clientKey).digest();
    const sig = createHmac('sha256', storedKey).update(authMessage).digest();
    const proof = Buffer.from(clientKey.map((x, i) => x ^ sig[i]!));
    expect(s.handleClientFinal(b(`${withoutProof},p=${proof.toString('base64')}`)).toString()).toMatch(/^v=/);
  });

  it('refuses malformed client messages', () => {
    const secret = makeScramSecret('pw', 4096);
    const first = (msg: string) => () => new ScramServer(secret).handleClientFirst(b(msg));
    expect(first('n,,n=,r=abc')()).toBeInstanceOf(Buffer);
    rejects(first('p=tls-server-end-point,,n=,r=abc'), PgProtocolError);
    rejects(first('x,,n=,r=abc'), PgProtocolError);
    rejects(first('n,a=admin,n=,r=abc'), PgProtocolError);
    rejects(first('n,,m=ext,n=,r=abc'), PgProtocolError);
    rejects(first('n,,r=abc'), PgProtocolError);
    rejects(first('n,,n=,r='), PgProtocolError);
    rejects(first('n,,n='), PgProtocolError);
    rejects(first('garbage'), PgProtocolError);
    rejects(first(''), PgProtocolError);
    expect(() => first('n,,n=,r=abc\xff')()).toThrow(PgProtocolError);
    rejects(() => new ScramServer(secret).handleClientFirst(Buffer.from([0x6e, 0x2c, 0x2c, 0xff])), PgProtocolError);

    const final = (msg: string) => () => {
      const s = new ScramServer(secret, 'SRV');
      s.handleClientFirst(b('n,,n=,r=abc'));
      return s.handleClientFinal(b(msg));
    };
    const proof = Buffer.alloc(32).toString('base64');
    rejects(final(`c=biws,r=abcSRV,p=${proof}`), ScramAuthError);
    rejects(final(`c=eSws,r=abcSRV,p=${proof}`), PgProtocolError);
    rejects(final(`c=biws,r=abcXXX,p=${proof}`), PgProtocolError);
    rejects(final(`c=biws,r=abcSRV`), PgProtocolError);
    rejects(final(`c=biws,r=abcSRV,p=AAAA`), PgProtocolError);
    rejects(final(`c=biws,r=abcSRV,p=!!`), PgProtocolError);
    rejects(final(`r=abcSRV,c=biws,p=${proof}`), PgProtocolError);
    rejects(final(`c=biws,p=${proof}`), PgProtocolError);
  });

  it('refuses messages out of order and a second final', () => {
    const s = new ScramServer(makeScramSecret('pw'));
    rejects(() => s.handleClientFinal(b('c=biws,r=x,p=AAAA')), PgProtocolError);
    const client = new ScramClient('pw');
    const clientFinal = client.handleServerFirst(s.handleClientFirst(client.clientFirstMessage()));
    s.handleClientFinal(clientFinal);
    rejects(() => s.handleClientFinal(clientFinal), PgProtocolError);
    rejects(() => s.handleClientFirst(b('n,,n=,r=abc')), PgProtocolError);
  });
});

describe('interoperates with node-postgres', () => {
  const require = createRequire(import.meta.url);
  const sasl = require('pg/lib/crypto/sasl.js') as {
    startSession(mechanisms: string[]): { response: string; clientNonce: string; message: string; mechanism: string };
    continueSession(session: object, password: string, serverData: string): Promise<void>;
    finalizeSession(session: object, serverData: string): void;
  };

  it('a pg client authenticates to ScramServer', async () => {
    const server = new ScramServer(makeScramSecret('hunter2'));
    const session = sasl.startSession(['SCRAM-SHA-256']) as unknown as { response: string };
    const serverFirst = server.handleClientFirst(b(session.response)).toString();
    await sasl.continueSession(session, 'hunter2', serverFirst);
    const serverFinal = server.handleClientFinal(b(session.response)).toString();
    expect(() => sasl.finalizeSession(session, serverFinal)).not.toThrow();
  });

  it('a pg client with a wrong password is refused', async () => {
    const server = new ScramServer(makeScramSecret('hunter2'));
    const session = sasl.startSession(['SCRAM-SHA-256']) as unknown as { response: string };
    await sasl.continueSession(session, 'hunter3', server.handleClientFirst(b(session.response)).toString());
    rejects(() => server.handleClientFinal(b(session.response)), ScramAuthError);
  });

  it('md5Password matches node-postgres', () => {
    const utils = require('pg/lib/crypto/utils.js') as {
      postgresMd5PasswordHash(user: string, password: string, salt: Buffer): Promise<string> | string;
    };
    const salt = Buffer.from([0x93, 0x12, 0x00, 0xfe]);
    return Promise.resolve(utils.postgresMd5PasswordHash('alice', 'secret', salt)).then((want) => {
      expect(md5Password('alice', 'secret', salt)).toBe(want);
      expect(want).toMatch(/^md5[0-9a-f]{32}$/);
    });
  });
});

describe('saslPrep', () => {
  it('leaves ASCII alone and maps, normalizes or gives up as RFC 4013 says', () => {
    expect(saslPrep('user')).toBe('user');
    expect(saslPrep('a\u0007b')).toBe('a\u0007b');
    expect(saslPrep('I\u00adX')).toBe('IX');
    expect(saslPrep('\u00aa')).toBe('a');
    expect(saslPrep('\u2168')).toBe('IX');
    expect(saslPrep('a\u00a0b\u3000')).toBe('a b ');
    expect(saslPrep('\u00e9\u0007')).toBe('\u00e9\u0007');
    expect(saslPrep('\ue000x\u00e9')).toBe('\ue000x\u00e9');
    expect(saslPrep('\u05d0\u05d1')).toBe('\u05d0\u05d1');
    expect(saslPrep('\u05d0a\u05d1')).toBe('\u05d0a\u05d1');
    expect(saslPrep('e\u0301')).toBe('\u00e9');
  });
});

describe('md5Password', () => {
  it("is 'md5' + md5hex(md5hex(password + user) + salt)", () => {
    expect(md5Password('user', 'pencil', Buffer.from([1, 2, 3, 4]))).toMatch(/^md5[0-9a-f]{32}$/);
    expect(md5Password('user', 'pencil', Buffer.from([1, 2, 3, 4]))).not.toBe(md5Password('user', 'pencil', Buffer.from([1, 2, 3, 5])));
  });
});

describe('SCRAM-SHA-256-PLUS (channel binding, tls-server-end-point)', () => {
  const binding = createHash('sha256').update('the TLS connection the server certificate ends').digest();
  const secret = makeScramSecret('pw');

  const exchange = (server: ScramServer, client: ScramClient): void => {
    const serverFirst = server.start(client.mechanism, client.clientFirstMessage());
    client.verifyServerFinal(server.handleClientFinal(client.handleServerFirst(serverFirst)));
  };

  it('offers -PLUS first over TLS, and a client binding the same connection signs in', () => {
    const server = new ScramServer(secret, undefined, binding);
    expect(server.mechanisms).toEqual([SCRAM_SHA_256_PLUS, SCRAM_SHA_256]);
    exchange(server, new ScramClient('pw', undefined, '', binding));
    expect(new ScramServer(secret).mechanisms).toEqual([SCRAM_SHA_256]);
  });

  it('refuses a client that binds another connection (a man in the middle with another certificate)', () => {
    const other = createHash('sha256').update('the attacker certificate').digest();
    rejects(() => exchange(new ScramServer(secret, undefined, binding), new ScramClient('pw', undefined, '', other)), ScramAuthError);
  });

  it('takes a client that cannot bind (gs2 n), and refuses one that could but saw no -PLUS offered (gs2 y: the offer was cut)', () => {
    exchange(new ScramServer(secret, undefined, binding), new ScramClient('pw'));
    const server = new ScramServer(secret, undefined, binding);
    rejects(() => server.start(SCRAM_SHA_256, b('y,,n=,r=abcdefgh')), ScramAuthError);
    // Without TLS, y is what it says: the server offered no binding.
    new ScramServer(secret).start(SCRAM_SHA_256, b('y,,n=,r=abcdefgh'));
  });

  it('refuses a mechanism and a gs2 header that disagree, another binding type, and a mechanism not offered', () => {
    rejects(() => new ScramServer(secret, undefined, binding).start(SCRAM_SHA_256_PLUS, b('n,,n=,r=abcdefgh')), PgProtocolError);
    rejects(() => new ScramServer(secret, undefined, binding).start(SCRAM_SHA_256, b('p=tls-server-end-point,,n=,r=abcdefgh')), PgProtocolError);
    rejects(() => new ScramServer(secret, undefined, binding).start(SCRAM_SHA_256_PLUS, b('p=tls-unique,,n=,r=abcdefgh')), PgProtocolError);
    rejects(() => new ScramServer(secret).start(SCRAM_SHA_256_PLUS, b('p=tls-server-end-point,,n=,r=abcdefgh')), PgProtocolError);
  });

  it("hashes the certificate with its signature's hash (SHA-256 for ECDSA-SHA256), and has no binding for a certificate signed otherwise", () => {
    const cert = mintCertificate({ commonName: 'gateway' });
    expect(tlsServerEndPoint(cert.x509.raw)).toEqual(createHash('sha256').update(cert.x509.raw).digest());
    expect(tlsServerEndPoint(Buffer.from('not a certificate'))).toBeUndefined();
  });
});
