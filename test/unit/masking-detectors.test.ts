import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { detect, findEmails, findIbans, findPaymentCards, findSecretTokens, findUsSsns, ibanValid, knownCardPrefix, looksRandom, luhnValid, readerView } from '../../src/policy/masking/detectors.js';
import { McpMasking } from '../../src/mcp/pipeline/masking.js';
import { mapStrings, redactedLine } from '../../src/policy/masking/json-values.js';
import { McpRecorder } from '../../src/mcp/pipeline/recorder.js';
import { ticksWhile } from '../harness/event-loop.js';
import { jsonText, parseJson } from '../../src/json-number.js';
import { redactDetected } from '../../src/policy/sql/redact.js';

/** The digits of `text` as JSON reads them. */
const cardDigitsOf = (text: string): string => JSON.stringify(JSON.parse(text)).replace(/\D/g, '');
import { MaskingRules } from '../../src/policy/masking/rules.js';
import { detectInField } from '../../src/policy/masking/values.js';
import { applyStrategy, keyedHash, last4 } from '../../src/policy/masking/strategies.js';
import { Random } from '../harness/random.js';
import { maskAhead } from '../../src/policy/masking/mask-ahead.js';

const hits = (f: (s: string) => Array<{ start: number; end: number }>, s: string): string[] => f(s).map((m) => s.slice(m.start, m.end));
/** Generated strings each detector is checked on against its slow reference (each finds something in about one in five). */
const TRIALS = 40_000;

