/**
 * How fast the pieces on every statement's and sign-in's path are (npm run bench:tests): a glob on
 * patterns that make backtracking explode, a 50 MB message read in 64 KiB chunks, a SCRAM sign-in
 * with a remembered salted password, the content detectors over 16 MiB of prose. Moved out of test/unit (glob, workload-rules, pg-wire,
 * pg-scram), which check what these do, not how fast.
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { globMatches } from '../../src/glob.js';
import { DETECTOR_NAMES, detect } from '../../src/policy/masking/detectors.js';
import * as m from '../../src/postgres/wire/messages.js';
import { MessageReader, type PgMessage } from '../../src/postgres/wire/reader.js';
import { ScramClient, ScramServer, makeScramSecret } from '../../src/postgres/wire/scram.js';

describe('glob', () => {
  it('stays linear on patterns that make backtracking regular expressions explode', () => {
    let started = performance.now();
    expect(globMatches(`${'*a'.repeat(30)}b`, 'a'.repeat(5000))).toBe(false);
    const thirtyStars = performance.now() - started;
    started = performance.now();
    expect(globMatches('*a*a*a*a*a*a*c', `${'a'.repeat(20_000)}b`)).toBe(false);
    const longValue = performance.now() - started;
    process.stdout.write(`glob: 30 stars on 5,000 characters ${thirtyStars.toFixed(1)} ms, 6 stars on 20,001 characters ${longValue.toFixed(1)} ms\n`);
    expect(thirtyStars).toBeLessThan(2000);
    expect(longValue).toBeLessThan(2000);
  });
});

describe('the content detectors', () => {
  it('read 16 MiB of prose with every detector at over 80 MB/s (a masked value up to 64 MiB is scanned on the event loop)', () => {
    const line = 'The quick brown fox jumps over the lazy dog; call 555-0100 at 9am, ref A1B2-C3. ';
    const text = line.repeat(Math.ceil((16 * 1024 * 1024) / line.length));
    detect(text.slice(0, 100_000), DETECTOR_NAMES);
    const t0 = performance.now();
    expect(detect(text, DETECTOR_NAMES)).toEqual([]);
    const mbs = text.length / 1e6 / ((performance.now() - t0) / 1000);
    process.stdout.write(`detectors: 16 MiB of prose at ${mbs.toFixed(0)} MB/s\n`);
    expect(mbs).toBeGreaterThan(80);
  });
});

describe('the PostgreSQL message reader', () => {
  it('reads a 50 MB message arriving in 64 KiB chunks in well under a second', () => {
    const size = 50 * 1024 * 1024;
    const msg = Buffer.allocUnsafe(5 + size);
    msg[0] = 'd'.charCodeAt(0);
    msg.writeUInt32BE(4 + size, 1);
    const all = Buffer.concat([msg, m.query('select 1')]);
    const r = new MessageReader({ side: 'frontend' });
    const t0 = performance.now();
    const got: PgMessage[] = [];
    for (let i = 0; i < all.length; i += 65536) {
      r.push(all.subarray(i, Math.min(all.length, i + 65536)));
      for (let x = r.next(); x; x = r.next()) got.push(x);
    }
    const ms = performance.now() - t0;
    process.stdout.write(`message reader: 50 MB in 64 KiB chunks ${ms.toFixed(0)} ms\n`);
    expect(got).toHaveLength(2);
    expect(ms).toBeLessThan(500);
  });
});

describe('SCRAM', () => {
  it('derives a salted password once: a sign-in with a remembered one costs a fraction of the first', async () => {
    const secret = makeScramSecret('pw', 200_000, Buffer.from('the same salt for every exchange'));
    const signIn = async (password: string): Promise<number> => {
      const server = new ScramServer(secret);
      const client = new ScramClient(password);
      const started = performance.now();
      const final = await client.handleServerFirstAsync(server.handleClientFirst(client.clientFirstMessage()));
      const ms = performance.now() - started;
      client.verifyServerFinal(server.handleClientFinal(final));
      return ms;
    };
    const first = await signIn('pw');
    const again = [await signIn('pw'), await signIn('pw')];
    process.stdout.write(`scram: first sign-in ${first.toFixed(1)} ms, again ${again.map((ms) => ms.toFixed(2)).join(', ')} ms\n`);
    // 200,000 rounds of HMAC-SHA-256 take tens of milliseconds; remembered, they take none.
    expect(first).toBeGreaterThan(10);
    for (const ms of again) expect(ms).toBeLessThan(first / 5);
  });
});
