/**
 * A MySQL client at the gateway's MySQL port (`mysqlListen`, ../../gateway/front/mysql-door.ts):
 * the gateway greets it first (in the name of the MySQL server it reached last: its version, and
 * as MariaDB after a MariaDB server; with a nonce of its own and TLS offered); the client must ask for TLS before it signs in; it names a direct
 * credential as its user and proves the credential's password with `mysql_native_password` (a
 * client that answers with another plugin is switched to it); a credential no longer accepted is
 * refused then, saying why. A signed-in client goes to the gateway's admission, and its session
 * runs on the MySQL engine as a tunnel's does, its sign-in already read
 * ({@link MysqlEngine.serveSignedIn}).
 *
 * A user name that is no credential is checked against a verifier nobody holds, so the answer does
 * not say whether the name exists.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 * @see https://goteleport.com/docs/enroll-resources/database-access/reference/configuration/ (Teleport's MySQL listener greets with a version of its own)
 */
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import { describeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { TlsSessionChannel } from '../../session/tls-channel.js';
import { NATIVE_PASSWORD, nativeProofMatches, newNonce } from '../wire/auth.js';
import { Cap, greeting, isSslRequest, parseHandshakeResponse, type Greeting } from '../wire/handshake.js';
import { PacketSource } from '../wire/packet-source.js';
import { nulString, packet } from '../wire/packets.js';
import { errPacket } from '../wire/results.js';
import { RELAYED_CAPABILITIES, RELAYED_MARIADB_CAPABILITIES, type SignedInAtPort } from './capabilities.js';

/** A credential as the MySQL port needs it: its `mysql_native_password` verifier (none: not a MySQL connection's), why it is no longer accepted (if so), and what the admission takes. */
export interface MysqlDirectCredential<T> {
  verifier: Buffer | undefined;
  refused?: { message: string; hint: string };
  value: T;
}

/** Options of {@link serveDirectMysqlClient}. */
export interface MysqlDirectFrontOptions<T> {
  secureContext: SecureContext;
  /** Deadline for the TLS handshake and the sign-in. */
  handshakeTimeoutMs: number;
  /** The client's address, as the gateway knows it, for the log. */
  remote: string | undefined;
  /** The greeting of the server the gateway reached last, whose name the port greets in (none yet: a MySQL server's of its own). */
  lastGreeting(): Greeting | undefined;
  /** The credential named by a sign-in's user, if any. */
  credential(user: string): Promise<MysqlDirectCredential<T> | undefined>;
  /** The client signed in with `value`: admit and serve its session. */
  admit(value: T, answered: SignedInAtPort, channel: TlsSessionChannel): void;
  /** The client sent its sign-in (its deadline is the handshake's now), and proved its credential. */
  spoke(channel: TlsSessionChannel): void;
  signedIn(channel: TlsSessionChannel): void;
  log: Logger;
}

/** The largest sign-in packet a client may send: above the length a TLS ClientHello sent right behind an SSLRequest reads as (0x16 0x03 0x0N: under 256 KiB), so it stays unread for TLS. */
const HANDSHAKE_MAX = 1 << 20;
/** ER_ACCESS_DENIED_ERROR. */
const ACCESS_DENIED = { code: 1045, sqlState: '28000' };
/** ER_SECURE_TRANSPORT_REQUIRED. */
const TLS_REQUIRED = { code: 3159, sqlState: 'HY000' };
/** utf8mb4_general_ci: the greeting's character set. */
const UTF8MB4 = 45;
/** SERVER_STATUS_AUTOCOMMIT. */
const AUTOCOMMIT = 2;
/** What the port greets with before the gateway reached any MySQL server. */
const UNKNOWN_VERSION = '8.0.0-hoop';
/** A verifier nobody holds the password of, for user names that are no credential. */
const NOBODY = randomBytes(20);

let connectionIds = 0;

/** Greets `raw`, reads its TLS and sign-in, then hands it to the admission; a failure is said to the client and closes it. */
export async function serveDirectMysqlClient<T>(raw: Socket, o: MysqlDirectFrontOptions<T>): Promise<void> {
  // The deadline holds until the client is admitted: a refused client that keeps its side open is cut at it.
  const deadline = setTimeout(() => raw.destroy(), o.handshakeTimeoutMs);
  deadline.unref();
  raw.once('close', () => clearTimeout(deadline));
  let user = '';
  let channel: TlsSessionChannel | undefined;
  let reading: PacketSource | undefined;
  const refuse = (seq: number, code: { code: number; sqlState: string }, message: string): void => {
    const to = channel ?? raw;
    // What a refused client sends after is read and dropped, never kept.
    reading?.detach();
    to.on('data', () => undefined).resume();
    if (!to.destroyed && !to.writableEnded) to.end(packet(seq, errPacket({ ...code, message })));
  };
  try {
    const nonce = newNonce();
    const connectionId = (connectionIds = (connectionIds + 1) >>> 0);
    // In the name of the server reached last: as MariaDB (CLIENT_MYSQL left out, its extended capabilities offered) after a MariaDB server.
    const last = o.lastGreeting();
    const offeredMariadb = (last?.mariadbCapabilities ?? 0) & RELAYED_MARIADB_CAPABILITIES;
    const offered = offeredMariadb ? RELAYED_CAPABILITIES & ~Cap.LONG_PASSWORD : RELAYED_CAPABILITIES;
    raw.write(
      packet(
        0,
        greeting({
          protocolVersion: 10,
          serverVersion: last?.serverVersion ?? UNKNOWN_VERSION,
          connectionId,
          nonce,
          capabilities: (offered | Cap.SSL) >>> 0,
          mariadbCapabilities: offeredMariadb,
          charset: UTF8MB4,
          status: AUTOCOMMIT,
          authPlugin: NATIVE_PASSWORD,
        }),
      ),
    );
    const plain = (reading = new PacketSource(raw, HANDSHAKE_MAX));
    const first = await plain.next();
    if (!isSslRequest(first.payload)) {
      return refuse(first.next, TLS_REQUIRED, 'hoop: the gateway takes MySQL clients over TLS only (connect with --ssl-verify-server-cert; hoop connect --direct prints the whole command)');
    }
    plain.detach();
    channel = new TlsSessionChannel(raw, { isServer: true, secureContext: o.secureContext });
    channel.on('error', (err) => {
      o.log.debug('mysql-direct.tls-error', { error: describeError(err) });
      raw.destroy();
    });
    const secure = (reading = new PacketSource(channel, HANDSHAKE_MAX));
    const p = await secure.next();
    o.spoke(channel);
    const hello = parseHandshakeResponse(p.payload);
    user = hello.user;
    const credential = user === '' ? undefined : await o.credential(user);
    const proved = await proof(channel, secure, hello.authPlugin, hello.authResponse, nonce, p.next);
    const matches = nativeProofMatches(credential?.verifier ?? NOBODY, nonce, proved.response);
    if (!matches || !credential?.verifier) {
      o.log.warn('direct.auth-failed', { user, remote: o.remote, protocol: 'mysql' });
      return refuse(proved.seq, ACCESS_DENIED, `Access denied for user '${user}' (hoop: a direct credential and its password)`);
    }
    if (credential.refused) return refuse(proved.seq, ACCESS_DENIED, `hoop: ${credential.refused.message} (${credential.refused.hint})`);
    // What the client sends before its sign-in is answered waits, read by the session once it relays.
    secure.detach();
    channel.pause();
    clearTimeout(deadline);
    o.signedIn(channel);
    o.admit(credential.value, { hello, connectionId, seq: proved.seq, offered, offeredMariadb }, channel);
  } catch (err) {
    o.log.debug('direct.refused', { user, remote: o.remote, protocol: 'mysql', error: describeError(err) });
    (channel ?? raw).destroy();
  }
}

/**
 * The client's `mysql_native_password` proof: its sign-in's own when it used that plugin, else
 * its answer to a switch to it; with the sequence id of the answer due.
 */
async function proof(channel: TlsSessionChannel, reader: PacketSource, plugin: string | undefined, response: Buffer, nonce: Buffer, seq: number): Promise<{ response: Buffer; seq: number }> {
  if (plugin === undefined || plugin === NATIVE_PASSWORD) return { response, seq };
  channel.write(packet(seq, Buffer.concat([Buffer.from([0xfe]), nulString(NATIVE_PASSWORD), nonce, Buffer.from([0])])));
  const switched = await reader.next();
  return { response: switched.payload, seq: switched.next };
}