describe('payment cards', () => {
  it('finds Luhn-valid numbers of known schemes, grouped or not', () => {
    for (const n of [
      '4111 1111 1111 1111',
      '4111-1111-1111-1111',
      '4111111111111111',
      '5555555555554444',
      '2223003122003222',
      '3782 822463 10005',
      '6011111111111117',
      '3530111333300000',
      '30569309025904',
      '4222222222222',
    ]) {
      expect(hits(findPaymentCards, `card: ${n}.`), n).toEqual([n]);
    }
    expect(luhnValid('79927398713')).toBe(true);
  });

  it('finds a number beside another digit group (the review: an expiry after it, a digit before it)', () => {
    expect(hits(findPaymentCards, 'card 4111 1111 1111 1111 12/28')).toEqual(['4111 1111 1111 1111']);
    expect(hits(findPaymentCards, '7 4111 1111 1111 1111')).toEqual(['4111 1111 1111 1111']);
    expect(hits(findPaymentCards, '4111-1111-1111-1111-2028')).toEqual(['4111-1111-1111-1111']);
  });

  it("masks every character any detector matched where two matches overlap (a card after an SSN-shaped prefix: the helper's attack)", () => {
    const rules = new MaskingRules({
      columns: [],
      names: [],
      detectors: [
        { detector: 'us-ssn', strategy: 'last4' },
        { detector: 'payment-card', strategy: 'last4' },
      ],
    });
    const masked = rules.maskText('555-12-4111 1111 1111 1111').text;
    expect(masked).not.toMatch(/\d{4}[ -]\d{4}/);
    expect(masked.replace(/\D/g, '').length).toBeLessThanOrEqual(8);
    expect(detect('555-12-4111 1111 1111 1111', ['us-ssn', 'payment-card']).map((m) => [m.detector, m.start, m.end])).toEqual([
      ['us-ssn', 0, 11],
      ['payment-card', 11, 26],
    ]);
  });

  it("writes down an agent's card in a string as JSON reads it, escaped too (the helper's attack on MCP recordings)", () => {
    const rules = new MaskingRules({ columns: [], names: [], detectors: [{ detector: 'payment-card', strategy: 'last4' }] });
    for (const content of ['\\u0034111 1111 1111 1111', '4111\\u00201111 1111 1111', '4\\u0031\\u00311 1111 1111 1111', '4111 1111 1111 1111']) {
      const line = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"/tmp/x","content":"${content}"}}}`;
      const written = redactedLine(line, rules, Buffer.alloc(32, 1));
      expect(written, content).toContain('redacted');
      expect(cardDigitsOf(written), content).not.toContain('4111111111111111');
    }
    const plain = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/tmp/\\u0078"}}}';
    expect(redactedLine(plain, rules, Buffer.alloc(32, 1))).toBe(plain);
  });

  it('covers every digit a slow reference finds (every window of whole groups, every separator, the Luhn check) over 40,000 generated strings, and nothing else', () => {
    const r = new Random(73);
    const next = (): number => r.int(2 ** 32) / 2 ** 32;
    const cards = ['4111111111111111', '5555555555554444', '378282246310005', '6011111111111117', '4222222222222', '3530111333300000'];
    // Grouped as people and programs write them: spaces of any width, dashes, dots, runs of them; fullwidth digits.
    const gaps = [' ', '-', '', '\u00a0', '\u202f', '\u2013', '.', '  ', '\t'];
    const fullwidth = (t: string): string => t.replace(/\d/g, (d) => String.fromCharCode(0xff10 + Number(d)));
    const piece = (): string => {
      const r = next();
      if (r < 0.25) {
        const card = cards[Math.floor(next() * cards.length)]!.replace(/(\d{4})(?=\d)/g, `$1${gaps[Math.floor(next() * gaps.length)]}`);
        return next() < 0.15 ? fullwidth(card) : card;
      }
      if (r < 0.55) return String(Math.floor(next() * 10 ** (1 + Math.floor(next() * 5))));
      return ' -/ab.:\n\u00a0\u3000'[Math.floor(next() * 10)]!;
    };
    const isAlnum = (c: string | undefined): boolean => c !== undefined && /[0-9A-Za-z]/.test(c);
    const digitOf = (c: string | undefined): string | undefined => (c === undefined ? undefined : /\d/.test(c) ? c : /[\uff10-\uff19]/.test(c) ? String(c.charCodeAt(0) - 0xff10) : undefined);
    const SEPARATOR = /[ \u00a0\u2007\u2009\u202f\u2010-\u2013\u2212\uff0d-]/;
    /** Every window of the text that a card number may be: digits joined by single separators, its ends touching no letter or digit. */
    const reference = (s: string): Set<number> => {
      const covered = new Set<number>();
      for (let a = 0; a < s.length; a++) {
        if (digitOf(s[a]) === undefined || isAlnum(s[a - 1]) || digitOf(s[a - 1]) !== undefined) continue;
        // Windows s[a, b) grown a character at a time (a window that is not one ends the growing).
        let digits = '';
        for (let b = a + 1; b <= s.length && digits.length <= 19; b++) {
          const c = s[b - 1]!;
          const d = digitOf(c);
          if (d !== undefined) digits += d;
          else if (!SEPARATOR.test(c) || digitOf(s[b - 2]) === undefined) break;
          else continue; // a window does not end on a separator
          if (!isAlnum(s[b]) && digitOf(s[b]) === undefined && digits.length >= 13 && digits.length <= 19 && knownCardPrefix(digits) && luhnValid(digits)) for (let k = a; k < b; k++) covered.add(k);
        }
      }
      return covered;
    };
    let found = 0;
    for (let t = 0; t < TRIALS; t++) {
      const s = Array.from({ length: 1 + Math.floor(next() * 6) }, piece).join('');
      const want = reference(s);
      const got = new Set<number>();
      for (const m of findPaymentCards(s)) for (let k = m.start; k < m.end; k++) got.add(k);
      // The detector's spans cover what the reference finds, and hold nothing but separators between what it finds.
      const missed = [...want].filter((k) => !got.has(k));
      const extra = [...got].filter((k) => !want.has(k) && !SEPARATOR.test(s[k]!));
      if (missed.length > 0 || extra.length > 0) expect({ text: s, missed, extra }).toEqual({ text: s, missed: [], extra: [] });
      found += want.size > 0 ? 1 : 0;
    }
    expect(found).toBeGreaterThan(TRIALS / 10);
  });

  it('ignores Luhn failures, unknown prefixes, timestamps, and digits glued to letters', () => {
    for (const s of ['4111 1111 1111 1112', '1234567812345670', 'epoch 1700000000000 ms', 'order ABC4111111111111111', '4111111111111111X', 'phone +1 555 123 4567']) {
      expect(hits(findPaymentCards, s), s).toEqual([]);
    }
  });
});

describe('email', () => {
  it('finds addresses', () => {
    expect(hits(findEmails, 'to alice@example.com, Bob.Smith+tag@mail.example.co.uk;')).toEqual(['alice@example.com', 'Bob.Smith+tag@mail.example.co.uk']);
    expect(hits(findEmails, '{"email":"carol@example.org"}')).toEqual(['carol@example.org']);
  });
  it('ignores things that are not addresses', () => {
    for (const s of ['user@localhost', 'a @ b.com', '@example.com', 'x@y.c1', 'git@github', 'price 5@3.50']) expect(hits(findEmails, s), s).toEqual([]);
  });
});

describe('US SSN', () => {
  it('finds valid dashed numbers', () => {
    expect(hits(findUsSsns, 'ssn 123-45-6789 and 536-90-4399')).toEqual(['123-45-6789', '536-90-4399']);
  });
  it('skips never-issued ranges, dates and longer digit runs', () => {
    for (const s of ['000-12-3456', '666-12-3456', '912-34-5678', '123-00-4567', '123-45-0000', '078-05-1120', '2023-01-15', '1123-45-6789', '123-45-67890', 'A123-45-6789'])
      expect(hits(findUsSsns, s), s).toEqual([]);
  });
});

describe('IBAN', () => {
  it('finds valid IBANs, compact or grouped', () => {
    for (const n of ['DE89 3704 0044 0532 0130 00', 'GB82WEST12345698765432', 'FR1420041010050500013M02606', 'NL91ABNA0417164300']) {
      expect(hits(findIbans, `iban ${n} ok`), n).toEqual([n]);
    }
    expect(ibanValid('GB82WEST12345698765432')).toBe(true);
  });
  it('rejects bad check digits, wrong lengths and unknown countries', () => {
    for (const s of ['DE89370400440532013001', 'GB82WEST1234569876543', 'GB82WEST123456987654321', 'ZZ82WEST12345698765432', 'de89370400440532013000']) expect(hits(findIbans, s), s).toEqual([]);
  });
});

/** Over 100,000 strings of `piece`s: the characters `find`'s spans cover are exactly those some window `valid` accepts covers. */
function againstReference(
  seed: number,
  piece: (next: () => number) => string,
  find: (s: string) => Array<{ start: number; end: number }>,
  valid: (s: string, a: number, b: number) => boolean,
  longest: number,
): number {
  const r = new Random(seed);
  const next = (): number => r.int(2 ** 32) / 2 ** 32;
  let found = 0;
  for (let t = 0; t < TRIALS; t++) {
    const s = Array.from({ length: 1 + Math.floor(next() * 6) }, () => piece(next)).join('');
    const want = new Set<number>();
    for (let a = 0; a < s.length; a++) for (let b = a + 1; b <= Math.min(s.length, a + longest); b++) if (valid(s, a, b)) for (let k = a; k < b; k++) want.add(k);
    const got = new Set<number>();
    for (const m of find(s)) for (let k = m.start; k < m.end; k++) got.add(k);
    const missed = [...want].filter((k) => !got.has(k));
    const extra = [...got].filter((k) => !want.has(k));
    if (missed.length > 0 || extra.length > 0) expect({ text: s, missed, extra }).toEqual({ text: s, missed: [], extra: [] });
    found += want.size > 0 ? 1 : 0;
  }
  return found;
}

const alnum = (c: string | undefined): boolean => c !== undefined && /^[0-9A-Za-z]$/.test(c);

describe('each detector against a slow reference (every window its grammar accepts, its ends as it says)', () => {
  it('email: every window that is local@domain, the local part the whole run before the @', () => {
    const local = /^[A-Za-z0-9_%+-][A-Za-z0-9._%+-]{0,63}$/;
    const label = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;
    const valid = (s: string, a: number, b: number): boolean => {
      const w = s.slice(a, b);
      const at = w.indexOf('@');
      if (at < 0 || w.indexOf('@', at + 1) >= 0 || !local.test(w.slice(0, at)) || /[A-Za-z0-9._%+-]/.test(s[a - 1] ?? ' ')) return false;
      const labels = w.slice(at + 1).split('.');
      if (labels.length < 2 || !labels.every((l) => label.test(l)) || !/^[A-Za-z]{2,63}$/.test(labels.at(-1)!) || w.length > 254) return false;
      return !alnum(s[b]) && !(s[b] === '.' && alnum(s[b + 1]));
    };
    const piece = (next: () => number): string => {
      const r = next();
      if (r < 0.2) return ['alice@example.com', 'b.o-b+x@mail.ex-ample.co.uk', 'c@d.io', 'x_y%z@a1.b2.org'][Math.floor(next() * 4)]!;
      if (r < 0.5) return ['ab', 'x1', 'com', 'org-', 'a-b', 'Q'][Math.floor(next() * 6)]!;
      return '@.-_+% ,;:'[Math.floor(next() * 10)]!;
    };
    expect(againstReference(74, piece, findEmails, valid, 80)).toBeGreaterThan(TRIALS / 10);
  });

  it('US SSN: every window NNN-NN-NNNN of an issued number, touching no letter, digit or dash', () => {
    const valid = (s: string, a: number, b: number): boolean => {
      const m = /^(\d{3})-(\d{2})-(\d{4})$/.exec(s.slice(a, b));
      if (!m || /[0-9A-Za-z-]/.test(s[a - 1] ?? ' ') || /[0-9A-Za-z-]/.test(s[b] ?? ' ')) return false;
      const [, area, group, serial] = m as unknown as [string, string, string, string];
      return area !== '000' && area !== '666' && area[0] !== '9' && group !== '00' && serial !== '0000' && m[0] !== '078-05-1120' && m[0] !== '219-09-9999';
    };
    const piece = (next: () => number): string => {
      const r = next();
      if (r < 0.25) return ['123-45-6789', '536-90-4399', '666-12-3456', '078-05-1120'][Math.floor(next() * 4)]!;
      if (r < 0.6) return String(Math.floor(next() * 10 ** (1 + Math.floor(next() * 4))));
      return ' -/a.:'[Math.floor(next() * 6)]!;
    };
    expect(againstReference(75, piece, findUsSsns, valid, 12)).toBeGreaterThan(TRIALS / 20);
  });

  it('IBAN: every window of a known length and MOD 97-10, its groups split by single spaces, touching no letter or digit, no digit group after it', () => {
    const valid = (s: string, a: number, b: number): boolean => {
      const w = s.slice(a, b);
      if (!/^[A-Z]{2}\d{2}(?: ?[A-Z0-9])+$/.test(w) || alnum(s[a - 1]) || alnum(s[b]) || (s[b] === ' ' && /\d/.test(s[b + 1] ?? ''))) return false;
      return ibanValid(w.replaceAll(' ', ''));
    };
    const piece = (next: () => number): string => {
      const r = next();
      if (r < 0.25) {
        const iban = ['DE89370400440532013000', 'GB82WEST12345698765432', 'NL91ABNA0417164300', 'FR1420041010050500013M02606'][Math.floor(next() * 4)]!;
        return next() < 0.5 ? iban : iban.replace(/(.{4})(?=.)/g, '$1 ');
      }
      if (r < 0.55) return ['DE', '12', 'GB82', 'AB', '7', 'x'][Math.floor(next() * 6)]!;
      return ' -/.:'[Math.floor(next() * 5)]!;
    };
    expect(againstReference(76, piece, findIbans, valid, 45)).toBeGreaterThan(TRIALS / 10);
  });
});

describe('long texts', () => {
  it('are masked in a worker thread, and maskText answers as it would on the event loop', async () => {
    const long = 'mail bob@example.com, card 4111 1111 1111 1111, ssn 536-90-4399. '.repeat(2000);
    const rules = new MaskingRules(
      {
        detectors: [
          { detector: 'email', strategy: 'hash' },
          { detector: 'payment-card', strategy: 'last4' },
          { detector: 'us-ssn', strategy: 'redact' },
        ],
      },
      'k',
    );
    const masked = await maskAhead([long, 'short bob@example.com'], rules);
    expect([...masked.keys()]).toEqual([long]);
    const ahead = rules.withMasked(masked, () => rules.maskText(long));
    // Answered from what the worker made, the same as on the loop; lent only while withMasked runs.
    expect(ahead).toBe(masked.get(long));
    expect(ahead.text).toBe(`mail ${keyedHash('bob@example.com', 'k')}, card **** **** **** 1111, ssn [redacted]. `.repeat(2000));
    const onLoop = rules.maskText(long);
    expect(onLoop).not.toBe(ahead);
    expect(onLoop).toEqual(ahead);
  });

  it("in an agent's MCP line are written down with what the detectors find as keyed hashes by the worker, as on the loop", async () => {
    const rules = new MaskingRules({ detectors: [{ detector: 'payment-card', strategy: 'last4' }] }, 'k');
    const written: string[] = [];
    const recorder = new McpRecorder(
      { record: (_kind: number, _at: number, b: Buffer, from: number, to: number) => void written.push(b.toString('utf8', from, to)) } as never,
      rules,
      Buffer.from('k'),
    );
    const line = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', arguments: { note: 'card 4111 1111 1111 1111; '.repeat(4000) } } });
    const read = recorder.agentLine(line);
    expect(read).toBeInstanceOf(Promise);
    expect((await ticksWhile(read as Promise<void>)).ticks).toBeGreaterThan(0);
    expect(written).toHaveLength(1);
    expect(written[0]).toBe(redactedLine(line, rules, Buffer.from('k')));
    expect(written[0]).not.toContain('4111');
    // A short line is written at once.
    expect(recorder.agentLine('{"jsonrpc":"2.0","method":"x"}')).toBeUndefined();
    expect(written).toHaveLength(2);
  });

  it("in an MCP server's answer are masked in the worker, as written and as a reader of escapes reads them, and come out as short ones do", async () => {
    const rules = new MaskingRules({ detectors: [{ detector: 'payment-card', strategy: 'last4' }] }, 'k');
    const stage = new McpMasking(rules, undefined);
    const unit = 'card 4111 1111 1111 1111 and \\u0035555555555554444; ';
    const answer = (text: string) => ({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text }], structuredContent: { [text]: 1 } } });
    const short = stage.toAgent(answer(unit), { method: 'tools/call' } as never) as ReturnType<typeof answer>;
    expect(short.result.content[0]!.text).toBe('card **** **** **** 1111 and ************4444; ');
    const read = stage.toAgent(answer(unit.repeat(3000)), { method: 'tools/call' } as never);
    // A Promise while the worker masks it: the loop turns meanwhile (on the loop, it would not).
    expect(read).toBeInstanceOf(Promise);
    const { value, ticks } = await ticksWhile(read as Promise<ReturnType<typeof answer>>);
    expect(ticks).toBeGreaterThan(0);
    expect(value).toEqual(answer(short.result.content[0]!.text.repeat(3000)));
  });

  it('in an MCP answer, a JSON number of 64 KiB of digits and more is read in the worker as its text is', async () => {
    const stage = new McpMasking(new MaskingRules({ detectors: [{ detector: 'payment-card', strategy: 'last4' }] }, 'k'), undefined);
    const digits = '1'.repeat(70_000);
    const raw = parseJson(`{"jsonrpc":"2.0","id":1,"result":{"structuredContent":{"n":${digits}}}}`) as Record<string, unknown>;
    const read = stage.toAgent(raw, { method: 'tools/call' } as never);
    expect(read).toBeInstanceOf(Promise);
    expect(jsonText(await read)).toBe(`{"jsonrpc":"2.0","id":1,"result":{"structuredContent":{"n":${digits}}}}`);
  });
});

describe('secrets and tokens', () => {
  const jwt = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
  const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----';
  it('finds vendor tokens, JWTs and PEM private keys', () => {
    for (const t of [
      jwt,
      'AKIAIOSFODNN7EXAMPLE',
      `ghp_${'a1B2'.repeat(9)}`,
      `github_pat_11ABCDEFG0123456789_${'x'.repeat(40)}`,
      'xoxb-123456789012-123456789012-abcdefABCDEF',
      'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
      pem,
    ]) {
      expect(hits(findSecretTokens, `token=${t} end`), t).toEqual([t]);
    }
    expect(hits(findSecretTokens, `x ${pem.slice(0, 50)}`)).toEqual([pem.slice(0, 50)]);
  });
  it('finds every anonymous base64 and hex run a plain scan finds (whole runs, their padding, the randomness test) over 40,000 generated strings, and nothing else', () => {
    const r = new Random(41);
    const base64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-';
    const inRun = (c: string | undefined, alphabet: RegExp): boolean => c !== undefined && alphabet.test(c);
    /** Each maximal run of `alphabet` at least `min` long, read one character at a time. */
    const runs = (s: string, alphabet: RegExp, min: number): Array<[number, number]> => {
      const out: Array<[number, number]> = [];
      for (let i = 0; i < s.length; i++) {
        if (!inRun(s[i], alphabet) || inRun(s[i - 1], alphabet)) continue;
        let j = i;
        while (inRun(s[j], alphabet)) j++;
        if (j - i >= min) out.push([i, j]);
      }
      return out;
    };
    const reference = (s: string): string[] => {
      const found: Array<[number, number]> = [];
      for (const [i, j] of runs(s, /[A-Za-z0-9+/_-]/, 40)) {
        const end = s.slice(j, j + 2).startsWith('==') ? j + 2 : s[j] === '=' ? j + 1 : j;
        if (looksRandom(s.slice(i, end))) found.push([i, end]);
      }
      for (const [i, j] of runs(s, /[A-Za-z0-9]/, 48)) if (/^[0-9a-fA-F]+$/.test(s.slice(i, j)) && looksRandom(s.slice(i, j))) found.push([i, j]);
      found.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
      const merged: Array<[number, number]> = [];
      for (const [i, j] of found) {
        const last = merged.at(-1);
        if (last && i < last[1]) last[1] = Math.max(last[1], j);
        else merged.push([i, j]);
      }
      return merged.map(([i, j]) => s.slice(i, j));
    };
    let seen = 0;
    for (let t = 0; t < TRIALS; t++) {
      let s = '';
      // Runs of 30 to 69 characters of either alphabet (hex too), and what may stand between them.
      for (let p = r.int(8); p >= 0; p--) {
        if (r.int(2) === 0) {
          const alphabet = r.int(3) === 0 ? '0123456789abcdef' : base64;
          for (let n = 30 + r.int(40); n > 0; n--) s += alphabet[r.int(alphabet.length)];
        } else s += ['=', '==', ' ', '.', ':', 'é', '\u200b', 'Q'][r.int(8)];
      }
      const want = reference(s);
      if (want.length > 0) seen++;
      expect(hits(findSecretTokens, s), s).toEqual(want);
    }
    expect(seen).toBeGreaterThan(TRIALS / 5);
  });
  it('finds random base64 and hex runs', () => {
    // Random-looking bytes, the same on every run (a detector that misses 1 in 100 random tokens must not make the suite flaky).
    const bytes = (i: number, n: number): Buffer => createHash('sha512').update(`token ${i}`).digest().subarray(0, n);
    let found = 0;
    for (let i = 0; i < 200; i++) if (findSecretTokens(`k=${bytes(i, 36).toString('base64')}`).length === 1) found++;
    expect(found).toBeGreaterThanOrEqual(195);
    for (let i = 0; i < 20; i++) expect(findSecretTokens(bytes(i, 32).toString('hex'))).toHaveLength(1);
  });
  it('leaves words, identifiers, git ids, UUIDs and paths alone', () => {
    for (const s of [
      'internationalizationAndLocalizationSupport1',
      'ThisIsAVeryLongCamelCaseIdentifierName123',
      'da39a3ee5e6b4b0d3255bfef95601890afd80709',
      '123e4567-e89b-12d3-a456-426614174000',
      '/home/user123/projects/hoop/src/policy/masking/detectors',
      'AKIAIOSFODNN7EXAMPLEX',
      'ghp_short',
      '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----',
    ]) {
      expect(findSecretTokens(s), s).toEqual([]);
    }
    expect(looksRandom('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')).toBe(false);
  });
});

describe('detect', () => {
  it('returns sorted, non-overlapping matches from several detectors', () => {
    const s = 'alice@example.com paid with 4111 1111 1111 1111, ssn 123-45-6789';
    expect(detect(s, ['payment-card', 'email', 'us-ssn']).map((m) => m.detector)).toEqual(['email', 'payment-card', 'us-ssn']);
    expect(detect(s, ['email'])).toHaveLength(1);
    expect(detect('short', ['email'])).toEqual([]);
  });
});

describe('strategies', () => {
  it('last4 keeps separators and the last four letters or digits', () => {
    expect(last4('4111 1111 1111 1111')).toBe('**** **** **** 1111');
    expect(last4('123-45-6789')).toBe('***-**-6789');
    expect(last4('alice@example.com')).toBe('*****@******e.com');
    expect(last4('abc')).toBe('***');
  });
  it('hash is keyed, stable, fixed-length and prefixed', () => {
    const a = keyedHash('alice@example.com', 'k1');
    expect(a).toMatch(/^h:[0-9a-f]{16}$/);
    expect(keyedHash('alice@example.com', 'k1')).toBe(a);
    expect(keyedHash('alice@example.com', 'k2')).not.toBe(a);
    expect(keyedHash('bob@example.com', 'k1')).not.toBe(a);
  });
  it('null is NULL only for whole fields; redact without a key for hash', () => {
    expect(applyStrategy('x', 'null', 'k', true)).toBeNull();
    expect(applyStrategy('x', 'null', 'k', false)).toBe('[redacted]');
    expect(applyStrategy('x', 'redact', 'k', true)).toBe('[redacted]');
    expect(applyStrategy('x', 'hash', undefined, true)).toBe('[redacted]');
  });
});

describe('MaskingRules', () => {
  const rules = new MaskingRules({
    key: 'secret-key',
    columns: [
      { table: 'public.customers', column: 'email', strategy: 'redact' },
      { table: 'billing.*', column: '*', strategy: 'null' },
      { table: 'accounts', column: 'iban', strategy: 'last4' },
    ],
    names: [{ pattern: '^(ssn|social_security)', strategy: 'last4' }],
    detectors: [
      { detector: 'payment-card', strategy: 'last4' },
      { detector: 'email', strategy: 'hash' },
    ],
  });
  it('matches by origin, with globs and schema-less tables', () => {
    expect(rules.forOrigin({ schema: 'public', table: 'customers', column: 'EMAIL' })).toBe('redact');
    expect(rules.forOrigin({ schema: 'public', table: 'customers', column: 'notes' })).toBeUndefined();
    expect(rules.forOrigin({ schema: 'billing', table: 'cards', column: 'x' })).toBe('null');
    expect(rules.forOrigin({ schema: 'other', table: 'accounts', column: 'iban' })).toBe('last4');
    expect(rules.tableHasRules('public', 'customers')).toBe(true);
    expect(rules.tableHasRules('public', 'items')).toBe(false);
  });
  it('matches by name, case-insensitively', () => {
    expect(rules.forName('SSN_last')).toBe('last4');
    expect(rules.forName('my_ssn')).toBeUndefined();
  });
  it('masks text by content, hashing cards without separators', () => {
    const r = rules.maskText('pay 4111-1111-1111-1111 from bob@example.com');
    expect(r.text).toBe(`pay ****-****-****-1111 from ${keyedHash('bob@example.com', 'secret-key')}`);
    expect(r.changed).toBe(true);
    expect(rules.maskText('nothing here').changed).toBe(false);
  });

  it("reads an MCP result's numbers as well as its strings: a card sent as a JSON number comes back masked", () => {
    const result = JSON.parse('{"structuredContent":{"card":4111111111111111,"cards":[5555555555554444],"total":42.5},"content":[{"type":"text","text":"4111111111111111"}]}');
    expect(mapStrings(result, (s) => rules.maskText(s).text)).toEqual({
      structuredContent: { card: '************1111', cards: ['************4444'], total: 42.5 },
      content: [{ type: 'text', text: '************1111' }],
    });
  });

  it('reads a number past a double as written: a 19-digit card sent as a number is masked, a 20-digit id comes back whole', () => {
    const result = parseJson('{"structuredContent":{"card":4111111111111111110,"id":12345678901234567890}}');
    expect(jsonText(mapStrings(result, (s) => rules.maskText(s).text))).toBe('{"structuredContent":{"card":"***************1110","id":12345678901234567890}}');
    // What the recording keeps of an agent's line that sends one.
    const line = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","arguments":{"card":4111111111111111110,"ref":12345678901234567890}}}';
    const kept = redactedLine(line, rules, Buffer.from('k'));
    expect(kept).not.toContain('4111111111111111110');
    expect(kept).toContain('"ref":12345678901234567890');
  });

  it('reads a number as the digits of its value, however it is spelt (an integer mantissa, a negative exponent: the thirteenth attack), in results and in requests', () => {
    const cards = new MaskingRules({ key: 'k', columns: [], names: [], detectors: [{ detector: 'payment-card', strategy: 'redact' }] } as never);
    const stage = new McpMasking(cards, undefined);
    for (const n of ['4111111111111111e0', '4111111111111111E+0', '41111111111111110e-1', '4111111111111111000e-3', '-5555555555554444e0', '4111111111111111.0']) {
      // In a text, only the exponent forms are read otherwise than written.
      const inText = /e/i.test(n) ? `{\\"card\\": ${n}}` : 'no card';
      const raw = parseJson(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${inText}"}],"structuredContent":{"n":${n}}}}`) as Record<string, unknown>;
      expect(jsonText(stage.toAgent(raw, { method: 'tools/call' } as never)), n).not.toContain(n);
      if (/e/i.test(n)) expect(detectInField(Buffer.from(`[${n}]`), { typeOid: 114, format: 0 }, cards), n).not.toBeUndefined();
      const line = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"n":${n}}}}`;
      expect(redactedLine(line, cards, Buffer.from('k')), n).not.toContain(n);
      expect(redactDetected(`4111 ${n}`, { detectors: ['payment-card'] }).text, n).not.toContain(n);
    }
    // Numbers that are no card stay as they are.
    expect(jsonText(stage.toAgent(parseJson('{"jsonrpc":"2.0","id":1,"result":{"n":42.5,"m":1e400}}') as Record<string, unknown>, { method: 'tools/call' } as never))).toBe(
      '{"jsonrpc":"2.0","id":1,"result":{"n":42.5,"m":1e400}}',
    );
  });

  it("folds every code point as the reference does (the fold's cache and its ASCII shortcut change nothing)", () => {
    const reference = (ch: string): string =>
      /^[\p{Default_Ignorable_Code_Point}\p{Pd}\u2212\p{Zs}\p{No}\p{So}\u2024-\u2026\uFE50-\uFE6B\uFF01-\uFF5E\u{1D400}-\u{1D7FF}\u{1FBF0}-\u{1FBF9}]$/u.test(ch)
        ? /^\p{Default_Ignorable_Code_Point}$/u.test(ch)
          ? ''
          : /^[\p{Pd}\u2212]$/u.test(ch)
            ? '-'
            : ch.normalize('NFKC')
        : ch;
    const wrong: string[] = [];
    for (let cp = 0; cp <= 0x1ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const ch = String.fromCodePoint(cp);
      const want = `a${reference(ch)}b`;
      const got = readerView(`a${ch}b`)?.text ?? `a${ch}b`;
      if (got !== want) wrong.push(cp.toString(16));
    }
    expect(wrong).toEqual([]);
  });

  it('reads text as a reader sees it: invisible characters between groups, fullwidth and mathematical digits, other dashes and spaces, a fullwidth @ (the thirteenth attack)', () => {
    const all = new MaskingRules({
      key: 'k',
      columns: [],
      names: [],
      detectors: [
        { detector: 'payment-card', strategy: 'last4' },
        { detector: 'us-ssn', strategy: 'redact' },
        { detector: 'email', strategy: 'redact' },
      ],
    } as never);
    for (const [text, masked] of [
      ['card 4111\u200b1111\u200b1111\u200b1111 ok', 'card ****\u200b****\u200b****\u200b1111 ok'],
      ['card 4111\u00ad1111\u2060 1111 1111.', 'card ****\u00ad****\u2060 **** 1111.'],
      ['card ４１１１ １１１１ １１１１ １１１１.', 'card **** **** **** １１１１.'],
      ['x 𝟒𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏 y', 'x ************𝟏𝟏𝟏𝟏 y'],
      ['card 4111\u30001111\u30001111\u30001111', 'card ****\u3000****\u3000****\u30001111'],
      ['ssn 123\u201145\u20116789 z', 'ssn [redacted] z'],
      ['ssn 123\u221245\u22126789 z', 'ssn [redacted] z'],
      ['mail bob＠example.com x', 'mail [redacted] x'],
      // The second attack: segmented digits, small forms, mathematical letters.
      [
        'card \u{1FBF4}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}',
        'card ************\u{1FBF1}\u{1FBF1}\u{1FBF1}\u{1FBF1}',
      ],
      ['mail john\uFE6Bexample\uFE52com x', 'mail [redacted] x'],
      ['mail 𝐣𝐨𝐡𝐧@example.com x', 'mail [redacted] x'],
    ])
      expect(all.maskText(text!).text, text).toBe(masked);
    // Two cards read one as written and one as a reader sees it, overlapping: one span, never last4 of each (the third attack showed 8 digits).
    expect(all.maskText('ａ4000 0000 4111 1115\u200b 1234 5672').text).toBe('ａ**** **** **** ****\u200b **** 5672');
    // A digit of any form before a run is part of the number (no card at the tail of a longer one).
    expect(detect('a１4111111111111111', ['payment-card'])).toEqual([]);
    // Linear: only the characters that may read otherwise are looked at (2 M ideographs and a card).
    const big = `${'中'.repeat(2_000_000)}4111\u200b1111\u200b1111\u200b1111`;
    expect(all.maskText(big).text.endsWith('****\u200b****\u200b****\u200b1111')).toBe(true);
  });

  it("reads what an MCP server asks the agent's model (a sampling's messages, an elicitation), as it reads a result", () => {
    const stage = new McpMasking(rules, undefined);
    const ask = { jsonrpc: '2.0', id: 'ask-1', method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: 'summarise: 4111 1111 1111 1111' } }] } };
    expect(JSON.stringify(stage.toAgent(ask, undefined))).not.toContain('4111 1111');
    const elicit = { jsonrpc: '2.0', id: 2, method: 'elicitation/create', params: { message: 'confirm card 5555555555554444' } };
    expect(JSON.stringify(stage.toAgent(elicit, undefined))).not.toContain('5555555555554444');
  });

  it("reads an error answer to any request as it reads a result: a server's error that echoes what the agent sent (a helper's attack: logging/setLevel, a cursor, a subscription)", () => {
    const stage = new McpMasking(rules, undefined);
    for (const method of ['logging/setLevel', 'tools/list', 'resources/subscribe', 'initialize']) {
      const error = { jsonrpc: '2.0', id: 3, error: { code: -32602, message: 'Invalid level: 4111 1111 1111 1111', data: { input: '4111111111111111' } } };
      expect(JSON.stringify(stage.toAgent(error, { method } as never)), method).not.toMatch(/4111 1111 1111 1111|4111111111111111/);
    }
  });
});

describe('cards as people, programs and readers of escapes write them (the tenth and eleventh attacks)', () => {
  const cardRules = (strategy: string): MaskingRules => new MaskingRules({ key: 'k', columns: [], names: [], detectors: [{ detector: 'payment-card', strategy }] } as never);
  const cardRulesOf = (detectors: readonly string[]): MaskingRules =>
    new MaskingRules({ key: 'k', columns: [], names: [], detectors: detectors.map((detector) => ({ detector, strategy: 'last4' })) } as never);
  it('finds a card grouped by no-break or thin spaces, dots, runs of blanks, or in fullwidth digits, and hashes each as its digits', () => {
    for (const s of ['4111\u00a01111\u00a01111\u00a01111', '4111\u20131111\u20131111\u20131111', '4111\u202f1111\u202f1111\u202f1111', '４１１１１１１１１１１１１１１１'])
      expect(hits(findPaymentCards, `card ${s} ok`), s).toEqual([s]);
    const hashed = cardRules('hash');
    expect(hashed.maskText('4111\u00a01111\u00a01111\u00a01111').text).toBe(hashed.maskText('４１１１ 1111-1111 1111').text);
    // Not coordinates, columns of numbers or dotted versions (the eleventh attack: a dot and runs of blanks masked 10.7% of coordinate pairs).
    for (const s of ['London 51.507351 -0.127758', '55.676098 12.568337', '1234  5678  9012  3456', '4111.1111.1111.1111', '4111\t1111\t1111\t1111']) expect(hits(findPaymentCards, s), s).toEqual([]);
  });

  it('reads no card in an IBAN (the twelfth attack: 8-28% of valid German, French, British and Polish IBANs were masked as cards)', () => {
    const r = new Random(12);
    const iban = (): string => {
      const bban = Array.from({ length: 18 }, () => String(r.int(10))).join('');
      const check = 98n - (BigInt(`${bban}131400`) % 97n);
      return `DE${String(check).padStart(2, '0')}${bban}`.replace(/(.{4})(?=.)/g, '$1 ');
    };
    let inside = 0;
    for (let i = 0; i < 2000; i++) {
      const text = `IBAN ${iban()} ok`;
      if (findPaymentCards(text).length > 0) inside++;
      expect(detect(text, ['payment-card']), text).toEqual([]);
    }
    expect(inside).toBeGreaterThan(20);
    // A card beside one is still a card, and one an IBAN-shaped prefix runs into (the thirteenth attack).
    expect(detect(`card 4111 1111 1111 1111, IBAN ${iban()}`, ['payment-card'])).toHaveLength(1);
    for (const text of ['NO69 8601 111 4111 1111 1111 1111', 'pay BE78 1234 5678 5555 5555 5555 4444 today']) {
      for (const on of [['payment-card'], ['payment-card', 'iban'], ['iban', 'payment-card']] as const)
        expect(cardRulesOf(on).maskText(text).text, `${text} ${on}`).not.toMatch(/4111 1111 1111 1111|5555 5555 5555 4444/);
    }
  });

  it("reads an MCP result's text as a reader of its escapes does: a card spelt with JSON's \\u escapes comes back masked", () => {
    const stage = new McpMasking(cardRules('last4'), undefined);
    const spelt = (f: (d: string) => string): string => [...'4111111111111111'].map(f).join('');
    const hex = (d: string): string => (0x30 + Number(d)).toString(16);
    for (const text of [
      'carol {"card":"\\u0034111111111111111"}',
      spelt((d) => `&#X${hex(d)};`),
      spelt((d) => `&#0000${0x30 + Number(d)};`),
      spelt((d) => `&#${0x30 + Number(d)}`),
      spelt((d) => `\\uff1${d}`),
      spelt((d) => `\\x${hex(d)}`),
      spelt((d) => `\\u{${hex(d)}}`),
      spelt((d) => `%${hex(d)}`),
      // Groups joined by an encoded space or dash (the twelfth attack).
      ...['&nbsp;', '&#160;', '&ndash;', '\\u00a0', '\\u2013', '%C2%A0'].map((gap) => ['4111', '1111', '1111', '1111'].join(gap)),
    ]) {
      const answer = JSON.stringify(stage.toAgent({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text }] } }, { method: 'tools/call', tool: 'read_text_file' } as never));
      expect(answer, text).not.toContain(text.slice(0, 40));
      expect(answer, text).toMatch(/1111|１１１１/);
    }
  });
});

