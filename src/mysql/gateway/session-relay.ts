/**
 * One MySQL session at the gateway, in named steps: the server is reached and greets first
 * ({@link MysqlSessionRelay.start}); the client is greeted in its name (its version and
 * connection id, hoop's own nonce and the capabilities hoop relays) and answers
 * ({@link #accept}); the gateway signs in with the credential only it holds, asking for what the
 * client agreed to, so both hops read the command phase alike ({@link #signIn}); then packets are
 * relayed both ways through the lane's paths ({@link #relay}), the client's command by command,
 * each recorded as it crossed. The session ends once ({@link #end}).
 *
 * The command phase is the lane's pipeline (../pipeline/relay.ts): each command recorded, judged,
 * refused, held for review or run under its row limit; each answer counted, masked and recorded.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 */
import { realClock } from '../../clock.js';
import type { Duplex } from 'node:stream';
import type { MysqlConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { describeError } from '../../errors.js';
import { sessionEndOf, type CloseReason, type SessionOutcome, type TunnelSession } from '../../session/engine.js';
import { RelayEnd } from '../../session/relay-end.js';
import { sessionOwnerOf, type SessionOwner } from '../../session/owner.js';
import { MysqlPacketRecorder } from '../pipeline/record-tap.js';
import { NATIVE_PASSWORD, newNonce } from '../wire/auth.js';
import { GREETED_ATTRIBUTE, greeting, isSslRequest, parseHandshakeResponse, type Greeting, type HandshakeResponse } from '../wire/handshake.js';
import { agreed, RELAYED_CAPABILITIES, RELAYED_MARIADB_CAPABILITIES, type SignedInAtPort } from './capabilities.js';
import type { MysqlClientIds } from './client-ids.js';
import { packet, PacketReader, type MySqlPacket } from '../wire/packets.js';
import { Command, errPacket, okPacket, type ErrPacket } from '../wire/results.js';
import type { MySqlGreeted } from '../wire/client.js';
import { CommandJudge } from '../pipeline/command-judge.js';
import type { MysqlRelationsByConnection } from './relations.js';
import { MysqlRelay, REFUSED } from '../pipeline/relay.js';
import { greetedUpstream, signInUpstream, UpstreamMysqlError } from './upstream.js';

/** Options of the MySQL engine (./engine.ts). */
export interface MysqlEngineOptions {
  resolveSecret: (ref: SecretRef) => Promise<string>;
  /** Deadline for the client to answer the greeting (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Deadline for reaching the server and signing in (default 15 s). */
  upstreamTimeoutMs?: number;
  /** Told each server's greeting as it arrives (the gateway's MySQL port greets in the name of the last). */
  greeted?: (g: Greeting) => void;
  /** The ids clients were greeted with, by session: what a KILL names (./client-ids.ts). */
  clientIds?: MysqlClientIds;
  /** Each connection's relations, for rules on tables (./relations.ts). */
  relations?: MysqlRelationsByConnection;
}

/** ER_CONNECTION_KILLED: the gateway ends the session. */
const KILLED: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1927, sqlState: '70100' };
/** ER_UNKNOWN_ERROR: the server could not be reached. */
const UNAVAILABLE: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1105, sqlState: 'HY000' };

/** See the module documentation. */
export class MysqlSessionRelay {
  readonly #session: TunnelSession<MysqlConnection>;
  readonly #o: MysqlEngineOptions;
  readonly #who: { session: string; connection: string };
  readonly #clientPackets = new PacketReader();
  #upstream: Duplex | undefined;
  /** How the session ends (src/session/relay-end.ts). */
  readonly #relayEnd: RelayEnd;
  readonly #judge: CommandJudge;
  /** The command phase's paths (set once signed in). */
  #paths: MysqlRelay | undefined;
  /** Who may KILL this session's query from another (../../session/owner.ts), and its end of being found so. */
  readonly #owner: SessionOwner;
  #unregister: (() => void) | undefined;

  /** A client that signed in at the gateway's MySQL port: its answer to that greeting. */
  readonly #signedInAtPort: SignedInAtPort | undefined;

  constructor(session: TunnelSession<MysqlConnection>, o: MysqlEngineOptions, signedInAtPort?: SignedInAtPort) {
    this.#session = session;
    this.#signedInAtPort = signedInAtPort;
    this.#o = o;
    this.#who = { session: session.id, connection: session.connection.name };
    this.#owner = sessionOwnerOf(session.identity, session.connection.name);
    this.#judge = new CommandJudge(session);
    this.#relayEnd = new RelayEnd(session, () => this.#aborted());
  }

