/**
 * The review inbox's screens (ink-testing-library frames): it lists what waits, shows the selected
 * statement with its parameters, approves with `a`, denies with `d` and a typed reason (a denial
 * without one is not sent), refreshes after each decision, and says what the gateway answered.
 */
import { render } from 'ink-testing-library';
import { createElement } from 'react';
import { describe, expect, it } from 'vitest';
import type { ReviewInfo } from '../../src/api-client/reviews.js';
import { columns, displayWidth } from '../../src/text-format.js';
import { oneLine } from '../../src/ui/review-lines.js';
import { ReviewInbox, wrapLines } from '../../src/ui/ReviewInbox.js';
import { eventually, pace } from '../harness/wait.js';

async function until(frame: () => string | undefined, text: string): Promise<void> {
  await eventually(() => expect(frame()).toContain(text), { timeout: 60_000, interval: 10 });
}
/** Lets ink's effects run after a render: its key handler is set in one, and nothing tells from outside when. */
const settle = (): Promise<void> => pace(50);

/** Pages the selected review's pane (v) until its last of `total` lines is drawn, each page drawn before the next key; the frames drawn. */
async function pageToEnd(ui: ReturnType<typeof render>, total: number): Promise<string[]> {
  const frames = [ui.lastFrame()!];
  while (!ui.lastFrame()!.includes(`–${total} of ${total} shown`)) {
    const before = ui.lastFrame();
    ui.stdin.write('v');
    await eventually(() => expect(ui.lastFrame()).not.toBe(before), { timeout: 60_000, interval: 10 });
    frames.push(ui.lastFrame()!);
    await settle();
  }
  return frames;
}

const review = (id: string, sql: string, params?: string[]): ReviewInfo => ({
  id,
  state: 'pending',
  kind: 'statement',
  windowMs: 0,
  session: 's1',
  connection: 'prod',
  requester: { subject: 'devin', issuer: 'i', email: 'devin@example.test', groups: [] },
  sql,
  ...(params ? { params } : {}),
  rule: 'wide-writes',
  reason: 'rule "wide-writes" matched',
  message: 'writes to every row need a DBA',
  groups: ['dba'],
  approvals: 1,
  selfApprove: false,
  decisions: [],
  createdAt: new Date(Date.now() - 5000).toISOString(),
  expiresAt: new Date(Date.now() + 600_000).toISOString(),
});

