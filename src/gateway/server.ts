/**
 * The gateway: the composition root. It builds the parts (./parts/parts.ts: stores, policy repo,
 * replica, recordings, audit, reviews, runs), the protocol engines (./parts/engines.ts), the session
 * admission (./sessions/admission.ts) and the observers that log, audit, record and index each session
 * (./sessions/session-events.ts), then serves the HTTP API (./router.ts), the tunnel endpoint
 * (./tunnel-endpoint.ts) and direct PostgreSQL clients (./direct-endpoint.ts) on one
 * port (./front/front-door.ts tells them apart). Stopping undoes it in the reverse order.
 *
 * Plain HTTP is served only on a loopback address and only when the operator asked for it.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110 (HTTP semantics)
 */
import * as http from 'node:http';
import type { AddressInfo, Server, Socket } from 'node:net';
import * as tls from 'node:tls';
import type { ConnectionConfig } from '../config/connection.js';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import type { Identity } from '../identity.js';
import { isLoopbackHost } from '../loopback.js';
import type { Logger } from '../log.js';
import type { PostgresEngineOptions } from '../postgres/gateway/engine.js';
import { SessionEnd } from '../session/engine.js';
import type { SshEngineOptions } from '../ssh/gateway/engine.js';
import type { MysqlEngine, MysqlEngineOptions } from '../mysql/gateway/engine.js';
import type { HttpEngine } from '../http/gateway/engine.js';
import { type SessionPolicy, SessionAdmission } from './sessions/admission.js';
import type { Clock } from '../clock.js';
import { AuthRefusals } from './identity/auth-refusals.js';
import { callers as callersOf } from './sessions/callers.js';
import type { GatewayConfig } from './config/config.js';
import { Balancers } from './front/balancers.js';
import { ConnectionGuard } from './front/connection-guard.js';
import { openFrontDoor } from './front/front-door.js';
import { openMysqlDoor } from './front/mysql-door.js';
import { survive } from './front/survive.js';
import { directEndpoint } from './direct-endpoint.js';
import type { PostgresEngine } from '../postgres/gateway/engine.js';
import { startEngines, type EngineRegistry } from './parts/engines.js';
import { apiHandler } from './router.js';
import { tunnelEndpoint } from './tunnel-endpoint.js';
import { MIGRATIONS } from './migrations.js';
import { buildParts, Disposer, type GatewayParts } from './parts/parts.js';
import type { GatewayPolicySource } from './config/policy-source.js';
import { SessionEvents } from './sessions/live-session.js';
import { auditObserver, firstUseObserver, indexObserver, logObserver, recordingObserver } from './sessions/session-events.js';
import type { GatewayStore } from './store/store.js';
import type { TokenVerifier } from './identity/verify-token.js';

export type { SessionPolicy };

/** Options of {@link startGateway}. */
export interface GatewayOptions {
  config: GatewayConfig;
  log: Logger;
  /** Serve plain HTTP (loopback only). */
  insecureDevHttp?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Overrides for tests: timeouts of the PostgreSQL engine. */
  postgres?: Partial<PostgresEngineOptions>;
  /** Overrides for tests: timeouts of the SSH engine. */
  ssh?: Pick<SshEngineOptions, 'handshakeTimeoutMs' | 'upstreamTimeoutMs'>;
  /** Overrides for tests: timeouts of the MySQL engine. */
  mysql?: Pick<MysqlEngineOptions, 'handshakeTimeoutMs' | 'upstreamTimeoutMs'>;
  verifier?: TokenVerifier;
  /** The state store; default: as `config.store` says, a {@link FileGatewayStore} in `config.dataDir` or a {@link PostgresGatewayStore} (closed with the gateway). */
  store?: GatewayStore;
  /**
   * Statement enforcement for a new session: the judge of its statements and whether its access
   * is read-only. Without it (or when it returns undefined) statements are relayed uninspected.
   * A stand-in until the gateway loads its policy repository.
   */
  sessionPolicy?: (identity: Identity, connection: ConnectionConfig) => SessionPolicy | undefined;
  /** Tests only: the clock of direct credentials and sessions' timers (maximum length, a grant's end, a credential's expiry, a warm server connection's idle time), held so a test moves its time and fires them when it chooses. */
  clock?: Clock;
  /** Tests only: how often the bytes sent to each client are told (`session.bytes`; default 10 s). */
  bytesTickMs?: number;
  /** How long a connection may take to finish its TLS handshake and send its first request, and each later request its headers (default 10 s): an idle socket holds no descriptor longer. */
  firstRequestTimeoutMs?: number;
  /** Connections one source address may hold that no accepted token came on (default: the configuration's `connectionsPerAddress`). */
  strangerConnectionsPerAddress?: number;
  /** Free bytes of the data directory that CLIs' records never take: an upload that would leave less is refused 507 (default 1 GiB). */
  clientRecordDiskReserveBytes?: number;
}