describe('values of tens of megabytes without a blank', () => {
  it('end in a decision, not a stack overflow: each detector, and a token found at the end of such a run', () => {
    const detectors = { findPaymentCards, findEmails, findUsSsns, findIbans, findSecretTokens };
    const token = createHash('sha512').update('long').digest().subarray(0, 36).toString('base64');
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl';
    // Two million characters: far deeper than any stack a recursion over them could take.
    for (const value of ['a'.repeat(2e6), '4'.repeat(2e6), `eyJ${'a'.repeat(2e6)}.${'b'.repeat(10)}.c`, 'x1-/'.repeat(5e5), `a@b${'.cc'.repeat(5e5)}`]) {
      for (const [name, find] of Object.entries(detectors)) expect(() => find(value), `${name} on ${value.slice(0, 8)}…`).not.toThrow();
    }
    expect(hits(findSecretTokens, `${'x1-'.repeat(7e5)} ${token} ${jwt}`)).toEqual([token, jwt]);
    expect(findSecretTokens(`eyJ${'a'.repeat(2e6)}.${'b'.repeat(10)}.c`)).toHaveLength(1);
  });
});

describe('many matches', () => {
  it('finds every match of a value that holds more than a call can take as arguments', () => {
    const text = '4111 1111 1111 1111 '.repeat(200_000);
    expect(detect(text, ['payment-card'])).toHaveLength(200_000);
  });
});

