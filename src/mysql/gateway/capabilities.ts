/**
 * What the gateway agrees with a MySQL client on both hops: the capabilities it greets a client
 * with and relays (what shapes the command phase alike on both), and a client's answer to a
 * greeting already made (at the gateway's own MySQL port, ./direct-front.ts).
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/group__group__cs__capabilities__flags.html
 */
import { Cap, type Greeting, MariaCap, type HandshakeResponse } from '../wire/handshake.js';

/** A client's answer to a greeting already made: its sign-in, the sequence id of the answer due, and the capabilities it was offered (MariaDB's too). */
export interface SignedInAtPort {
  hello: HandshakeResponse;
  /** The connection id the client was greeted with. */
  connectionId: number;
  seq: number;
  offered: number;
  offeredMariadb: number;
}

/**
 * The capabilities hoop relays: what shapes the command phase the same on both hops. Left out:
 * TLS (the tunnel's own), compression, LOAD DATA LOCAL INFILE (a server could ask for any file of
 * the client's), query attributes and optional metadata (other packet layouts), MariaDB's own.
 */
export const RELAYED_CAPABILITIES =
  Cap.LONG_PASSWORD |
  Cap.FOUND_ROWS |
  Cap.LONG_FLAG |
  Cap.CONNECT_WITH_DB |
  Cap.IGNORE_SPACE |
  Cap.PROTOCOL_41 |
  Cap.INTERACTIVE |
  Cap.TRANSACTIONS |
  Cap.SECURE_CONNECTION |
  Cap.MULTI_STATEMENTS |
  Cap.MULTI_RESULTS |
  Cap.PS_MULTI_RESULTS |
  Cap.PLUGIN_AUTH |
  Cap.CONNECT_ATTRS |
  Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  Cap.SESSION_TRACK |
  Cap.DEPRECATE_EOF;

/** The capabilities only signing in reads (MariaDB leaves LONG_PASSWORD out of its greeting, to say it is MariaDB): the command phase is the same without them. */
export const SIGN_IN_CAPABILITIES = Cap.LONG_PASSWORD | Cap.CONNECT_WITH_DB | Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH | Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA | Cap.CONNECT_ATTRS;

/** MariaDB's capabilities hoop relays: its extended metadata (a JSON column says it is JSON), which its column definitions carry and hoop reads. */
export const RELAYED_MARIADB_CAPABILITIES = MariaCap.EXTENDED_METADATA;

/**
 * The capabilities both hops agree for `hello`, offered `offered` (MariaDB's `offeredMariadb`) by
 * a greeting in the name of server `g`: the command phase's, and MariaDB's the client asked for;
 * undefined when the client agreed to one the server does not offer (a client greeted at the
 * gateway's MySQL port agreed before the server was known: what only signing in reads may go).
 */
export function agreed(hello: HandshakeResponse, offered: number, offeredMariadb: number, g: Pick<Greeting, 'capabilities' | 'mariadbCapabilities'>): [number, number] | undefined {
  // A client asks for MariaDB's capabilities by leaving out CLIENT_MYSQL (LONG_PASSWORD).
  const askedMariadb = hello.capabilities & Cap.LONG_PASSWORD ? 0 : hello.mariadbCapabilities & offeredMariadb;
  if ((hello.capabilities & offered & ~g.capabilities & ~SIGN_IN_CAPABILITIES) >>> 0 !== 0 || (askedMariadb & ~g.mariadbCapabilities) !== 0) return undefined;
  return [(hello.capabilities & offered & g.capabilities) >>> 0, askedMariadb];
}
