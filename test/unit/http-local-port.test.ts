/**
 * An HTTP connection's local port, refusing a client before any session is opened for it (a target
 * without the port's per-run path: 404; no token to open a session with: 502): the client gets its
 * answer, and the port's side of the connection closes once the client closes its own, nothing left
 * open (a port that kept each refused client's socket could be run out of descriptors).
 */
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResolvedTokenProvider } from '../../src/auth/token-provider.js';
import { type HttpPort, openHttpPort } from '../../src/http/local/port.js';
import type { Logger } from '../../src/log.js';
import { eventually } from '../harness/wait.js';

const log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => log } as unknown as Logger;
/** A provider with no token: a session cannot be opened. */
const provider = {
  gateway: 'https://127.0.0.1:1',
  current: async () => {
    throw new Error('no token here');
  },
  onRenewed: () => () => undefined,
  onRenewFailed: () => () => undefined,
} as unknown as ResolvedTokenProvider;

let port: HttpPort;
beforeAll(async () => void (port = await openHttpPort({ provider, name: 'api', log, say: () => undefined })));
afterAll(() => port.close());

const descriptors = (): number => readdirSync('/proc/self/fd').length;

/** `request` sent by a client that reads the answer to its end and closes: the answer. */
function refused(request: string, halfClose: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port.port, '127.0.0.1', () => (halfClose ? s.end(request) : s.write(request)));
    let got = '';
    s.on('data', (b: Buffer) => (got += b.toString('latin1')));
    s.on('end', () => {
      s.destroy();
      resolve(got);
    });
    s.on('error', reject);
  });
}

describe("an HTTP connection's local port", () => {
  it("answers a client it refuses, and closes its side once the client closed (a wrong path's 404, a session it cannot open's 502)", async () => {
    const before = descriptors();
    const path = new URL(port.url).pathname;
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => refused(i % 2 === 0 ? 'GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n' : `GET ${path}/customers HTTP/1.1\r\nHost: x\r\n\r\n`, i % 3 === 0)),
    );
    expect(answers.filter((a) => a.startsWith('HTTP/1.1 404 ')).length).toBe(15);
    expect(answers.filter((a) => a.startsWith('HTTP/1.1 502 ')).length).toBe(15);
    // Well before the refused client's grace (5 s) cuts what is left: each closed as its client did.
    await eventually(() => expect(descriptors()).toBeLessThanOrEqual(before + 2), { timeout: 3000 });
  });
});