/** A running gateway. */
export interface Gateway {
  /** e.g. `https://127.0.0.1:8443` */
  url: string;
  port: number;
  /** Sessions currently relayed. */
  readonly activeSessions: number;
  /** The config repo the policy comes from, when `config.policy` is set. */
  readonly policy: GatewayPolicySource | undefined;
  /** Stops accepting, ends every session with a shutdown error, and resolves when all are gone. */
  close(): Promise<void>;
}

/**
 * TLS 1.3 suites first, AES-128-GCM before AES-256-GCM (as fast as hardware AES gets, and
 * what most TLS stacks prefer), then Node's default TLS 1.2 list.
 * @see https://www.rfc-editor.org/rfc/rfc8446#section-9.1
 */
const TLS_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', tls.DEFAULT_CIPHERS].join(':');

/** Starts the gateway and resolves once it listens. */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { config, log } = options;
  const useTls = checkTransport(config, options.insecureDevHttp === true);
  const disposer = new Disposer(log);
  try {
    const overrides = {
      verifier: options.verifier,
      store: options.store,
      clientRecordDiskReserveBytes: options.clientRecordDiskReserveBytes,
      clock: options.clock,
      scheme: useTls ? ('https' as const) : ('http' as const),
      migrations: MIGRATIONS,
    };
    const parts = await buildParts(config, log, options.env ?? process.env, overrides, disposer);
    const refusals = new AuthRefusals(parts.events, log);
    disposer.defer(() => refusals.close());
    const callers = callersOf(parts, refusals);
    const { engines, sshHostKey } = await startEngines(parts, { postgres: { ...options.postgres, ...(options.clock ? { clock: options.clock } : {}) }, ssh: options.ssh, mysql: options.mysql });
    const admission = new SessionAdmission(parts, callers, engines, sessionEvents(parts, callers.running), options);
    // Taken for dead by another replica while it lived: the store says its sessions ended, so they end.
    parts.replica?.onFenced(() =>
      admission.endAll(
        new SessionEnd(
          'gateway-shutdown',
          'hoop: this gateway replica stopped answering its store for too long and another replica ended its sessions',
          'connect again: a live replica takes the session',
        ),
      ),
    );
    // Before an identity stands behind it: a connection that sends no request in time is closed (and the TLS handshake has as long), and each source holds only so many.
    const guard = new ConnectionGuard({ ms: options.firstRequestTimeoutMs ?? 10_000, perAddress: options.strangerConnectionsPerAddress ?? config.connectionsPerAddress });
    const api = createHttpServer(options, apiHandler(parts, callers, sshHostKey, guard, admission));
    guard.watch(api);
    const tunnels = tunnelEndpoint(parts, callers, admission, guard);
    api.on(
      'upgrade',
      survive(options.log, 'upgrade', tunnels.onUpgrade, (_req, socket) => socket.destroy()),
    );
    const doors = useTls ? frontDoor(parts, options, admission, engines, guard, api) : { main: plainHttp(api, guard), mysql: undefined };
    if (useTls) trackConnections(api, disposer);
    const listener = doors.main;
    await listen(listener, config.listen);
    if (doors.mysql && config.mysqlListen) {
      const mysqlDoor = doors.mysql;
      disposer.defer(() => new Promise<void>((resolve) => mysqlDoor.close(() => resolve())));
      await listen(mysqlDoor, config.mysqlListen);
      // Port 0 picked a free port: direct credentials name the one it is.
      config.mysqlListen.port = (mysqlDoor.address() as AddressInfo).port;
      log.info('gateway.mysql-listening', { port: config.mysqlListen.port });
    }
    disposer.defer(async () => {
      admission.closing = true;
      admission.endAll(new SessionEnd('gateway-shutdown', 'hoop: the gateway is shutting down', 'connect again in a moment'));
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      await admission.drained();
      tunnels.closeMuxes();
      // A kept-alive connection waits for no one: only a request still being answered has the grace.
      api.closeIdleConnections();
      const grace = setTimeout(() => api.closeAllConnections(), 5_000);
      await closed;
      clearTimeout(grace);
    });
    return await announce(parts, listener, useTls, admission, disposer);
  } catch (err) {
    await disposer.dispose();
    throw err;
  }
}

