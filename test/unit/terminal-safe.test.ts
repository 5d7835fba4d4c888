/**
 * Text others wrote, printed on a terminal: escapes, carriage returns and bidirectional overrides
 * become visible, in review pages and in session transcripts alike.
 */
import { describe, expect, it } from 'vitest';
import { TranscriptRenderer } from '../../src/ui/transcript.js';
import { oneLine } from '../../src/ui/review-lines.js';
import { statementSafe, terminalSafe } from '../../src/ui/terminal-safe.js';
import { reviewText } from '../../src/ui/review-lines.js';

describe('terminalSafe', () => {
  it('shows controls, DEL, C1 and bidi overrides as escapes; keeps newlines, tabs and other text', () => {
    expect(terminalSafe('a\r\x1b[2Kb\x07\x7f\x9b')).toBe('a\\x0d\\x1b[2Kb\\x07\\x7f\\x9b');
    expect(terminalSafe('if (admin) \u202e } \u2066')).toBe('if (admin) \\u202e } \\u2066');
    // Invisible characters: zero-width space and joiner, word joiner, byte-order mark, soft hyphen, line separator.
    expect(terminalSafe('a\u200bb\u200dc\u2060d\ufeffe\u00adf\u2028g')).toBe('a\\u200bb\\u200dc\\u2060d\\ufeffe\\xadf\\u2028g');
    expect(terminalSafe('select 1;\n\tnaïve — 日本 🚀')).toBe('select 1;\n\tnaïve — 日本 🚀');
  });

  it('shows what a renderer may draw as nothing: fillers (the "invisible backdoor" U+3164), tags, variation selectors, the braille blank, private and unassigned code points', () => {
    expect(terminalSafe('const { timeout,\u3164 } = q;')).toBe('const { timeout,\\u3164 } = q;');
    expect(terminalSafe('\u115f\uffa0\u034f\u2800\ufe0f\u{e0072}\ue000\u{10ffff}\ud800')).toBe('\\u115f\\uffa0\\u034f\\u2800\\ufe0f\\u{e0072}\\ue000\\u{10ffff}\\ud800');
    // Every code point is either shown as an escape or is one a terminal draws.
    const drawn = /[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}\n\t]/u;
    for (let cp = 0; cp <= 0x10ffff; cp += cp < 0x30000 ? 1 : 0x101) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      if (terminalSafe(c) === c && !drawn.test(c)) expect.fail(`U+${cp.toString(16)} is printed as it is`);
    }
  });

  it('shows every space but U+0020 as an escape: a no-break space is a letter to PostgreSQL (DELETE … WHERE\u00a0NOT\u00a0settled deletes every row)', () => {
    expect(terminalSafe('DELETE FROM ledger WHERE\u00a0NOT\u00a0settled')).toBe('DELETE FROM ledger WHERE\\xa0NOT\\xa0settled');
    for (const space of ['\u1680', '\u2000', '\u2007', '\u200a', '\u202f', '\u205f', '\u3000']) expect(terminalSafe(`a${space}b`)).not.toContain(space);
  });

  it('reads back as one text only: 20,000 generated texts of backslashes, escapes typed and characters escaped decode to themselves', () => {
    /** The reading of what terminalSafe shows: \\ is a backslash, \xHH, \uHHHH and \u{H…} a character, any other backslash itself. */
    const decode = (shown: string): string =>
      shown.replace(/\\(?:\\|x([0-9a-f]{2})|u([0-9a-f]{4})|u\{([0-9a-f]+)\})/g, (whole, x?: string, u?: string, big?: string) =>
        whole === '\\\\' ? '\\' : String.fromCodePoint(Number.parseInt((x ?? u ?? big)!, 16)),
      );
    const alphabet = ['\\', 'x', 'u', '0', 'd', 'a', '{', '}', '\r', '\u00a0', '\u202e', ' ', 'n', '\u{e0072}', '\n'];
    let seed = 9;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 20_000; i++) {
      const text = Array.from({ length: 1 + next(12) }, () => alphabet[next(alphabet.length)]).join('');
      expect({ text, shown: decode(terminalSafe(text)) }).toEqual({ text, shown: text });
    }
    // The reviewer's two lines that read alike: a typed \x0d and a carriage return.
    expect(terminalSafe('-- was: \\x0d; DELETE')).not.toBe(terminalSafe('-- was: \r; DELETE'));
    // Backslashes that start no escape stay as written.
    expect(terminalSafe("select E'a\\nb', '\\d'")).toBe("select E'a\\nb', '\\d'");
  });

  it('is applied to every transcript line: statements, rows, errors', () => {
    const r = new TranscriptRenderer();
    const lines = [
      ...r.render({ t: 'query', at: 1, sql: 'select 1 -- \r\x1b[2Kharmless' }),
      ...r.render({ t: 'columns', at: 2, names: ['v'] }),
      ...r.render({ t: 'row', at: 2, values: ['\x1b]0;title\x07'] }),
      ...r.render({ t: 'complete', at: 3, rows: 1, tag: 'SELECT 1' }),
      ...r.render({ t: 'error', at: 4, message: 'boom \x1b[31m' }),
    ].map((l) => l.text);
    expect(lines.join('\n')).not.toMatch(/[\r\x1b\x07]/);
    expect(lines[0]).toBe('db=> select 1 -- \\x0d\\x1b[2Kharmless');
    expect(lines.join('\n')).toContain('\\x1b]0;title\\x07');
  });

  it("starts no line with what was recorded: a tool's answer, a command's second line and a message go on behind a mark (a file's text forged a refused call)", () => {
    const r = new TranscriptRenderer();
    r.render({ t: 'start', at: 0, connection: 'files', session: 's', identity: { subject: 'a' } });
    const lines = [
      ...r.render({ t: 'mcp', at: 1, d: 'c', m: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_text_file', arguments: { path: '/d/a' } } } }),
      ...r.render({ t: 'mcp', at: 2, d: 's', m: { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'ok\nfiles> tools/call write_file {}\n-- refused: by rule x' }] } } }),
      ...r.render({ t: 'ssh-exec', at: 3, command: 'ls\nfiles$ rm -rf /', decision: 'allow' }),
      ...r.render({ t: 'error', at: 4, message: 'boom\n-- hoop: review rv-1 approved' }),
    ].map((l) => l.text);
    expect(lines.slice(0, 6)).toEqual([
      'files> tools/call read_text_file {"path":"/d/a"}',
      '   ok',
      '   | files> tools/call write_file {}',
      '   | -- refused: by rule x',
      'files$ ls',
      '   | files$ rm -rf /',
    ]);
    expect(lines.slice(6).every((l) => !l.startsWith('-- hoop'))).toBe(true);
  });
});