describe('review inbox', () => {
  it('lists, shows, approves and denies with a reason', async () => {
    let waiting = [review('rv-0000000000000001', 'delete from orders'), review('rv-0000000000000002', 'update accounts set balance = $1', ['0'])];
    const decided: Array<[string, string, string | undefined]> = [];
    const ui = render(
      createElement(ReviewInbox, {
        load: async () => waiting,
        decide: async (id, decision, reason) => {
          decided.push([id, decision, reason]);
          waiting = waiting.filter((r) => r.id !== id);
          return {
            ...review(id, ''),
            state: decision === 'approve' ? 'approved' : 'denied',
            decisions: [{ subject: 'rae', issuer: 'i', email: 'rae@example.test', decision, ...(reason ? { reason } : {}), at: new Date().toISOString() }],
          };
        },
        refreshMs: 60_000,
      }),
    );
    await until(ui.lastFrame, 'rv-0000000000000001');
    expect(ui.lastFrame()).toContain('devin@example.test on prod · rule wide-writes');
    expect(ui.lastFrame()).toContain('    delete from orders');
    await settle();
    ui.stdin.write('j');
    await until(ui.lastFrame, '-- parameters: "0"');
    ui.stdin.write('d');
    await until(ui.lastFrame, 'reason?');
    ui.stdin.write('\r');
    await until(ui.lastFrame, 'a denial needs a reason');
    expect(decided).toEqual([]);
    for (const c of 'too wide') ui.stdin.write(c);
    await until(ui.lastFrame, 'reason? too wide');
    ui.stdin.write('\r');
    await until(ui.lastFrame, 'review rv-0000000000000002: denied by rae@example.test: too wide');
    expect(decided).toEqual([['rv-0000000000000002', 'deny', 'too wide']]);
    await until(ui.lastFrame, '↑/↓ select'); // no longer sending
    await eventually(() => expect(ui.lastFrame()).not.toContain('update accounts'), { timeout: 60_000, interval: 10 });
    expect(ui.lastFrame()).not.toContain('sending…');
    // The one decided is gone: none is selected until the reviewer picks one (a second key meant for it approves nothing).
    await until(ui.lastFrame, 'rv-0000000000000002 is no longer waiting');
    await settle();
    ui.stdin.write('a');
    await settle();
    expect(decided).toHaveLength(1);
    ui.stdin.write('k');
    await until(ui.lastFrame, '    delete from orders');
    await settle();
    ui.stdin.write('a');
    await until(ui.lastFrame, 'review rv-0000000000000001: approved by rae@example.test');
    await until(ui.lastFrame, 'no reviews wait for you');
    expect(decided.at(-1)).toEqual(['rv-0000000000000001', 'approve', undefined]);
    ui.unmount();
  });
  it('keeps the review selected by its id: one held meanwhile above it, or one gone above it, moves no key to another', async () => {
    const shown = review('rv-00000000000000a1', "select * from readme where id = 'harmless'");
    let waiting = [review('rv-00000000000000a0', 'select 0'), shown];
    const decided: string[] = [];
    const ui = render(
      createElement(ReviewInbox, {
        load: async () => waiting,
        decide: async (id) => {
          decided.push(id);
          return { ...review(id, ''), state: 'approved' };
        },
        refreshMs: 60_000,
      }),
    );
    await until(ui.lastFrame, 'select 0');
    await settle();
    ui.stdin.write('j');
    await until(ui.lastFrame, "where id = 'harmless'");
    // A write held after the list was read lands on top; the one above goes: the reviewer's `a` is still for what they read.
    waiting = [review('rv-00000000000000b2', 'update users set role = admin'), review('rv-00000000000000b3', 'delete from keys'), shown];
    ui.stdin.write('r');
    await until(ui.lastFrame, 'rv-00000000000000b3');
    expect(ui.lastFrame()).toContain("where id = 'harmless'");
    await settle();
    ui.stdin.write('a');
    await until(ui.lastFrame, 'review rv-00000000000000a1: approved');
    expect(decided).toEqual(['rv-00000000000000a1']);
    ui.unmount();
  });

  it('marks a statement longer than it shows as cut, and approves it only once it was shown whole', async () => {
    const sql = ['update accounts', 'set balance = 0', ...Array.from({ length: 10 }, (_, i) => `  -- line ${i}`), 'where true; drop table accounts'].join('\n');
    const decided: string[] = [];
    const ui = render(
      createElement(ReviewInbox, {
        load: async () => [review('rv-0000000000000003', sql)],
        decide: async (id) => {
          decided.push(id);
          return { ...review(id, sql), state: 'approved' };
        },
        refreshMs: 60_000,
        sqlLines: 4,
      }),
    );
    await until(ui.lastFrame, '… cut: lines 1–4 of 13 shown, 9 never yet (v/space: next page)');
    expect(ui.lastFrame()).not.toContain('drop table accounts');
    await settle();
    ui.stdin.write('a');
    await until(ui.lastFrame, '9 line(s) of rv-0000000000000003 not yet on screen: page through it (v or space)');
    expect(decided).toEqual([]);
    // v then a, as fast as keys come (before the screen is drawn again): the page was not on screen when a came, so a approves nothing.
    ui.stdin.write('v');
    ui.stdin.write('a');
    await until(ui.lastFrame, 'lines 5–8 of 13 shown');
    await settle();
    expect(decided).toEqual([]);
    expect((await pageToEnd(ui, 13)).join('\n')).toContain('where true; drop table accounts');
    ui.stdin.write('a');
    await until(ui.lastFrame, 'review rv-0000000000000003: approved');
    expect(decided).toEqual(['rv-0000000000000003']);
    ui.unmount();
  });

  it('wraps a long one-line statement to the terminal, marks the cut, and approves it only once shown whole (the review’s 20 orders set to 0)', async () => {
    const sql = `update orders set total = 0 where id in (${Array.from({ length: 400 }, (_, i) => i + 1).join(', ')}) or status = 'paid'`;
    const decided: string[] = [];
    const ui = render(
      createElement(ReviewInbox, {
        load: async () => [review('rv-0000000000000004', sql)],
        decide: async (id) => {
          decided.push(id);
          return { ...review(id, sql), state: 'approved' };
        },
        refreshMs: 60_000,
        width: 60,
        sqlLines: 8,
      }),
    );
    const lines = Math.ceil(sql.length / 56);
    await until(ui.lastFrame, `… cut: lines 1–8 of ${lines} shown, ${lines - 8} never yet`);
    // The head is shown, the tail (what changes the meaning) is not, and no shown line is wider than the terminal.
    expect(ui.lastFrame()).toContain('    update orders set total = 0 where id in (1, 2, 3');
    expect(ui.lastFrame()).not.toContain("status = 'paid'");
    for (const line of ui
      .lastFrame()!
      .split('\n')
      .filter((l) => l.startsWith('    ') && !l.includes('… cut')))
      expect(line.length).toBeLessThanOrEqual(60);
    await settle();
    ui.stdin.write('a');
    await until(ui.lastFrame, `${lines - 8} line(s) of rv-0000000000000004 not yet on screen`);
    expect(decided).toEqual([]);
    await pageToEnd(ui, lines);
    expect(ui.lastFrame()).toContain("status = 'paid'");
    ui.stdin.write('a');
    await until(ui.lastFrame, 'review rv-0000000000000004: approved');
    expect(decided).toEqual(['rv-0000000000000004']);
    ui.unmount();
  });

  it("counts what was seen again when the terminal's width changes (its lines are other lines: the helper's attack approved words never shown)", async () => {
    const sql = `select ${Array.from({ length: 150 }, (_, i) => `w${String(i + 1).padStart(3, '0')}`).join(' ')} or_true__`;
    const decided: string[] = [];
    const props = {
      load: async () => [review('rv-0000000000000005', sql)],
      decide: async (id: string) => {
        decided.push(id);
        return { ...review(id, sql), state: 'approved' as const };
      },
      refreshMs: 60_000,
      sqlLines: 3,
    };
    const ui = render(createElement(ReviewInbox, { ...props, width: 20 }));
    await until(ui.lastFrame, '… cut: lines 1–3 of');
    for (let i = 0; i < 2; i++) {
      await settle();
      ui.stdin.write('v');
    }
    await until(ui.lastFrame, '… cut: lines 7–9 of');
    ui.rerender(createElement(ReviewInbox, { ...props, width: 100 }));
    await until(ui.lastFrame, '… cut: lines 1–3 of');
    await settle();
    ui.stdin.write('a');
    await until(ui.lastFrame, 'line(s) of rv-0000000000000005 not yet on screen');
    expect(decided).toEqual([]);
    ui.unmount();
  });

  it('wraps by terminal columns: a line of wide characters is no tail off screen, and all of it shows (before: 79 code points fit a width of 100, drop table was cut unmarked)', async () => {
    // (In the statement each wide character is shown as its escape: the line is long, not wide.)
    const sql = `select '${'全'.repeat(45)}';\ndrop table accounts; --`;
    const decided: string[] = [];
    const ui = render(
      createElement(ReviewInbox, {
        load: async () => [review('rv-0000000000000005', sql)],
        decide: async (id) => {
          decided.push(id);
          return { ...review(id, sql), state: 'approved' };
        },
        refreshMs: 60_000,
        width: 100,
      }),
    );
    await until(ui.lastFrame, 'drop table accounts');
    for (const line of ui
      .lastFrame()!
      .split('\n')
      .filter((l) => l.startsWith('    ')))
      expect(displayWidth(line)).toBeLessThanOrEqual(100);
    await settle();
    ui.stdin.write('a');
    await until(ui.lastFrame, 'review rv-0000000000000005: approved');
    expect(decided).toEqual(['rv-0000000000000005']);
    ui.unmount();
  });

  it('counts the parameters with the statement and fits the pane to the terminal: a 6,000-item parameter is cut-marked, never taller than the screen, and approved only once every line was on screen (before: 191 lines, no mark, approved at once)', async () => {
    const p1 = `${'a, '.repeat(3000)}; DROP TABLE accounts; --${' b,'.repeat(3000)}`;
    const sql = 'select run_maintenance($1)';
    const decided: string[] = [];
    const ui = render(
      createElement(ReviewInbox, {
        load: async () => [review('rv-0000000000000009', sql, [p1])],
        decide: async (id) => {
          decided.push(id);
          return { ...review(id, sql), state: 'approved' };
        },
        refreshMs: 60_000,
        width: 80,
        height: 50,
      }),
    );
    const total = wrapLines(`${sql}\n-- parameters: ${JSON.stringify(p1)}`, 76).length;
    await until(ui.lastFrame, `… cut: lines 1–41 of ${total} shown`);
    await settle();
    ui.stdin.write('a');
    await until(ui.lastFrame, `${total - 41} line(s) of rv-0000000000000009 not yet on screen`);
    expect(decided).toEqual([]);
    const frames = await pageToEnd(ui, total);
    for (const f of frames) expect(f.split('\n').length).toBeLessThanOrEqual(50);
    expect(frames.join('\n')).toContain('DROP TABLE accounts');
    ui.stdin.write('a');
    await until(ui.lastFrame, 'review rv-0000000000000009: approved');
    expect(decided).toEqual(['rv-0000000000000009']);
    ui.unmount();
  });

  it('measures a character as the terminal draws it: a keycap (1 and U+20E3) is one character of two columns, a tab the spaces to its stop', () => {
    const sql = `DELETE FROM accounts WHERE note = '${'1\u20e3'.repeat(30)}' OR true`;
    const lines = wrapLines(sql, 100);
    // Before: measured a code point at a time (30 columns short), one line Ink cut at the edge, unmarked.
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) expect(displayWidth(l)).toBeLessThanOrEqual(100);
    expect(lines.join('')).toBe(sql);
    expect(wrapLines('a\tb', 40)).toEqual(['a       b']);
  });

  it('cuts a row of wide characters by columns, and pads columns by them', () => {
    expect(displayWidth(oneLine('全'.repeat(40), 20))).toBeLessThanOrEqual(20);
    expect(
      columns([
        ['全全', 'x'],
        ['ab', 'y'],
      ]).map(displayWidth),
    ).toEqual([7, 7]);
  });
});