/** TLS unless the operator asked for plain HTTP on a loopback address; whether it is TLS. */
function checkTransport(config: GatewayConfig, insecureDevHttp: boolean): boolean {
  if (!insecureDevHttp && !config.tls) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `${config.file}: no tls certificate and key are configured`, {
      hint: 'add `tls: { cert: ..., key: ... }`, or for local development on a loopback address start with --insecure-dev-http',
    });
  }
  if (insecureDevHttp && config.mysqlListen) {
    throw new HoopError(ErrorCode.USAGE, '--insecure-dev-http refused: mysqlListen takes MySQL clients over TLS only', { hint: 'configure tls, or leave mysqlListen out for local development' });
  }
  if (insecureDevHttp && config.proxyProtocol) {
    throw new HoopError(ErrorCode.USAGE, '--insecure-dev-http refused: proxyProtocol is read at the TLS port only', { hint: 'configure tls, or leave proxyProtocol out for local development' });
  }
  if (insecureDevHttp && !isLoopbackHost(config.listen.host)) {
    throw new HoopError(ErrorCode.USAGE, `--insecure-dev-http refused: ${config.listen.host} is not a loopback address`, {
      hint: 'plain HTTP would expose tokens on the network; configure tls, or listen on 127.0.0.1',
    });
  }
  return !insecureDevHttp;
}

/** The one source of session events, and who hears them: the log, the audit stream, the recording, the index. */
function sessionEvents({ log, events: gatewayEvents, recordings }: GatewayParts, running: Parameters<typeof indexObserver>[1]): SessionEvents {
  const events = new SessionEvents();
  events.observe(logObserver(log));
  events.observe(auditObserver(gatewayEvents));
  if (recordings) {
    events.observe(recordingObserver(log));
    events.observe(indexObserver(recordings, running, log));
    events.observe(firstUseObserver(recordings, gatewayEvents, log));
  }
  return events;
}

/** The HTTP server of the API and the tunnels, its timeouts set; a request it cannot parse gets a 400, a broken connection is closed. */
function createHttpServer(options: GatewayOptions, onRequest: http.RequestListener): http.Server {
  const answered = survive(options.log, 'request', onRequest, (_req, res) => (res.headersSent ? res.destroy() : res.writeHead(500, { Connection: 'close' }).end()));
  // A later request's headers on a connection have as long as its first request had; a body (a record's file is at most
  // 4 MiB) two minutes, 280 kbit/s.
  const server = http.createServer(
    { headersTimeout: options.firstRequestTimeoutMs ?? 10_000, requestTimeout: 120_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000, noDelay: true },
    answered,
  );
  // Anything but an HTTP parse error has no HTTP to answer in.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    options.log.debug('http.client-error', { error: describeError(err) });
    if (socket.writable && err.code?.startsWith('HPE_')) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  return server;
}

