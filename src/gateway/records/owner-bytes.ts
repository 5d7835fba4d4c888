/**
 * What each owner's CLI records hold, for the budgets an upload is checked against
 * (./client-records.ts): the bytes no signature verified yet, and the bytes of the records saved
 * since a time. Kept as records are saved and removed, so that an upload reads its owner's tallies
 * instead of every record the gateway holds.
 */

/** Who a record belongs to, and what it holds. */
export interface RecordBytes {
  issuer: string;
  subject: string;
  /** When it was last saved (ISO 8601). */
  updatedAt: string;
  bytes?: number | undefined;
  pending?: number | undefined;
}

/** One owner's records: each one's bytes by when it was saved, oldest first, and their bytes not yet verified. */
interface Owner {
  saved: Map<string, { at: number; bytes: number }>;
  /** The bytes of {@link saved}. */
  total: number;
  /** When the newest of {@link saved} was saved. */
  last: number;
  pending: number;
}

/** See the module documentation. */
export class OwnerBytes {
  readonly #owners = new Map<string, Owner>();
  /** What each record was last counted as, by key. */
  readonly #counted = new Map<string, RecordBytes>();

  /** Record `key` is now `record` (undefined: removed). A record saved at a time before the owner's newest counts as saved then (the clock went back): its bytes count no shorter. */
  set(key: string, record: RecordBytes | undefined): void {
    const before = this.#counted.get(key);
    if (before) {
      const o = this.#owners.get(ownerKey(before))!;
      const entry = o.saved.get(key);
      if (entry) {
        o.total -= entry.bytes;
        o.saved.delete(key);
      }
      o.pending -= before.pending ?? 0;
      this.#counted.delete(key);
    }
    if (!record) return;
    const k = ownerKey(record);
    let o = this.#owners.get(k);
    if (!o) this.#owners.set(k, (o = { saved: new Map(), total: 0, last: Number.NEGATIVE_INFINITY, pending: 0 }));
    const at = Math.max(Date.parse(record.updatedAt) || 0, o.last);
    o.last = at;
    o.saved.set(key, { at, bytes: record.bytes ?? 0 });
    o.total += record.bytes ?? 0;
    o.pending += record.pending ?? 0;
    this.#counted.set(key, record);
  }

  /** The bytes of `owner`'s records no signature verified yet. */
  pending(owner: { issuer: string; subject: string }): number {
    return this.#owners.get(ownerKey(owner))?.pending ?? 0;
  }

  /** The bytes of `owner`'s records saved at `since` or later (`since` only grows: older ones are let go). */
  savedSince(owner: { issuer: string; subject: string }, since: number): number {
    const o = this.#owners.get(ownerKey(owner));
    if (!o) return 0;
    for (const [key, entry] of o.saved) {
      if (entry.at >= since) break;
      o.total -= entry.bytes;
      o.saved.delete(key);
    }
    return o.total;
  }
}

const ownerKey = (o: { issuer: string; subject: string }): string => `${o.issuer}\u0000${o.subject}`;