describe("a result's value as its client reads it (the seventh attack)", () => {
  it('finds a card in text-format bytea, a float in its exponent form, money, and a json string with escapes, as in their binary forms', () => {
    const rules = new MaskingRules({ columns: [], names: [], detectors: [{ detector: 'payment-card', strategy: 'last4' }] } as never);
    const card = Buffer.from('4111 1111 1111 1111');
    const f8 = Buffer.alloc(8);
    f8.writeDoubleBE(4111111111111111);
    expect(detectInField(f8, { typeOid: 701, format: 1 }, rules)).toBeNull();
    expect(detectInField(Buffer.from('4.111111111111111e+15'), { typeOid: 701, format: 0 }, rules)).toBeNull();
    expect(detectInField(card, { typeOid: 17, format: 1 }, rules)).toBeNull();
    expect(detectInField(Buffer.from(`\\x${card.toString('hex')}`), { typeOid: 17, format: 0 }, rules)).toBeNull();
    expect(detectInField(Buffer.from('$4,111,111,111,111,111.00'), { typeOid: 790, format: 0 }, rules)).toBeNull();
    expect(detectInField(Buffer.from('{"c": "\\u0034111 1111 1111 1111"}'), { typeOid: 114, format: 0 }, rules)?.toString()).toBe('{"c": "**** **** **** 1111"}');
    // A number in JSON read as a JSON parser reads it (the fifteenth attack: to_json(pan) gave psycopg2 the card), and a match inside one withholds the value: masked there, it is no JSON.
    for (const [json, oid] of [
      ['{"n": 4111111111111111}', 3802],
      ['{"pan": 4.111111111111111e+15}', 114],
      ['[4.111111111111111e15]', 114],
    ] as const)
      expect(detectInField(Buffer.from(json), { typeOid: oid, format: 0 }, rules), json).toBeNull();
    // What holds no card stays as it is.
    expect(detectInField(Buffer.from('1.5e+300'), { typeOid: 701, format: 0 }, rules)).toBeUndefined();
    expect(detectInField(Buffer.from('\\x00ff10'), { typeOid: 17, format: 0 }, rules)).toBeUndefined();
    expect(detectInField(Buffer.from('{"q": "\\u0022x\\u0022"}'), { typeOid: 114, format: 0 }, rules)).toBeUndefined();
  });
});

