/**
 * The SCRAM client remembers a salted password (PBKDF2 of the password with the server's salt and
 * iteration count): counted here by the calls to PBKDF2, not by how long a sign-in takes (that is
 * measured in test/perf/parsing-speed.test.ts).
 */
import { describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ async: 0, sync: 0 }));

vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return {
    ...real,
    pbkdf2: ((...args: Parameters<typeof real.pbkdf2>) => {
      calls.async++;
      return real.pbkdf2(...args);
    }) as typeof real.pbkdf2,
    pbkdf2Sync: ((...args: Parameters<typeof real.pbkdf2Sync>) => {
      calls.sync++;
      return real.pbkdf2Sync(...args);
    }) as typeof real.pbkdf2Sync,
  };
});

const { ScramAuthError, ScramClient, ScramServer, makeScramSecret } = await import('../../src/postgres/wire/scram.js');

describe('the SCRAM client', () => {
  it('derives a salted password once per password, salt and iteration count, and never reuses it for another', async () => {
    const secret = makeScramSecret('pw', 4096, Buffer.from('a salt of its own for this test'));
    const signIn = async (password: string): Promise<void> => {
      const server = new ScramServer(secret);
      const client = new ScramClient(password);
      const final = await client.handleServerFirstAsync(server.handleClientFirst(client.clientFirstMessage()));
      client.verifyServerFinal(server.handleClientFinal(final));
    };
    const syncSignIn = (password: string): void => {
      const server = new ScramServer(secret);
      const client = new ScramClient(password);
      client.verifyServerFinal(server.handleClientFinal(client.handleServerFirst(server.handleClientFirst(client.clientFirstMessage()))));
    };
    const derived = (): number => calls.async + calls.sync;
    const before = derived();
    await signIn('pw');
    expect(derived() - before).toBe(1);
    await signIn('pw');
    await signIn('pw');
    expect(derived() - before).toBe(1);
    // The synchronous path shares what was derived.
    syncSignIn('pw');
    expect(derived() - before).toBe(1);
    // Another password with the same salt is derived anew, and refused.
    await expect(signIn('not pw')).rejects.toBeInstanceOf(ScramAuthError);
    expect(derived() - before).toBe(2);
    expect(() => syncSignIn('PW')).toThrow(ScramAuthError);
    expect(derived() - before).toBe(3);
    // The same password with another iteration count is derived anew.
    const other = makeScramSecret('pw', 4097, Buffer.from('a salt of its own for this test'));
    const afterSecret = derived();
    const server = new ScramServer(other);
    const client = new ScramClient('pw');
    client.verifyServerFinal(server.handleClientFinal(await client.handleServerFirstAsync(server.handleClientFirst(client.clientFirstMessage()))));
    expect(derived() - afterSecret).toBe(1);
  });
});
