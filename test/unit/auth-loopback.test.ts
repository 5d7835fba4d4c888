/**
 * The login redirect listener (127.0.0.1, port 0, one-shot) and the browser opener.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserCommand, openBrowser } from '../../src/auth/browser.js';
import { startRedirectListener } from '../../src/auth/loopback-redirect.js';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { eventually } from '../harness/wait.js';

/** A GET with an explicit Host header; resolves status and body. */
function get(url: string, host?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: host ? { host } : {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-loopback-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('redirect listener', () => {
  it('listens on the 127.0.0.1 literal with an OS-chosen port and path /callback', async () => {
    const listener = await startRedirectListener();
    expect(listener.redirectUri).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    await listener.close();
  });

  it('refuses a wrong or missing state with 400 and keeps waiting for the right one', async () => {
    const listener = await startRedirectListener();
    let wrong = 0;
    const waiting = listener.wait({ state: 'good-state', timeoutMs: 10_000, onWrongState: () => wrong++ });
    const bad = await get(`${listener.redirectUri}?code=c1&state=evil`);
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('does not match');
    expect((await get(`${listener.redirectUri}?code=c1`)).status).toBe(400);
    expect(wrong).toBe(2);
    expect((await get(listener.redirectUri.replace('/callback', '/other'))).status).toBe(404);
    const pending = get(`${listener.redirectUri}?code=c2&state=good-state`);
    const callback = await waiting;
    expect(callback.url.searchParams.get('code')).toBe('c2');
    callback.respond(true, 'You are <logged in>.');
    const page = await pending;
    expect(page.status).toBe(200);
    expect(page.body).toContain('You are &#60;logged in&#62;.');
    // One-shot: later requests are not taken.
    expect((await get(`${listener.redirectUri}?code=c3&state=good-state`)).status).toBe(409);
    await listener.close();
  });

  it('answers only to its own Host (no DNS rebinding)', async () => {
    const listener = await startRedirectListener();
    const waiting = listener.wait({ state: 's', timeoutMs: 2_000 });
    expect((await get(`${listener.redirectUri}?code=c&state=s`, 'evil.example')).status).toBe(400);
    await expect(waiting).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    await listener.close();
  });

  it('times out with a hint, and stops on abort', async () => {
    const listener = await startRedirectListener();
    const err = await listener.wait({ state: 's', timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HoopError);
    expect((err as HoopError).code).toBe(ErrorCode.TIMEOUT);
    expect((err as HoopError).message).toContain('within 0 s');
    expect((err as HoopError).hint).toContain('--device');
    await listener.close();

    const again = await startRedirectListener();
    const controller = new AbortController();
    const waiting = again.wait({ state: 's', timeoutMs: 10_000, signal: controller.signal });
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ exitCode: 130 });
    await again.close();
  });
});

describe('browser opener', () => {
  it('picks the platform opener and never a shell', () => {
    const url = 'https://idp.example/authorize?a=1&b=$(rm -rf ~)';
    expect(browserCommand(url, 'linux', {})).toEqual({ file: 'xdg-open', args: [url] });
    expect(browserCommand(url, 'darwin', {})).toEqual({ file: 'open', args: [url] });
    expect(browserCommand(url, 'win32', {})).toEqual({ file: 'rundll32', args: ['url.dll,FileProtocolHandler', url] });
    expect(browserCommand(url, 'linux', { BROWSER: '/usr/bin/firefox' })).toEqual({ file: '/usr/bin/firefox', args: [url] });
    // A $BROWSER list or command line is not run through a shell: ignored.
    expect(browserCommand(url, 'linux', { BROWSER: 'firefox %s' }).file).toBe('xdg-open');
  });

  it('passes the URL as one argument to $BROWSER, and reports a missing opener', async () => {
    const script = join(dir, 'browser.sh');
    const out = join(dir, 'opened.txt');
    await writeFile(script, `#!/bin/sh\nprintf '%s|%s' "$#" "$1" > '${out}'\n`);
    await chmod(script, 0o755);
    const url = 'http://127.0.0.1:1/authorize?x=1&y=a b;$(id)';
    expect(await openBrowser(url, { env: { BROWSER: script, PATH: process.env.PATH } })).toBe(true);
    await eventually(async () => expect(await readFile(out, 'utf8').catch(() => '')).toBe(`1|${new URL(url).href}`), { timeout: 60_000, interval: 20 });
    expect(await openBrowser(url, { env: { BROWSER: join(dir, 'missing') } })).toBe(false);
    expect(await openBrowser('file:///etc/passwd', { env: { BROWSER: script } })).toBe(false);
  });
});
