/**
 * The replay player's screens (ink-testing-library frames): it plays steps with their timing,
 * pauses, steps back and forth, jumps to the next refused statement, changes speed, and quits.
 */
import { render } from 'ink-testing-library';
import { createElement } from 'react';
import { describe, expect, it } from 'vitest';
import type { TranscriptLine } from '../../src/ui/transcript.js';
import { REPLAY_KEYS, ReplayPlayer, replaySteps } from '../../src/ui/ReplayPlayer.js';
import { eventually, pace, quietFor } from '../harness/wait.js';

const t0 = Date.parse('2026-11-22T10:00:00Z');
const lines: TranscriptLine[] = [
  { at: t0, text: '-- session s1 of devin on app' },
  { at: t0 + 400, text: 'app=> select email from customers limit 1' },
  { at: t0 + 400, text: ' [redacted]' },
  { at: t0 + 1200, text: 'app=> drop table customers' },
  { at: t0 + 1200, text: '-- hoop: denied by rule "no-drop": DROP is not allowed', denied: true },
  { at: t0 + 2400, text: 'app=> select 1' },
  { at: t0 + 2400, text: '-- session ended: client-terminated' },
];

/** Waits (up to 30 s, for a loaded machine) until the frame holds `text`. */
async function until(frame: () => string | undefined, text: string): Promise<void> {
  await eventually(() => expect(frame()).toContain(text), { timeout: 60_000, interval: 10 });
}

describe('replay player', () => {
  it('cuts the transcript into a step per statement, marking refused ones', () => {
    const steps = replaySteps(lines);
    expect(steps.map((s) => [s.lines.length, s.denied])).toEqual([
      [1, false],
      [2, false],
      [2, true],
      [2, false],
    ]);
  });

  it("plays with the session's timing and the speed asked for", async () => {
    // Taken before the player starts its clock: what it waits is at least what passed since (a busy machine renders late).
    const started = performance.now();
    const ui = render(createElement(ReplayPlayer, { steps: replaySteps(lines), speed: 2 }));
    expect(ui.lastFrame()).toContain('step 1/4 · playing ×2');
    expect(ui.lastFrame()).not.toContain('select email');
    await quietFor(100); // well before 400 ms of the session at ×2
    expect(ui.lastFrame()).toContain('step 1/4');
    await until(ui.lastFrame, 'app=> select email from customers limit 1');
    expect(performance.now() - started).toBeGreaterThanOrEqual(200);
    expect(ui.lastFrame()).toContain('step 2/4');
    await until(ui.lastFrame, 'denied by rule "no-drop"');
    await until(ui.lastFrame, 'step 4/4 · end');
    expect(performance.now() - started).toBeGreaterThanOrEqual(1200);
    ui.unmount();
  });

  it('pauses, steps back and forth, jumps to the next refused statement, changes speed, quits', async () => {
    const ui = render(createElement(ReplayPlayer, { steps: replaySteps(lines) }));
    const key = async (k: string): Promise<void> => {
      ui.stdin.write(k);
      await pace(30); // the key handler is replaced in an effect after each render: keys are typed, not pasted
    };
    await key(' ');
    await until(ui.lastFrame, 'step 1/4 · paused');
    await quietFor(600);
    expect(ui.lastFrame()).toContain('step 1/4 · paused'); // nothing moves while paused
    await key('n');
    await until(ui.lastFrame, 'step 2/4');
    await key('p');
    await until(ui.lastFrame, 'step 1/4');
    expect(ui.lastFrame()).not.toContain('select email');
    await key('d');
    await until(ui.lastFrame, 'step 3/4 · paused');
    await until(ui.lastFrame, '-- hoop: denied by rule "no-drop"');
    await key('+');
    await key(' ');
    await until(ui.lastFrame, 'playing ×2');
    await key('q');
    await key('n'); // after quitting, keys move nothing
    expect(ui.frames.some((f) => f.includes('step 4/4'))).toBe(false);
    ui.unmount();
  });

  it('shows only the last lines that fit', () => {
    const many: TranscriptLine[] = Array.from({ length: 50 }, (_, i) => ({ at: t0, text: i === 0 ? 'app=> select g from generate_series(1, 49) g' : ` ${i}` }));
    const ui = render(createElement(ReplayPlayer, { steps: replaySteps(many), rows: 5 }));
    const frame = ui.lastFrame()!.split('\n');
    expect(frame).toHaveLength(6);
    expect(frame.slice(0, 5)).toEqual([' 45', ' 46', ' 47', ' 48', ' 49']);
    ui.unmount();
  });
  it('? shows every key above the status line, in the rows the transcript had, and hides them again', async () => {
    const many: TranscriptLine[] = Array.from({ length: 50 }, (_, i) => ({ at: t0, text: i === 0 ? 'app=> select g from generate_series(1, 49) g' : ` ${i}` }));
    const ui = render(createElement(ReplayPlayer, { steps: replaySteps(many), rows: 10 }));
    expect(ui.lastFrame()).toContain('? keys · q quit');
    ui.stdin.write('?');
    await until(ui.lastFrame, 'show or hide these keys');
    const frame = ui.lastFrame()!.split('\n');
    expect(frame).toHaveLength(11);
    expect(frame.slice(0, 3)).toEqual([' 47', ' 48', ' 49']);
    for (const [key, what] of REPLAY_KEYS) expect(ui.lastFrame()).toContain(`${key.padEnd(8)} ${what}`);
    await pace(30);
    ui.stdin.write('?');
    await eventually(() => expect(ui.lastFrame()).not.toContain('show or hide these keys'), { timeout: 60_000, interval: 10 });
    ui.unmount();
  });
});