describe("a result's value as its client reads it (the eighth attack)", () => {
  it('finds a card in an array or record of bytea or float8, a range, and an XML character reference', () => {
    const rules = new MaskingRules({
      columns: [],
      names: [],
      detectors: [
        { detector: 'payment-card', strategy: 'last4' },
        { detector: 'email', strategy: 'redact' },
      ],
    } as never);
    const hex = Buffer.from('4111 1111 1111 1111').toString('hex');
    for (const [oid, text] of [
      [1001, `{"\\\\x${hex}"}`],
      [1022, '{4.111111111111111e+15}'],
      [2249, '(4.111111111111111e+15)'],
      [2249, `("\\\\x${hex}")`],
      [3906, '[4.111111111111111e+15,)'],
    ] as const) {
      expect(detectInField(Buffer.from(text), { typeOid: oid, format: 0 }, rules), text).toBeNull();
    }
    expect(detectInField(Buffer.from('<a>&#52;111111111111111</a>'), { typeOid: 142, format: 0 }, rules)?.toString()).toBe('<a>************1111</a>');
    expect(detectInField(Buffer.from('<a>alice&#64;example.com</a>'), { typeOid: 142, format: 0 }, rules)?.toString()).not.toContain('example.com');
    expect(detectInField(Buffer.from('{1.5,2.25}'), { typeOid: 1022, format: 0 }, rules)).toBeUndefined();
  });
});
