/**
 * The ink view of `hoop login --device`: code, URL, spinner, time left and interval.
 */
import { Writable } from 'node:stream';
import { createElement } from 'react';
import { render } from 'ink';
import { describe, expect, it } from 'vitest';
import { DeviceLogin, formatTimeLeft, inkDeviceView } from '../../src/ui/DeviceLogin.js';

/** A fake terminal that keeps what ink wrote. */
class Screen extends Writable {
  output = '';
  columns = 100;
  rows = 40;
  isTTY = true;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.output += chunk.toString();
    cb();
  }
  // eslint-disable-next-line no-control-regex
  text = (): string => this.output.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
}

const prompt = {
  userCode: 'WDJB-MJHT',
  verificationUri: 'http://127.0.0.1:9/device',
  verificationUriComplete: 'http://127.0.0.1:9/device?user_code=WDJB-MJHT',
  expiresAt: new Date(1_000_000 + 125_000),
  intervalSeconds: 5,
};

describe('DeviceLogin', () => {
  it('formats the time left', () => {
    expect(formatTimeLeft(125_000)).toBe('2:05');
    expect(formatTimeLeft(400)).toBe('0:01');
    expect(formatTimeLeft(-5)).toBe('0:00');
  });

  it('shows the URL, the code, the time left and the interval while waiting', () => {
    const screen = new Screen();
    const instance = render(createElement(DeviceLogin, { prompt, status: 'waiting', clock: () => 1_000_000 }), {
      stdout: screen as unknown as NodeJS.WriteStream,
      patchConsole: false,
      exitOnCtrlC: false,
    });
    instance.unmount();
    const text = screen.text();
    expect(text).toContain('http://127.0.0.1:9/device');
    expect(text).toContain('WDJB-MJHT');
    expect(text).toContain('2:05 left');
    expect(text).toContain('checking every 5 s');
    expect(text).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
  });

  it('shows the slower interval after slow_down', () => {
    const screen = new Screen();
    const instance = render(createElement(DeviceLogin, { prompt: { ...prompt, intervalSeconds: 10 }, status: 'waiting', clock: () => 1_000_000 }), {
      stdout: screen as unknown as NodeJS.WriteStream,
      patchConsole: false,
      exitOnCtrlC: false,
    });
    instance.unmount();
    expect(screen.text()).toContain('checking every 10 s');
  });

  it('as a view: draws the prompt, then the outcome, and lets go of the terminal', async () => {
    const screen = new Screen();
    const view = inkDeviceView(screen);
    view.show({ ...prompt, expiresAt: new Date(Date.now() + 60_000) });
    view.slowedDown(10);
    await view.finish({ ok: false, message: 'the code expired before it was approved' });
    expect(screen.text()).toContain('✘ the code expired before it was approved');
    expect(screen.text()).toContain('WDJB-MJHT');
  });
});
