/** Each owner's record bytes (src/gateway/records/owner-bytes.ts): what every record of theirs holds, counted as records are saved and removed. */
import { describe, expect, it } from 'vitest';
import { OwnerBytes, type RecordBytes } from '../../src/gateway/records/owner-bytes.js';

describe('OwnerBytes', () => {
  it('says what a count over every record says, through generated saves, removals and days', () => {
    let seed = 7;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const owners = [
      { issuer: 'https://idp', subject: 'alice' },
      { issuer: 'https://idp', subject: 'bob' },
      { issuer: 'https://other', subject: 'alice' },
    ];
    const tallies = new OwnerBytes();
    const records = new Map<string, RecordBytes>();
    let now = Date.parse('2026-12-01T00:00:00Z');
    for (let step = 0; step < 5000; step++) {
      now += next(60_000);
      const key = `sessions/r${next(200)}`;
      if (next(10) === 0) {
        records.delete(key);
        tallies.set(key, undefined);
      } else {
        // A record stays its first owner's.
        const owner = records.get(key) ?? owners[next(owners.length)]!;
        const record = { issuer: owner.issuer, subject: owner.subject, updatedAt: new Date(now).toISOString(), bytes: next(5000), ...(next(3) === 0 ? { pending: next(900) } : {}) };
        records.set(key, record);
        tallies.set(key, record);
      }
      const since = now - 3_600_000;
      for (const o of owners) {
        const mine = [...records.values()].filter((r) => r.issuer === o.issuer && r.subject === o.subject);
        expect(tallies.savedSince(o, since)).toBe(mine.filter((r) => Date.parse(r.updatedAt) >= since).reduce((a, r) => a + (r.bytes ?? 0), 0));
        expect(tallies.pending(o)).toBe(mine.reduce((a, r) => a + (r.pending ?? 0), 0));
      }
    }
  });

  it('counts a record saved while the clock went back as saved when the newest was: its bytes count no shorter', () => {
    const tallies = new OwnerBytes();
    const owner = { issuer: 'i', subject: 's' };
    tallies.set('a', { ...owner, updatedAt: '2026-12-01T10:00:00Z', bytes: 10 });
    tallies.set('b', { ...owner, updatedAt: '2026-12-01T09:00:00Z', bytes: 5 });
    expect(tallies.savedSince(owner, Date.parse('2026-12-01T09:30:00Z'))).toBe(15);
    expect(tallies.savedSince(owner, Date.parse('2026-12-01T10:00:01Z'))).toBe(0);
    expect(tallies.savedSince({ issuer: 'i', subject: 'other' }, 0)).toBe(0);
  });
});
