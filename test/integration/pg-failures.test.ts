/**
 * Failures say what happened, inside the protocol (psql prints it) and in the CLI: gateway
 * unreachable, token rejected, connection unknown or not allowed, upstream down, wrong upstream
 * password. Also: each upstream password method, and the gateway going away under a session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { psql } from '../harness/clients.js';
import { startStack, type HoopStack } from '../harness/stack.js';

let stack: HoopStack;
let token: string;

beforeAll(async () => {
  stack = await startStack();
  token = await stack.token('alice');
});

afterAll(async () => {
  await stack?.close();
});

function connectArgs(name: string): string[] {
  return ['connect', name, '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
}

describe('hoop connect refuses to start when it cannot work', () => {
  it('says the token was rejected', async () => {
    const forged = `${token.slice(0, token.lastIndexOf('.'))}.AAAA`;
    const r = await stack.run(connectArgs('app'), { HOOP_TOKEN: forged });
    expect(r.code).toBe(ExitCode.NOPERM);
    expect(r.stderr).toMatch(/token/i);
    expect(r.stderr).toContain('hint:');
    expect(r.stderr).not.toContain(forged);
  });

  it('says when there is no token at all', async () => {
    const r = await stack.run(connectArgs('app'), {});
    expect(r.code).toBe(ExitCode.NOPERM);
    expect(r.stderr).toContain('HOOP_TOKEN');
  });

  it('says the connection is unknown', async () => {
    const r = await stack.run(connectArgs('no-such-db'), { HOOP_TOKEN: token });
    expect(r.code).toBe(ExitCode.DATA);
    expect(r.stderr).toContain('no-such-db');
  });

  it('says the caller may not use the connection', async () => {
    const r = await stack.run(connectArgs('carol-only'), { HOOP_TOKEN: token });
    expect(r.code).toBe(ExitCode.NOPERM);
    expect(r.stderr).toContain('may not use');
  });

  it('says the gateway is unreachable', async () => {
    const r = await stack.run(['connect', 'app', '--gateway', 'https://127.0.0.1:1', '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    expect(r.code).toBe(ExitCode.UNAVAILABLE);
    expect(r.stderr).toMatch(/127\.0\.0\.1:1/);
  });

  it('says the gateway certificate is not trusted without --ca-file', async () => {
    const r = await stack.run(['connect', 'app', '--gateway', stack.gateway.url], { HOOP_TOKEN: token });
    expect(r.code).toBe(ExitCode.UNAVAILABLE);
    expect(r.stderr).toContain('--ca-file');
  });

  it('refuses plain http to a non-loopback gateway', async () => {
    const r = await stack.run(['connect', 'app', '--gateway', 'http://192.0.2.10:8080'], { HOOP_TOKEN: token });
    expect(r.code).toBe(ExitCode.USAGE);
    expect(r.stderr).toContain('TLS is required');
  });
});

describe('failures behind the gateway reach psql', () => {
  it('upstream down: psql shows a FATAL saying the gateway could not reach the database', async () => {
    const down = await stack.connect('down', token);
    try {
      const r = await psql(down.info, ['-c', 'select 1']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('could not reach "down"');
      expect(down.stderr()).toContain('could not reach "down"');
    } finally {
      await down.stop();
    }
  });

  it('wrong upstream password: psql shows that the gateway could not sign in', async () => {
    const wrong = await stack.connect('wrong-password', token);
    try {
      const r = await psql(wrong.info, ['-c', 'select 1']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('could not sign in to "wrong-password"');
      expect(r.stderr).not.toContain('not-the-password');
    } finally {
      await wrong.stop();
    }
    const close = stack
      .logs()
      .filter((l) => l.event === 'tunnel.close' && l.connection === 'wrong-password')
      .at(-1);
    expect(close?.reason).toBe('upstream-auth-failed');
  });

  it.each(['app-md5', 'app-cleartext'])('signs in upstream with %s', async (name) => {
    const c = await stack.connect(name, token);
    try {
      const r = await psql(c.info, ['-At', '-c', 'select current_user']);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toMatch(/md5|cleartext|plain/);
    } finally {
      await c.stop();
    }
  });

  it('the gateway going away fails the next session inside the protocol', async () => {
    const c = await stack.connect('app', token);
    try {
      await stack.gateway.close();
      const r = await psql(c.info, ['-c', 'select 1']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/gateway/);
    } finally {
      await c.stop();
    }
  });
});
