/**
 * Cancel keys minted by the gateway. Each client session gets its own random BackendKeyData;
 * a CancelRequest is honoured only when its (process id, secret key) pair matches a live session
 * of the same identity, and is then sent to that session's upstream backend. No client can cancel
 * another's query: the upstream's real key never leaves the gateway.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 */
import { randomBytes } from 'node:crypto';

/** A client-visible cancel key (both fields unsigned 32-bit, as the codec reads them). */
export interface CancelKey {
  processId: number;
  secretKey: number;
}

/** What the gateway needs to cancel the upstream query of one session. */
export interface CancelTarget {
  subject: string;
  issuer: string;
  cancel(): Promise<void>;
}

/** Live sessions' minted cancel keys. */
export class CancelRegistry {
  readonly #targets = new Map<string, CancelTarget>();

  /** Mints a fresh key for `target`; call the returned function when the session ends. */
  register(target: CancelTarget): { key: CancelKey; release: () => void } {
    for (;;) {
      const bytes = randomBytes(8);
      // Process ids are positive int32 values; some clients print them as such.
      const key = { processId: (bytes.readUInt32BE(0) & 0x7fffffff) || 1, secretKey: bytes.readUInt32BE(4) };
      const id = `${key.processId}:${key.secretKey}`;
      if (this.#targets.has(id)) continue;
      this.#targets.set(id, target);
      return { key, release: () => void this.#targets.delete(id) };
    }
  }

  /** The session `key` belongs to, if it is live and owned by the same identity. */
  lookup(key: CancelKey, owner: { subject: string; issuer: string }): CancelTarget | undefined {
    const target = this.#targets.get(`${key.processId}:${key.secretKey}`);
    if (!target || target.subject !== owner.subject || target.issuer !== owner.issuer) return undefined;
    return target;
  }

  get size(): number {
    return this.#targets.size;
  }
}
