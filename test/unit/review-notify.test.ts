/**
 * Slack bodies of review events (src/gateway/reviews/review-notify.ts): text that hoop did not write —
 * the statement, its parameters, the requester's and reviewers' names and reasons — reaches
 * Slack's mrkdwn escaped (no mention, no disguised link), and a statement cut for the message
 * says so and how to see the whole.
 * @see https://api.slack.com/reference/surfaces/formatting#escaping
 */
import { describe, expect, it } from 'vitest';
import { slackBody, slackEscape } from '../../src/gateway/reviews/review-notify.js';
import type { Review } from '../../src/policy/review-record.js';

const review = (over: Partial<Review> = {}): Review => ({
  id: 'rv-1',
  state: 'pending',
  kind: 'statement',
  session: 's-1',
  connection: 'app',
  requester: { subject: 'mallory', issuer: 'https://idp', email: '<!channel>@evil', groups: [] },
  sql: "delete from t where note = '<https://evil.example|click to approve safely>' -- <!here>",
  params: ['<@U123>', null],
  reason: 'held',
  message: 'a write',
  groups: ['dba'],
  approvals: 1,
  selfApprove: false,
  windowMs: 0,
  decisions: [],
  createdAt: '2026-11-25T00:00:00Z',
  expiresAt: '2026-11-25T00:10:00Z',
  ...over,
});

/** Every mrkdwn text of a body. */
const texts = (b: Record<string, unknown>): string[] => JSON.stringify(b).match(/"text":"(?:[^"\\]|\\.)*"/g) ?? [];

describe('Slack review messages', () => {
  it('escape what the requester, the statement and its parameters say', () => {
    const all = texts(slackBody('requested', review())).join('\n');
    expect(all).not.toMatch(/<!|<@|<https?:/);
    expect(all).toContain('&lt;!channel&gt;@evil');
    expect(all).toContain('&lt;https://evil.example|click to approve safely&gt;');
    expect(all).toContain('&lt;@U123&gt;');
  });

  it("escape a reviewer's reason and name in the decision", () => {
    const decided = review({ state: 'denied', decisions: [{ subject: 'r', issuer: 'i', email: 'a&b<!everyone>', decision: 'deny', reason: '<https://x|ok> & more', at: '2026-11-25T00:01:00Z' }] });
    const all = texts(slackBody('decided', decided)).join('\n');
    expect(all).not.toMatch(/<!|<https?:/);
    expect(all).toContain('a&amp;b&lt;!everyone&gt;');
    expect(all).toContain('&lt;https://x|ok&gt; &amp; more');
  });

  it('mark a statement cut for the message, with the command that shows it whole', () => {
    const long = review({ sql: `update t set a = 1 ${'and b = 2 '.repeat(400)}` });
    const all = texts(slackBody('requested', long)).join('\n');
    expect(all).toMatch(/cut: \d+ more characters of 4019 in the statement; `hoop review show rv-1` shows it whole/);
    expect(texts(slackBody('requested', review())).join('\n')).not.toContain('cut:');
    // Cut as it reads once escaped: a statement of characters Slack escapes (& is 5, a control 4) stays within a section, cut between escapes, and counted right.
    const escaped = review({ sql: '&\x1b'.repeat(2_000), params: ['<'.repeat(3_000)] });
    const section = (slackBody('requested', escaped).blocks as Array<{ text?: { text: string } }>)[1]!.text!.text;
    expect(section.length).toBeLessThanOrEqual(3_000);
    const shown = /^```(.*)…```/s.exec(section)![1]!;
    expect(shown).toMatch(/^(&amp;\\x1b)+$/);
    expect(section).toContain(`cut: ${4_000 - (shown.length / 9) * 2} more characters of 4000 in the statement`);
    expect(section).toMatch(/cut: 3002 more characters of 3002 in the parameters/);
  });

  it('escapes the three characters Slack reserves, and what changes how text reads (bidi overrides, zero-width characters, controls)', () => {
    expect(slackEscape('a & <b> *c* _d_ — 日本')).toBe('a &amp; &lt;b&gt; *c* _d_ — 日本');
    expect(slackEscape('delete from t\u202e where id = 1 \u2066')).toBe('delete from t\\u202e where id = 1 \\u2066');
    expect(slackEscape('dr\u200bop ta\u200dble\ufeff\u2060\u00ad\u2028x\r')).toBe('dr\\u200bop ta\\u200dble\\ufeff\\u2060\\xad\\u2028x\\x0d');
  });
  it('show each statement as one text only: no run of backquotes ends the code block, and two statements never look alike (20,000 generated, decoded back)', () => {
    // The real statement and its typed twin: ``` was shown as ''' (PostgreSQL reads the twin as one string; the real one deleted every row).
    const real = "SELECT 'x```'; DELETE FROM ledger; SELECT '```'";
    const twin = "SELECT 'x''''; DELETE FROM ledger; SELECT '''''";
    const code = (sql: string): string => /^```(.*)```/s.exec((slackBody('requested', review({ sql, params: [] })).blocks as Array<{ text?: { text: string } }>)[1]!.text!.text)![1]!;
    expect(code(real)).not.toBe(code(twin));
    expect(code(real)).not.toContain('`');
    /** What a reader of the block reads back: entities and escapes undone. */
    const decode = (shown: string): string =>
      shown.replace(/\\(\\|x[0-9a-f]{2}|u\{[0-9a-f]+\}|u[0-9a-f]{4})|&(amp|lt|gt);/g, (_, esc: string | undefined, entity: string | undefined) =>
        entity ? { amp: '&', lt: '<', gt: '>' }[entity]! : esc === '\\' ? '\\' : String.fromCodePoint(Number.parseInt(esc!.replace(/[xu{}]/g, ''), 16)),
      );
    const alphabet = ['`', "'", '\\', 'x', '6', '0', 'u', '{', '}', ';', '&', '<', 'a', ' ', '\x60', '\r', '\u00a0'];
    let seed = 72;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 20_000; i++) {
      const sql = Array.from({ length: 1 + random(12) }, () => alphabet[random(alphabet.length)]).join('');
      const shown = code(sql);
      expect(shown).not.toContain('`');
      expect(decode(shown)).toBe(sql);
    }
  });
});
