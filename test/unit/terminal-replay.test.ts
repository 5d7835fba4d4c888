/**
 * An SSH session's terminal replay: frames from recorded events, asciicast v3 lines, and the
 * player's timing (speed, idle skipping, quit).
 */
import { getEventListeners } from 'node:events';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { asciicast, playTerminal, TERMINAL_PLAYER_KEYS, terminalFrames, type TerminalFrame } from '../../src/ssh/common/terminal-replay.js';
import type { RecordingEvent } from '../../src/recording/event-line.js';

const events: RecordingEvent[] = [
  { t: 'ssh-pty', at: 1000, ch: 1, term: 'xterm', cols: 90, rows: 20 },
  { t: 'ssh-shell', at: 1000, ch: 1, decision: 'allow' },
  { t: 'ssh-data', at: 1100, ch: 1, s: 'o', data: '$ ' },
  { t: 'ssh-data', at: 1200, ch: 1, s: 'i', data: 'ls\r' },
  { t: 'ssh-data', at: 1300, ch: 1, s: 'o', data64: Buffer.from('ls\r\nfile é\r\n').toString('base64') },
  { t: 'ssh-resize', at: 1400, ch: 1, cols: 100, rows: 30 },
  { t: 'ssh-exit', at: 9000, ch: 1, status: 0 },
];

describe('terminal replay', () => {
  it('turns events into frames: output, resizes, markers and the exit; input only when asked', () => {
    expect([...terminalFrames(events)].map((f) => `${f.code}:${f.data}`)).toEqual(['r:90x20', 'm:shell', 'o:$ ', 'o:ls\r\nfile é\r\n', 'r:100x30', 'x:0']);
    expect([...terminalFrames(events, true)].some((f) => f.code === 'i' && f.data === 'ls\r')).toBe(true);
  });

  it('writes asciicast v2 by default: width and height, times since the start, the exit as a marker (v2 has no exit event)', () => {
    const [header, ...lines] = [...asciicast(events, { startedAt: 900, title: 't' })].map((l) => JSON.parse(l) as [number, string, string]);
    expect(header).toEqual({ version: 2, width: 90, height: 20, timestamp: 0, title: 't' });
    expect(lines[0]).toEqual([0.1, 'r', '90x20']);
    const times = lines.map(([time]) => time);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(lines.at(-1)).toEqual([8.1, 'm', 'exit 0']);
    expect(lines.some(([, code]) => code === 'x')).toBe(false);
  });

  it('writes asciicast v3 when asked: a header with the first size, then intervals since the previous event', () => {
    const [header, ...lines] = [...asciicast(events, { startedAt: 900, title: 't', version: 3 })].map((l) => JSON.parse(l) as unknown);
    expect(header).toEqual({ version: 3, term: { cols: 90, rows: 20 }, timestamp: 0, title: 't' });
    expect(lines[0]).toEqual([0.1, 'r', '90x20']);
    expect(lines.map((l) => (l as [number])[0]).reduce((a, b) => a + b, 0)).toBeCloseTo(8.1, 3);
  });

  const frames: TerminalFrame[] = [
    { at: 0, code: 'o', data: 'a' },
    { at: 400, code: 'o', data: 'b' },
    { at: 5400, code: 'o', data: 'c' },
  ];
  const collect = (): { out: PassThrough; text: () => string } => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    return { out, text: () => text };
  };

  // The player waits on timers and reads Date.now(): a clock of the test's own (fake timers) makes its timing exact, whatever the machine's speed.
  afterEach(() => {
    vi.useRealTimers();
  });

  it('plays with the recorded timing, faster with --speed, and caps idle time with --skip-idle', async () => {
    vi.useFakeTimers();
    const { out, text } = collect();
    let done = false;
    const played = playTerminal(frames, { stdout: out, speed: 4, skipIdle: true }).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(text()).toBe('a');
    // 400 ms / 4 = 100 ms, then min(5000 / 4, 1000) = 1000 ms: 1100 ms in all.
    await vi.advanceTimersByTimeAsync(99);
    expect(text()).toBe('a');
    await vi.advanceTimersByTimeAsync(1);
    expect(text()).toBe('ab');
    await vi.advanceTimersByTimeAsync(999);
    expect(text()).toBe('ab');
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await played;
    expect(text()).toBe('abc');
  });

  it('quits on q', async () => {
    vi.useFakeTimers();
    const { out, text } = collect();
    const keys = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => undefined });
    let done = false;
    const played = playTerminal(frames, { stdout: out, stdin: keys, speed: 1, skipIdle: false }).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(100);
    expect(done).toBe(false);
    keys.write('q');
    // Before the next frame is due (400 ms in): q ends the play at once, with no time passing.
    await vi.advanceTimersByTimeAsync(0);
    await played;
    expect(text()).toBe('a');
  });
  it('leaves no listener on its signal after each wait: a long session plays without a MaxListenersExceededWarning', async () => {
    const many: TerminalFrame[] = Array.from({ length: 40 }, (_, i) => ({ at: i, code: 'o', data: 'x' }));
    const signal = new AbortController().signal;
    const warnings: Error[] = [];
    const onWarning = (w: Error): number => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const { out, text } = collect();
      await playTerminal(many, { stdout: out, speed: 1, skipIdle: false, signal });
      await new Promise((r) => setImmediate(r));
      expect(text()).toBe('x'.repeat(40));
      expect(getEventListeners(signal, 'abort')).toHaveLength(0);
      expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('? pauses and lists the keys between two frames', async () => {
    vi.useFakeTimers();
    const { out, text } = collect();
    const keys = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => undefined });
    const played = playTerminal(frames, { stdout: out, stdin: keys, speed: 1, skipIdle: false });
    await vi.advanceTimersByTimeAsync(100);
    keys.write('?');
    // Long past the second frame (due 400 ms in): paused, the keys listed, and no frame played.
    await vi.advanceTimersByTimeAsync(600);
    expect(text()).toBe(`a\r\n[hoop replay: paused · ${TERMINAL_PLAYER_KEYS}]\r\n`);
    keys.write('q');
    await vi.advanceTimersByTimeAsync(0);
    await played;
  });
});