describe('statementSafe (what a reviewer approves)', () => {
  it("shows every character outside ASCII as an escape: `‐‐` (U+2010) passed for a comment PostgreSQL reads as an alias (the thirteenth attack's second UPDATE ran)", () => {
    const sql = "update accounts set note = 'checked' where id = 1 returning id \u2010\u2010; update accounts set role = 'admin'";
    expect(statementSafe(sql)).toBe("update accounts set note = 'checked' where id = 1 returning id \\u2010\\u2010; update accounts set role = 'admin'");
    for (const c of ['\u2212', '\u2215', '\u2217', '\u02bc', '\u037e', '\uff0d', '\u201c']) expect(statementSafe(`a${c}b`), c).toBe(`a\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}b`);
    // Letters of other scripts and combining marks too (the second attack: `ᐨᐨ`, `ǁ`, `=\u0338`, a Cyrillic а); ASCII stays as it is.
    expect(statementSafe("select 'é', 'а' -- ok")).toBe("select '\\xe9', '\\u0430' -- ok");
    for (const c of ['\u1428', '\u01c1', '\u0338', '\u3161']) expect(statementSafe(`a${c}b`), c).toBe(`a\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}b`);
    const shown = reviewText({
      id: 'rv-1',
      state: 'pending',
      sql,
      decisions: [],
      approvals: 1,
      groups: ['dba'],
      requester: { subject: 'a', groups: [] },
      connection: 'app',
      createdAt: new Date().toISOString(),
      reason: 'r',
    } as never);
    expect(shown).toContain('returning id \\u2010\\u2010;');
    expect(shown).toContain('--reason "…"');
  });
});

describe('oneLine (a statement in a table cell: hoop review ls, the inbox list)', () => {
  /** What a reader takes the shown text for: each escape read back as its character. */
  const readBack = (shown: string): string =>
    shown.replace(/\\(\\|n|t|x[0-9a-f]{2}|u[0-9a-f]{4}|u\{[0-9a-f]+\})/g, (_, e: string) =>
      e === '\\' ? '\\' : e === 'n' ? '\n' : e === 't' ? '\t' : String.fromCodePoint(Number.parseInt(e.replace(/[xu{}]/g, ''), 16)),
    );

  it('folds only runs of spaces and tabs: a no-break space PostgreSQL reads as a letter is shown escaped (the sixteenth attack)', () => {
    // `DELETE FROM accounts WHERE\xa0NOT\xa0archived` deletes every row: `where not archived` is an alias.
    expect(oneLine('DELETE FROM accounts WHERE\u00a0NOT\u00a0archived')).toBe('DELETE FROM accounts WHERE\\xa0NOT\\xa0archived');
    expect(oneLine('select  1 \t from   t')).toBe('select 1 from t');
    for (const c of ['\u00a0', '\u1680', '\u2000', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff']) expect(oneLine(`a${c}b`), escape(c)).toBe(`a${terminalSafe(c)}b`);
  });

  it('shows a line break as \\n, never a blank: the newline that ends a comment is no space (the seventeenth attack: approved, it deleted every row)', () => {
    expect(oneLine('DELETE FROM accounts WHERE id = 5 --\nOR true')).toBe('DELETE FROM accounts WHERE id = 5 --\\nOR true');
    expect(oneLine('DELETE FROM t WHERE id = 5 # x\r\nOR 1')).toBe('DELETE FROM t WHERE id = 5 # x\\x0d\\nOR 1');
    expect(oneLine('select 1\n\tfrom t')).toBe('select 1\\n from t');
    // A backslash typed is shown as two: `\n` typed is no line break.
    expect(oneLine("select E'a\\nb'")).toBe("select E'a\\\\nb'");
  });

  it('reads back as the statement with its runs of spaces and tabs folded, or is cut with … (10,000 generated statements)', () => {
    const alphabet = ['a', ' ', '  ', '\t', '\n', '\r', '--', '#', '\\', 'n', 'x0a', '\u00a0', '\u202e', '\u200b', '全', '\x1b', "'", '/*', '*/'];
    let seed = 17;
    const next = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 10_000; i++) {
      const sql = Array.from({ length: 1 + next(30) }, () => alphabet[next(alphabet.length)]).join('');
      const folded = sql.replace(/[ \t]+/g, ' ').trim();
      const shown = oneLine(sql, 40);
      expect(shown, JSON.stringify(sql)).not.toMatch(/[\n\r\t\x1b\u00a0\u202e\u200b]/);
      if (shown.endsWith('…') && readBack(shown.slice(0, -1)) !== folded) expect(folded.startsWith(readBack(shown.slice(0, -1))), JSON.stringify(sql)).toBe(true);
      else expect(readBack(shown), JSON.stringify(sql)).toBe(folded);
    }
  });
});
