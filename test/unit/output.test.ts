/** The output contract: JSON pretty for a terminal and one line for a pipe; colour on a terminal only, never with NO_COLOR, --no-color or TERM=dumb. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/io.js';
import { colourOn, paintedTable, palette, printJson } from '../../src/ui/output.js';

/** An io whose stdout is (or is not) a terminal, with `env` and `noColor`. */
function ioOf(tty: boolean, env: NodeJS.ProcessEnv = {}, noColor?: boolean): CliIo & { text: () => string } {
  const stdout = Object.assign(new PassThrough(), tty ? { isTTY: true } : {});
  let text = '';
  stdout.on('data', (d: Buffer) => (text += d.toString()));
  return { stdout, stderr: new PassThrough(), env, cwd: '/', signal: new AbortController().signal, ...(noColor ? { noColor } : {}), text: () => text };
}

describe('printJson', () => {
  it('indents for a terminal and prints one line into a pipe, the same value either way', () => {
    const value = { sessions: [{ id: 'ses-1', refused: 0 }] };
    const tty = ioOf(true);
    printJson(tty, value);
    const pipe = ioOf(false);
    printJson(pipe, value);
    expect(tty.text()).toContain('\n  "sessions": [');
    expect(pipe.text()).toBe(`${JSON.stringify(value)}\n`);
    expect(JSON.parse(tty.text())).toEqual(JSON.parse(pipe.text()));
  });
});

describe('colour', () => {
  it('is on at a terminal only, and off with NO_COLOR, --no-color or TERM=dumb', () => {
    expect(colourOn(ioOf(true))).toBe(true);
    expect(colourOn(ioOf(false))).toBe(false);
    expect(colourOn(ioOf(true, { NO_COLOR: '1' }))).toBe(false);
    expect(colourOn(ioOf(true, { NO_COLOR: '' }))).toBe(true); // no-color.org: set and not empty
    expect(colourOn(ioOf(true, { TERM: 'dumb' }))).toBe(false);
    expect(colourOn(ioOf(true, {}, true))).toBe(false);
    expect(palette(ioOf(false)).word('deny')).toBe('deny');
    expect(palette(ioOf(true)).word('deny')).toBe('\u001b[31mdeny\u001b[39m');
    expect(palette(ioOf(true)).word('allow')).toBe('\u001b[32mallow\u001b[39m');
    expect(palette(ioOf(true)).word('review')).toBe('\u001b[33mreview\u001b[39m');
  });

  it('leaves a table aligned: cells are padded by what they show', () => {
    const rows = [
      ['ID', 'STATE', 'WHO'],
      ['rv-1', 'pending', 'ada'],
      ['rv-22', 'denied', 'grace'],
    ];
    const plain = paintedTable(ioOf(false), rows);
    const painted = paintedTable(ioOf(true), rows);
    expect(painted).not.toBe(plain);
    expect(painted.replace(/\u001b\[\d+m/g, '')).toBe(plain);
    expect(plain).toBe('ID     STATE    WHO\nrv-1   pending  ada\nrv-22  denied   grace\n');
  });
});
