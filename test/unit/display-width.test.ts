/**
 * The width hoop measures text by (src/text-format.ts: its Unicode tables made at the first text that is not plain
 * ASCII, not at every start) against string-width, the reference it was written to, on generated text.
 */
import stringWidth from 'string-width';
import { expect, it } from 'vitest';
import { characters, displayWidth, padToWidth } from '../../src/text-format.js';

/** Pieces a terminal draws in different widths: wide, narrow, none, emoji sequences, jamo, escapes. */
const PIECES = [
  'a',
  'Z',
  ' ',
  '~',
  '0',
  '全',
  '表',
  'ｱ',
  'ﾞ',
  'ﾟ',
  'ｰ',
  'Ａ',
  '１',
  'é',
  'e\u0301',
  '\u0301',
  '\u20dd',
  '\u200b',
  '\u200d',
  '\ufe0f',
  '\u00ad',
  '\t',
  '\x07',
  '\x7f',
  '\u0085',
  'ก',
  'ำ',
  'क',
  'ि',
  'ं',
  '😀',
  '👍🏽',
  '👨‍👩‍👧',
  '🏳️‍🌈',
  '1\u20e3',
  '#\u20e3',
  '1\ufe0f\u20e3',
  '❤',
  '❤\ufe0f',
  '\u1100',
  '\u1161',
  '\u11a8',
  '\ua960',
  '\ud7b0',
  '\ud7cb',
  '가',
  '\ud800',
  '\udc00',
  '\u{1f1fa}',
  '\u{1f1f8}',
  '\u{20000}',
  'Ω',
  '·',
  '…',
  '\x1b[31m',
  '\x1b[0m',
  '\x1b[1;4m',
  '\x1b]8;;https://hoop.example\x07',
  '\x1b]8;;\x1b\\',
  '\x9b32m',
  '\x1bM',
  // Escapes beyond colours and links: character sets, cursor saves, DCS, APC and title strings, 8-bit OSC and DCS, a palette, a cancelled string.
  ...['\x1b(B', '\x1b7', '\x1b8', '\x1b#8', '\x1bc', '\x1b=', '\x1bX', '\x1b', '\x1bP1$r\x1b\\', '\x1b_apc\x1b\\', '\x1bktitle\x1b\\', '\x1b]0;t\x9c'],
  ...['\x9d0;t\x07', '\x90q\x9c', '\x1b]P0ff00ff', '\x1b]0;a\x18b\x07', '\x18', '\x9c'],
];

/** A generator of numbers in [0, 1) from `seed`: the same texts every run. */
function seeded(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

it('measures generated text as string-width does: wide, combining, emoji, jamo, controls and escapes', () => {
  const random = seeded(75);
  const differ: string[] = [];
  for (let n = 0; n < 5_000; n++) {
    const text = Array.from({ length: 1 + Math.floor(random() * 8) }, () => PIECES[Math.floor(random() * PIECES.length)]).join('');
    if (displayWidth(text) !== stringWidth(text)) differ.push(JSON.stringify(text));
  }
  expect(differ.slice(0, 10)).toEqual([]);
});

it('counts plain ASCII by its length and pads by columns', () => {
  expect(displayWidth('')).toBe(0);
  expect(displayWidth('select 1')).toBe(8);
  expect(displayWidth('全角')).toBe(4);
  expect(padToWidth('全', 4)).toBe('全  ');
  expect([...characters('1\u20e3e\u0301')]).toEqual(['1\u20e3', 'e\u0301']);
});