  /** Serves the session until it ends; never rejects. */
  start(): Promise<SessionOutcome> {
    const { channel } = this.#session;
    channel.on('error', (err: Error) => this.#end('client-disconnected', describeError(err)));
    channel.on('close', () => this.#end('client-disconnected'));
    channel.on('end', () => this.#end('client-disconnected'));
    // While a command is held for review the client's side is not read: its leaving is the tunnel's word, and withdraws the review.
    channel.once('peer-gone', () => {
      if (this.#paths?.holding) this.#end('client-disconnected');
    });
    this.#open().catch((err: unknown) => {
      this.#session.log.warn('mysql.session-failed', { ...this.#who, error: describeError(err) });
      this.#end('protocol-violation', describeError(err));
    });
    return this.#relayEnd.outcome;
  }

  /** Reaches the server, greets the client (unless it signed in at the gateway's MySQL port), signs in, then relays. */
  async #open(): Promise<void> {
    const { connection } = this.#session;
    let greeted: MySqlGreeted;
    try {
      greeted = await greetedUpstream(connection, this.#o.upstreamTimeoutMs ?? 15_000);
    } catch (err) {
      return this.#refuseStart(this.#signedInAtPort?.seq ?? 0, err as Error);
    }
    const g = greeted.greeting;
    this.#o.greeted?.(g);
    const answered = this.#signedInAtPort ?? (await this.#greet(g));
    if (!answered) return;
    const { hello, seq, offered, offeredMariadb } = answered;
    if (hello.database && hello.database !== connection.database) {
      return this.#refuse(seq, `hoop: ${connection.name} serves the database ${connection.database}, not ${hello.database}`, 'startup-refused', { code: 1044, sqlState: '42000' });
    }
    const agreement = agreed(hello, offered, offeredMariadb, g);
    if (!agreement) {
      const why = `hoop: ${connection.name}'s server does not offer every capability the gateway's MySQL port greeted the client with; connect through hoop connect ${connection.name}`;
      return this.#refuse(seq, why, 'startup-refused', UNAVAILABLE);
    }
    const [capabilities, askedMariadb] = agreement;
    const signedIn = await this.#signIn(greeted, hello, capabilities, askedMariadb).catch((err: Error) => err);
    if (signedIn instanceof Error) return this.#refuseStart(seq, signedIn);
    this.#upstream = signedIn;
    // A KILL may name the id the client was greeted with, or the server's own (`SELECT CONNECTION_ID()`).
    const ids = this.#o.clientIds;
    const gone = ids ? [...new Set([answered.connectionId, g.connectionId])].map((id) => ids.register(id, this.#owner, g.connectionId)) : [];
    this.#unregister = () => gone.forEach((f) => f());
    this.#write(packet(seq, okPacket({ status: g.status })));
    this.#relay(capabilities, askedMariadb);
  }

  /** Greets the client in the server's name and reads its answer; undefined when the session ended or was refused. */
  async #greet(g: Greeting): Promise<SignedInAtPort | undefined> {
    const offered = (g.capabilities & RELAYED_CAPABILITIES) >>> 0;
    const offeredMariadb = g.mariadbCapabilities & RELAYED_MARIADB_CAPABILITIES;
    this.#write(packet(0, greeting({ ...g, nonce: newNonce(), capabilities: offered, mariadbCapabilities: offeredMariadb, authPlugin: NATIVE_PASSWORD, serverVersion: g.serverVersion })));
    const answer = await this.#accept();
    if (!answer) return undefined;
    const seq = answer.next;
    if (isSslRequest(answer.payload)) {
      this.#refuse(seq, 'hoop: the tunnel to the gateway is TLS already; the local port asks for TLS, not the gateway', 'protocol-violation');
      return undefined;
    }
    const hello = parseHandshakeResponse(answer.payload);
    // `hoop connect`'s local port greeted its client before this session was opened, with an id of its own: the one a KILL from that client names.
    const local = Number(hello.attributes.find(([k]) => k === GREETED_ATTRIBUTE)?.[1] ?? Number.NaN);
    return { hello, connectionId: Number.isInteger(local) && local >= 0 && local <= 0xffffffff ? local : g.connectionId, seq, offered, offeredMariadb };
  }

  /** The client's answer to the greeting, under the handshake deadline; undefined when the session ended first. */
  #accept(): Promise<MySqlPacket | undefined> {
    const { channel } = this.#session;
    return new Promise((resolve) => {
      const done = (p: MySqlPacket | undefined, why?: [CloseReason, string]): void => {
        clearTimeout(timer);
        channel.off('data', onData).off('close', onClose);
        if (why) this.#end(...why);
        resolve(p);
      };
      const timer = setTimeout(() => done(undefined, ['handshake-timeout', 'the client did not answer the greeting in time']), this.#o.handshakeTimeoutMs ?? 30_000);
      timer.unref();
      const onData = (chunk: Buffer): void => {
        this.#relayEnd.bytes.fromClient += chunk.length;
        try {
          const got = this.#clientPackets.push(chunk)[0];
          if (got) done(got);
        } catch (err) {
          done(undefined, ['protocol-violation', describeError(err)]);
        }
      };
      const onClose = (): void => done(undefined);
      channel.on('data', onData).once('close', onClose);
    });
  }

  /** Signs in upstream asking for exactly what the client agreed to (and what signing in needs). */
  async #signIn(greeted: MySqlGreeted, hello: HandshakeResponse, agreed: number, mariadbCapabilities: number): Promise<Duplex> {
    const { connection, id } = this.#session;
    const password = await this.#o.resolveSecret(connection.password);
    const passed = Object.fromEntries(hello.attributes.filter(([k]) => k === 'program_name' || k === '_client_name' || k === '_client_version'));
    const client = await signInUpstream(greeted, connection, {
      password,
      capabilities: agreed,
      mariadbCapabilities,
      charset: hello.charset,
      attributes: { ...passed, hoop_session: id },
    });
    if (this.#judge.governs) await this.#judge.govern(client, agreed, (reading) => this.#o.relations!.for(connection, password, reading));
    this.#session.recording?.stream.event({ t: 'sign-in', at: realClock.now(), role: connection.user, database: connection.database });
    this.#session.report?.signedIn({ role: connection.user, database: connection.database });
    return client.release();
  }

  /** Builds the command phase's paths (../pipeline/relay.ts), recorded when the session is, and relays through them. */
  #relay(capabilities: number, mariadbCapabilities: number): void {
    const recording = this.#session.recording;
    // SQL is written down with its secrets as keyed hashes (src/policy/sql/redact.ts), never as typed.
    const redact = { ...(recording?.redactionKey ? { key: recording.redactionKey } : {}), detectors: this.#session.masking?.policy.detectors.map((d) => d.detector) ?? [] };
    const recorder = recording && new MysqlPacketRecorder(recording.stream, recording.results === 'none' ? 0 : recording.rowCap, capabilities, mariadbCapabilities, redact);
    const owner = {
      write: (bytes: Buffer) => this.#write(bytes),
      fromClient: (n: number) => void (this.#relayEnd.bytes.fromClient += n),
      end: (why: CloseReason, what?: string) => this.#end(why, what),
      finished: () => this.#relayEnd.finished,
      killTarget: (id: number) => this.#o.clientIds?.resolve(id, this.#owner) ?? { refused: `KILL ${id}: this gateway keeps no sessions' ids` },
    };
    this.#paths = new MysqlRelay(this.#session, this.#upstream!, { judge: this.#judge, recorder, owner, capabilities, clientPackets: this.#clientPackets });
    this.#paths.start();
  }

  /** The server could not be reached or refused the gateway: the client hears why in an ERR packet, then the session ends. */
  #refuseStart(seq: number, err: Error): void {
    const reason = err instanceof UpstreamMysqlError ? err.reason : 'upstream-unavailable';
    this.#session.log.warn('mysql.upstream-failed', { ...this.#who, reason, message: err.message });
    this.#refuse(seq, `hoop: the gateway could not open ${this.#session.connection.name}: ${err.message}`, reason, UNAVAILABLE);
  }

  #refuse(seq: number, message: string, why: CloseReason, code = REFUSED): void {
    this.#write(packet(seq, errPacket({ ...code, message })));
    this.#end(why, message);
  }

  /** The gateway ends the session (its token, its run, a shutdown): the client hears why, then it ends. */
  #aborted(): void {
    const e = sessionEndOf(this.#session.signal);
    this.#write(packet(0, errPacket({ ...KILLED, message: `${e.message}${e.hint ? ` (${e.hint})` : ''}` })));
    this.#session.channel.sendControl({ type: 'close', reason: e.reason, message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
    this.#end(e.reason, e.message);
  }

  /** Writes `bytes` to the client, counted. */
  #write(bytes: Buffer): void {
    const { channel } = this.#session;
    if (channel.destroyed || channel.writableEnded) return;
    this.#relayEnd.bytes.toClient += bytes.length;
    channel.write(bytes);
  }

  /** Ends both connections, keeping the first reason given, and tells the engine once. */
  #end(why: CloseReason, what?: string): void {
    this.#relayEnd.begin(why, what);
    this.#judge.close();
    this.#unregister?.();
    this.#paths?.withdraw();
    if (this.#upstream) this.#relayEnd.linger(this.#upstream, packet(0, Buffer.from([Command.QUIT])));
    this.#relayEnd.linger(this.#session.channel);
    this.#relayEnd.finish();
  }
}