/**
 * The gateway's port with TLS: HTTPS (the API and the tunnels) and direct PostgreSQL clients, told
 * apart by their first bytes (./front/front-door.ts); and its MySQL port, when configured.
 */
function frontDoor(
  parts: GatewayParts,
  options: GatewayOptions,
  admission: SessionAdmission,
  engines: EngineRegistry,
  guard: ConnectionGuard,
  api: http.Server,
): { main: Server; mysql: Server | undefined } {
  const { config, log } = parts;
  const secureContext = tls.createSecureContext({ cert: config.tls!.cert, key: config.tls!.key, minVersion: 'TLSv1.2', ciphers: TLS_CIPHERS, honorCipherOrder: true });
  const handshakeTimeoutMs = { postgres: options.postgres?.handshakeTimeoutMs ?? 15_000, mysql: options.mysql?.handshakeTimeoutMs ?? 15_000 };
  const direct = directEndpoint(
    parts,
    admission,
    { postgres: engines.postgres as PostgresEngine, mysql: engines.mysql as MysqlEngine | undefined, http: engines.http as HttpEngine },
    { guard, handshakeTimeoutMs, secureContext },
  );
  const balancers = config.proxyProtocol ? new Balancers(config.proxyProtocol.from) : undefined;
  const main = openFrontDoor({ secureContext, http: api, postgres: direct.postgres, httpDirect: direct.http, cancel: direct.cancel, guard, ...(balancers ? { balancers } : {}), log });
  const mysql = config.mysqlListen ? openMysqlDoor({ guard, serve: direct.mysql, ...(balancers ? { balancers } : {}), log }) : undefined;
  return { main, mysql };
}

/**
 * Node's HTTP server runs its header and request deadlines (`connectionsCheckingInterval`) and knows its idle
 * connections only once it has listened; behind the front door it never listens, so it is told it does (and, at the
 * end, that it closed).
 */
function trackConnections(api: http.Server, disposer: Disposer): void {
  api.emit('listening');
  disposer.defer(() => new Promise<void>((resolve) => api.close(() => resolve())));
}

/** Plain HTTP on a loopback address (development): the HTTP server listens itself, guarded alike. */
function plainHttp(api: http.Server, guard: ConnectionGuard): http.Server {
  api.on('connection', (socket: Socket) => guard.arrived(socket));
  return api;
}

function listen(server: Server, at: { host: string; port: number }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new HoopError(ErrorCode.LISTEN_FAILED, `cannot listen on ${at.host}:${at.port}: ${describeError(err)}`, { cause: err })));
    server.listen(at.port, at.host, () => resolve());
  });
}

/** Tells the other replicas and the log where the gateway listens; the running gateway. */
async function announce(parts: GatewayParts, server: Server, useTls: boolean, admission: SessionAdmission, disposer: Disposer): Promise<Gateway> {
  const { config, log, policySource } = parts;
  const port = (server.address() as AddressInfo).port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const url = `${useTls ? 'https' : 'http'}://${host}:${port}`;
  await parts.replica?.listening(url);
  log.info('gateway.listening', {
    url,
    pid: process.pid,
    tls: useTls,
    connections: (policySource ? policySource.current().policy.connections : config.connections).map((c) => c.name),
    ...(policySource ? { policyCommit: policySource.current().commit } : {}),
  });
  return {
    url,
    port,
    get activeSessions() {
      return admission.active;
    },
    policy: policySource,
    async close() {
      await disposer.dispose();
      log.info('gateway.stopped', {});
    },
  };
}
