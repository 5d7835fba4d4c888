import { describe, expect, it } from 'vitest';
import { MysqlClientIds } from '../../src/mysql/gateway/client-ids.js';
import type { SessionOwner } from '../../src/session/owner.js';

const alice: SessionOwner = { subject: 'alice', issuer: 'https://idp', connection: 'shop' };

describe('the ids MySQL clients were greeted with', () => {
  it("find the server's id of the one live session of the same owner, and of nobody else's", () => {
    const ids = new MysqlClientIds();
    const gone = ids.register(7, alice, 901);
    expect(ids.resolve(7, alice)).toBe(901);
    // Another person, the same person's agent run, another connection, another issuer: not theirs to KILL.
    for (const other of [
      { ...alice, subject: 'bob' },
      { ...alice, run: 'run-1' },
      { ...alice, connection: 'shop-ro' },
      { ...alice, issuer: 'https://other' },
    ]) {
      expect(ids.resolve(7, other)).toEqual({ refused: expect.stringMatching(/^KILL 7: no session of yours/) });
    }
    // Two of alice's sessions greeted alike (two local ports): ambiguous, refused.
    const twice = ids.register(7, alice, 902);
    expect(ids.resolve(7, alice)).toEqual({ refused: expect.stringMatching(/more than one session/) });
    twice();
    gone();
    expect(ids.resolve(7, alice)).toEqual({ refused: expect.stringMatching(/^KILL 7: no session of yours/) });
  });
});
