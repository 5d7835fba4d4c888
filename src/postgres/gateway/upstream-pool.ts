/**
 * Signed-in upstream connections kept warm between sessions, where a connection's `pool` setting
 * allows it (PgBouncer's session pooling, with `server_reset_query = DISCARD ALL`): a session that
 * ends cleanly (its client sent Terminate, the server answered everything and is outside a
 * transaction) leaves its server connection here instead of closing it; the connection is reset
 * with `DISCARD ALL` (prepared statements, portals, temporary tables, settings, LISTEN, advisory
 * locks, sequences' state: gone) and given to the next session with the same key, which then skips
 * the server's fork and sign-in.
 *
 * The key is everything that makes two server sessions alike: the server, the credentials, the
 * startup parameters as sent (settings, read-only access, limits), and who the session is for (a
 * person, or a run): a warm connection never passes from one person to another. The server's
 * reported parameters (ParameterStatus) are kept as they stand after the reset, for the next
 * client's greeting. At most `idle` connections per key, each for `idleMs`; one the server closes
 * meanwhile is dropped.
 *
 * @see https://www.postgresql.org/docs/current/sql-discard.html
 * @see https://www.pgbouncer.org/config.html#server_reset_query
 */
import { createHash } from 'node:crypto';
import { type Clock, realClock } from '../../clock.js';
import { Backend, TransactionStatus } from '../wire/codes.js';
import { roundTrip } from '../wire/client.js';
import { query, terminate } from '../wire/messages.js';
import { parseParameterStatus, type PgMessage } from '../wire/reader.js';
import type { UpstreamPostgres } from './upstream.js';

/** How long a reset may take before the connection is given up. */
const RESET_TIMEOUT_MS = 5_000;

/** What a connection's `pool` setting says. */
export interface PoolSettings {
  /** Idle connections kept per key. */
  idle: number;
  /** How long one is kept unused. */
  idleMs: number;
}

/** A server connection as the pool keeps it, with what drops it (its idle time, the server closing it). */
interface Parked {
  upstream: UpstreamPostgres;
  /** Stops its idle timer. */
  stop: () => void;
  onGone: () => void;
}

/** The pool key of a session: see the module documentation. */
export function poolKey(parts: { target: unknown; user: string; database: string; password: string; params: ReadonlyArray<[string, string]>; owner: string }): string {
  const password = createHash('sha256').update(parts.password).digest('hex');
  return JSON.stringify([parts.target, parts.user, parts.database, password, parts.params, parts.owner]);
}

/** See the module documentation. */
export class UpstreamPool {
  readonly #idle = new Map<string, Parked[]>();
  #closed = false;

  /** `clock`: the gateway's, whose timers end a connection unused for its `idleMs`. */
  constructor(private readonly clock: Clock = realClock) {}

  /** A warm connection for `key`, if one is kept (it is the caller's now). */
  take(key: string): UpstreamPostgres | undefined {
    const list = this.#idle.get(key);
    while (list && list.length > 0) {
      const parked = list.pop()!;
      this.#unpark(parked);
      if (list.length === 0) this.#idle.delete(key);
      const { socket } = parked.upstream;
      if (!socket.destroyed && !socket.writableEnded) return parked.upstream;
    }
    return undefined;
  }

  /**
   * Resets `upstream` (a session's, which ended cleanly with the server idle; `serverParams`: its
   * reported parameters as they stand) and keeps it for `key`; ends it instead when the reset
   * fails, the pool for `key` is full, or the pool is closed. Never rejects.
   */
  async give(key: string, upstream: UpstreamPostgres, settings: PoolSettings): Promise<void> {
    const end = (): void => {
      if (!upstream.socket.destroyed && !upstream.socket.writableEnded) upstream.socket.end(terminate());
    };
    if (this.#closed || (this.#idle.get(key)?.length ?? 0) >= settings.idle) return end();
    const params = new Map(upstream.serverParams);
    let status: number | undefined;
    const tap = {
      received: (m: PgMessage): undefined => {
        if (m.type === Backend.PARAMETER_STATUS) {
          const [name, value] = parseParameterStatus(m.body);
          params.set(name, value);
        } else if (m.type === Backend.READY_FOR_QUERY) status = m.body[0];
        return undefined;
      },
    };
    try {
      const answer = await roundTrip(upstream, query('DISCARD ALL'), RESET_TIMEOUT_MS, tap);
      if (answer.error || status !== TransactionStatus.IDLE || upstream.leftover.length > 0) return end();
    } catch {
      return end();
    }
    if (this.#closed || (this.#idle.get(key)?.length ?? 0) >= settings.idle) return end();
    upstream.serverParams = [...params];
    upstream.socket.pause();
    const parked: Parked = {
      upstream,
      stop: this.clock.timer(settings.idleMs, () => this.#drop(key, parked)),
      onGone: () => this.#drop(key, parked),
    };
    upstream.socket.once('close', parked.onGone);
    upstream.socket.unref?.();
    const list = this.#idle.get(key) ?? [];
    list.push(parked);
    this.#idle.set(key, list);
  }

  /** Ends every warm connection; later ones given are ended. */
  close(): void {
    this.#closed = true;
    for (const [key, list] of this.#idle) for (const parked of [...list]) this.#drop(key, parked);
  }

  /** How many connections are warm (for every key). */
  get size(): number {
    let n = 0;
    for (const list of this.#idle.values()) n += list.length;
    return n;
  }

  #unpark(parked: Parked): void {
    parked.stop();
    parked.upstream.socket.off('close', parked.onGone);
    parked.upstream.socket.ref?.();
  }

  #drop(key: string, parked: Parked): void {
    const list = this.#idle.get(key);
    const at = list?.indexOf(parked) ?? -1;
    if (at < 0) return;
    list!.splice(at, 1);
    if (list!.length === 0) this.#idle.delete(key);
    this.#unpark(parked);
    const { socket } = parked.upstream;
    if (!socket.destroyed && !socket.writableEnded) socket.end(terminate());
  }
}
