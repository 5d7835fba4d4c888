/**
 * Cancel keys minted by the gateway. Each client session is told the real process id of its
 * upstream backend (so `pg_backend_pid()`, `pg_stat_activity` and NotificationResponse agree
 * with BackendKeyData) and a secret key the gateway mints; a CancelRequest is honoured only when
 * its (process id, secret key) pair matches a live session of the same owner (identity, run
 * credential, connection), and is then sent to that session's upstream backend with the server's
 * own key. No client can cancel another's query, and an agent's run credential cannot cancel its
 * person's (nor the person a run's): the upstream's secret key never leaves the gateway. A direct
 * client's session (no hoop in its path) is cancelled as PostgreSQL cancels: by its key alone,
 * since its client sends CancelRequests on a connection of their own, often in the clear.
 *
 * Behind a load balancer a CancelRequest may reach another replica than the one holding its
 * session: a key not held here is then handed to {@link CancelRegistry.elsewhere} (the store tells
 * every replica; the one holding it checks and cancels as above).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 */
import { randomBytes } from 'node:crypto';
import { sameOwner, type SessionOwner } from '../../session/owner.js';

/** A client-visible cancel key (both fields unsigned 32-bit, as the codec reads them). */
export interface CancelKey {
  processId: number;
  secretKey: number;
}

/** What the gateway needs to cancel the upstream query of one session. */
export interface CancelTarget extends SessionOwner {
  /** A direct client's session: its key alone cancels it. */
  direct?: boolean;
  cancel(): Promise<void>;
}

/** Who asks to cancel: an owner, or a CancelRequest that came with no credential (`direct`: only a direct session's key is honoured). */
export type CancelAsker = SessionOwner | { direct: true };

/** Live sessions' minted cancel keys. */
export class CancelRegistry {
  readonly #targets = new Map<string, CancelTarget>();

  /**
   * A key for `target`: the upstream backend's `processId` and a fresh secret; call the returned
   * function when the session ends.
   */
  register(target: CancelTarget, processId: number): { key: CancelKey; release: () => void } {
    for (;;) {
      const key = { processId, secretKey: randomBytes(4).readUInt32BE(0) };
      const id = `${key.processId}:${key.secretKey}`;
      if (this.#targets.has(id)) continue;
      this.#targets.set(id, target);
      return { key, release: () => void this.#targets.delete(id) };
    }
  }

  /** The session `key` belongs to, if it is live and `asker` may cancel it. */
  lookup(key: CancelKey, asker: CancelAsker): CancelTarget | undefined {
    const target = this.#targets.get(`${key.processId}:${key.secretKey}`);
    if (!target) return undefined;
    return ('direct' in asker ? target.direct === true : sameOwner(target, asker)) ? target : undefined;
  }

  /** Where a key not held here is sent (other replicas), if anywhere. */
  elsewhere: ((key: CancelKey, asker: CancelAsker) => Promise<void>) | undefined;

  /**
   * Cancels the query of the session `key` belongs to, when `asker` may: here, or by telling the
   * other replicas. Resolves what became of it.
   */
  async cancel(key: CancelKey, asker: CancelAsker): Promise<'forwarded' | 'sent to the other replicas' | 'no matching session'> {
    const target = this.lookup(key, asker);
    if (target) {
      await target.cancel();
      return 'forwarded';
    }
    if (!this.elsewhere) return 'no matching session';
    await this.elsewhere(key, asker);
    return 'sent to the other replicas';
  }

  get size(): number {
    return this.#targets.size;
  }
}
