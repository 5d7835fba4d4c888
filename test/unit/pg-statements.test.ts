/**
 * The gateway's statement gate: what it forwards for each frontend message (Query, Parse, Bind,
 * Execute, Close, FunctionCall, SQL PREPARE/EXECUTE/DEALLOCATE), how it drops the rest of an
 * extended-protocol batch after a refusal, and how it replaces the server's answer to its own
 * Describe with the refusal, at every split point of both streams.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { SessionJudge, StatementVerdict } from '../../src/session/engine.js';
import { explainCommand, loadStatementGate, preparedOps, refusalError, RESERVED_STATEMENT_PREFIX, StatementGate } from '../../src/postgres/pipeline/statement-gate.js';
import { errorResponse, query } from '../../src/postgres/wire/messages.js';
import { MessageReader, parseErrorFields } from '../../src/postgres/wire/reader.js';
import { BackendPath, FrontendPath } from '../../src/postgres/pipeline/relay.js';
import { bind, close, describePortal, execute, flush, frontendMessage as message, int32, parse, sync } from '../harness/pg-frontend.js';
import { collectingOutput, decoded as msg, sentBytes as sent, through } from '../harness/relay.js';

/** Whether the gate passes the message as it is. */
function passes(gate: StatementGate, raw: Buffer): boolean {
  const decision = gate.frontend(msg(raw));
  return !(decision instanceof Promise) && decision.passed !== undefined;
}

/** A judge that denies SQL mentioning `drop`, asks review for `truncate`, and what `extra` says. */
class TestJudge implements SessionJudge {
  calls: string[] = [];
  extra: RegExp | undefined;
  judge(sql: string): StatementVerdict {
    this.calls.push(sql);
    if (/\bdrop\b/i.test(sql) || this.extra?.test(sql)) return { action: 'deny', rule: 'no-drop', message: 'DROP is not allowed', reason: 'rule no-drop matched' };
    if (/\btruncate\b/i.test(sql)) return { action: 'review', rule: 'truncate-review', message: 'TRUNCATE needs a reviewer', reason: 'rule truncate-review matched' };
    if (/\bthrow\b/i.test(sql)) throw new Error('judge bug');
    return { action: 'allow', reason: 'no rule matched' };
  }
}

/** Is `b` the gateway's Describe of one of its own statements? Returns the name. */
function poisonName(b: Buffer): string | undefined {
  if (b[0] !== 0x44 || b[5] !== 0x53) return undefined;
  const name = b.subarray(6, b.length - 1).toString();
  return name.startsWith(RESERVED_STATEMENT_PREFIX) ? name : undefined;
}

/** The server's answer to a Describe of a statement that does not exist. */
function serverMissing(name: string): Buffer {
  return errorResponse({ severity: 'ERROR', code: '26000', message: `prepared statement "${name}" does not exist` });
}

/** Runs the backend path with `gate` over `stream` cut at `cuts`, and returns what the client gets. */
function throughBackend(gate: StatementGate, stream: Buffer, cuts: number[]): Promise<Buffer> {
  return through(new BackendPath({ reader: new MessageReader({ side: 'backend' }), gate }).step, stream, cuts);
}

function errorOf(b: Buffer): ReturnType<typeof parseErrorFields> {
  expect(String.fromCharCode(b[0]!)).toBe('E');
  return parseErrorFields(b.subarray(5));
}

beforeAll(async () => {
  await loadStatementGate();
});

describe('the frontend side', () => {
  it('forwards an allowed Query as it is and refuses a denied one with a Describe and a Sync', () => {
    const judge = new TestJudge();
    const gate = new StatementGate(judge);
    expect(passes(gate, query('select 1'))).toBe(true);
    const out = sent(gate.frontend(msg(query('select 1; DROP TABLE t'))));
    expect(out).toHaveLength(2);
    expect(poisonName(out[0]!)).toBeDefined();
    expect(out[1]).toEqual(sync());
    expect(gate.discarding).toBe(false);
    expect(gate.pendingRefusals).toBe(1);
    expect(judge.calls).toEqual(['select 1', 'select 1; DROP TABLE t']);
  });

  it('drops the rest of an extended batch after a refused Parse, up to and including nothing but the Sync', () => {
    const gate = new StatementGate(new TestJudge());
    for (const m of [parse('', 'insert into t values (1)'), bind('', ''), execute('')]) expect(passes(gate, m)).toBe(true);
    const refused = sent(gate.frontend(msg(parse('', 'drop table t'))));
    expect(refused).toHaveLength(1);
    expect(poisonName(refused[0]!)).toBeDefined();
    expect(gate.discarding).toBe(true);
    for (const m of [bind('', ''), describePortal(''), execute(''), flush(), query('select 1'), parse('x', 'select 1')]) expect(sent(gate.frontend(msg(m)))).toEqual([]);
    expect(passes(gate, sync())).toBe(true);
    expect(gate.discarding).toBe(false);
    // The refused unnamed statement is gone, as PostgreSQL drops it before parsing a new one.
    const again = sent(gate.frontend(msg(bind('', ''))));
    expect(poisonName(again[0]!)).toBeDefined();
    expect(gate.discarding).toBe(true);
    gate.frontend(msg(sync()));
    // 'x' was dropped with the batch: it never existed.
    expect(poisonName(sent(gate.frontend(msg(bind('', 'x'))))[0]!)).toBeDefined();
  });

  it('refuses, never holds, an Execute that needs a review its Bind did not: the parameters bound before were never shown', async () => {
    const judge = new TestJudge();
    const asks: unknown[] = [];
    const gate = new StatementGate(judge, { review: (ask) => (asks.push(ask), { decided: new Promise(() => undefined), withdraw: () => undefined }) as never });
    expect(passes(gate, parse('s1', 'delete from t where id = $1'))).toBe(true);
    expect(passes(gate, bind('p1', 's1'))).toBe(true);
    // Now the same statement needs a review (an approval's window ran out, say): at the Execute, the parameters are long gone.
    const review = judge.judge.bind(judge);
    const settings = { groups: ['dba'], approvals: 1, timeoutMs: 60_000, selfApprove: false, windowMs: 0, notify: [] };
    judge.judge = (sql: string) => (/delete/.test(sql) ? { action: 'review', rule: 'deletes-review', message: 'deletes need a reviewer', reason: 'x', review: settings } : review(sql));
    const out = await gate.frontend(msg(execute('p1')));
    expect(asks).toEqual([]);
    expect(poisonName(sent(out as never)[0]!)).toBeDefined();
  });

  it('judges a named statement again at Bind and its portal again at Execute', () => {
    const judge = new TestJudge();
    const gate = new StatementGate(judge);
    expect(passes(gate, parse('s1', 'delete from t where id = $1'))).toBe(true);
    expect(passes(gate, bind('p1', 's1'))).toBe(true);
    judge.extra = /delete/;
    expect(poisonName(sent(gate.frontend(msg(execute('p1'))))[0]!)).toBeDefined();
    gate.frontend(msg(sync()));
    expect(poisonName(sent(gate.frontend(msg(bind('p2', 's1'))))[0]!)).toBeDefined();
    gate.frontend(msg(sync()));
    judge.extra = undefined;
    expect(passes(gate, bind('p2', 's1'))).toBe(true);
    // Close forgets the statement.
    expect(passes(gate, close('S', 's1'))).toBe(true);
    expect(poisonName(sent(gate.frontend(msg(bind('p3', 's1'))))[0]!)).toBeDefined();
  });

  it('passes Execute of a portal it did not bind (a SQL cursor) to the server', () => {
    const gate = new StatementGate(new TestJudge());
    expect(passes(gate, execute('c1'))).toBe(true);
  });

  it('follows SQL PREPARE, EXECUTE (also in EXPLAIN ANALYZE) and DEALLOCATE', () => {
    const judge = new TestJudge();
    const gate = new StatementGate(judge);
    const pass = (sql: string): void => {
      expect(passes(gate, query(sql)), sql).toBe(true);
    };
    const refused = (sql: string): void => {
      const out = sent(gate.frontend(msg(query(sql))));
      expect(poisonName(out[0]!), sql).toBeDefined();
    };
    pass('PREPARE q1(int) AS SELECT $1');
    pass('execute Q1(1)');
    refused('PREPARE q2 AS DROP TABLE t');
    refused('EXECUTE q2');
    pass('prepare q3 as select 1; execute q3');
    judge.extra = /select 1/;
    refused('EXECUTE q3');
    refused('EXPLAIN ANALYZE EXECUTE q3');
    refused('CREATE TABLE z AS EXECUTE q3');
    judge.extra = undefined;
    pass('DEALLOCATE q3');
    refused('EXECUTE q3');
    pass('DEALLOCATE ALL');
    refused('EXECUTE q1(1)');
    // The protocol and SQL share one namespace.
    pass('PREPARE q4 AS SELECT 4');
    expect(passes(gate, bind('', 'q4'))).toBe(true);
    expect(passes(gate, parse('s5', 'select 5'))).toBe(true);
    pass('EXECUTE s5');
    pass('DISCARD ALL');
    refused('EXECUTE s5');
    // A statement the judge allows, but whose name is the gateway's, is refused.
    refused(`PREPARE ${RESERVED_STATEMENT_PREFIX}x AS SELECT 1`);
  });

  it('refuses names PostgreSQL would cut to 63 bytes, and judges every text a name may hold', () => {
    const judge = new TestJudge();
    const gate = new StatementGate(judge);
    const long = 'a'.repeat(63);
    // The server keys statements and portals by their first 63 bytes: `${long}X` and `${long}Y` are one name there.
    expect(poisonName(sent(gate.frontend(msg(parse(`${long}X`, 'select 1'))))[0]!)).toBeDefined();
    gate.frontend(msg(sync()));
    expect(passes(gate, parse(long, 'select 1'))).toBe(true);
    expect(poisonName(sent(gate.frontend(msg(bind(`${'é'.repeat(32)}`, long))))[0]!)).toBeDefined();
    gate.frontend(msg(sync()));
    expect(passes(gate, bind('p', long))).toBe(true);
    // A second Parse of a held name: the server keeps the first unless it failed; both are judged.
    expect(passes(gate, parse('s', 'select 2'))).toBe(true);
    expect(passes(gate, parse('s', 'select 3'))).toBe(true);
    judge.extra = /select 2/;
    expect(poisonName(sent(gate.frontend(msg(bind('p2', 's'))))[0]!)).toBeDefined();
    gate.frontend(msg(sync()));
    judge.extra = /select 3/;
    expect(poisonName(sent(gate.frontend(msg(bind('p2', 's'))))[0]!)).toBeDefined();
    gate.frontend(msg(sync()));
    judge.extra = undefined;
    expect(passes(gate, bind('p2', 's'))).toBe(true);
    // SQL PREPARE of a held name adds to it too; Close forgets all.
    expect(passes(gate, query('PREPARE s AS SELECT 4'))).toBe(true);
    judge.extra = /select 4/i;
    expect(poisonName(sent(gate.frontend(msg(query('EXECUTE s'))))[0]!)).toBeDefined();
    judge.extra = undefined;
    expect(passes(gate, close('S', 's'))).toBe(true);
    expect(poisonName(sent(gate.frontend(msg(bind('p3', 's'))))[0]!)).toBeDefined();
  });

  it('finds prepared-statement operations only where PostgreSQL would', () => {
    expect(preparedOps("select 'no prepare here'")).toEqual([]);
    expect(preparedOps('select 1')).toEqual([]);
    expect(preparedOps('PREPARE "MiXed" AS SELECT 1; /* c */ execute "MiXed"; deallocate prepare "MiXed"')).toEqual([
      { op: 'prepare', name: 'MiXed', text: 'PREPARE "MiXed" AS SELECT 1' },
      { op: 'execute', name: 'MiXed' },
      { op: 'deallocate', name: 'MiXed' },
    ]);
    expect(preparedOps("select 1; prepare é AS select 'ü'")).toEqual([{ op: 'prepare', name: 'é', text: "prepare é AS select 'ü'" }]);
    expect(preparedOps('prepare broken as selec')).toBeUndefined();
  });

  it('refuses a FunctionCall of no known function, names it reserves, SQL that is not UTF-8, and a judge that throws', async () => {
    const seen: string[] = [];
    const gate = new StatementGate(new TestJudge(), { onRefusal: (r) => seen.push(`${r.message} ${r.action} ${r.rule}`), functionName: async () => undefined });
    const f = sent(await gate.frontend(msg(message('F', int32(1234), 0, 0, 0))));
    expect(f).toHaveLength(2);
    // Without a catalog to name its function (hoop connect's advisory checks), a FunctionCall goes on to the gateway.
    const advisory = msg(message('F', int32(1234), 0, 0, 0));
    expect(new StatementGate(new TestJudge()).frontend(advisory)).toEqual({ send: [advisory], passed: {} });
    expect(poisonName(f[0]!)).toBeDefined();
    expect(f[1]).toEqual(sync());
    expect(poisonName(sent(gate.frontend(msg(parse(`${RESERVED_STATEMENT_PREFIX}1`, 'select 1'))))[0]!)).toBeDefined();
    gate.frontend(msg(sync()));
    const latin1 = Buffer.concat([Buffer.from('Q'), int32(4 + 14), Buffer.from("select 'caf\xe9'\0", 'latin1')]);
    expect(poisonName(sent(gate.frontend(msg(latin1)))[0]!)).toBeDefined();
    expect(poisonName(sent(gate.frontend(msg(query('select throw'))))[0]!)).toBeDefined();
    expect(gate.refusals).toEqual({ deny: 0, review: 0, builtin: 4 });
    expect(seen).toEqual(['F deny hoop:function-call', 'P deny hoop:reserved-name', 'Q deny hoop:not-utf8', 'Q deny hoop:judge-failed']);
  });

  it('refuses malformed bodies as protocol violations', () => {
    expect(() => msg(Buffer.concat([Buffer.from('Q'), int32(7), Buffer.from('abc')]))).toThrow(/unterminated/);
    expect(() => msg(Buffer.concat([Buffer.from('C'), int32(5), Buffer.from('S')]))).toThrow(/truncated/);
  });

  it('gives the same output for a pipeline at every split point', async () => {
    const pipeline = [parse('', 'select 1'), bind('', ''), execute(''), sync(), parse('a', 'select 2'), parse('', 'DROP TABLE t'), bind('', ''), execute(''), sync(), query('select 3'), message('X')];
    const stream = Buffer.concat(pipeline);
    const strip = (b: Buffer): string => b.toString('latin1').replace(new RegExp(`${RESERVED_STATEMENT_PREFIX}[0-9a-f]+_\\d+`, 'g'), 'POISON');
    const run = async (cuts: number[]): Promise<string> => {
      const gate = new StatementGate(new TestJudge());
      const reader = new MessageReader({ side: 'frontend' });
      const out = await through(new FrontendPath({ reader, gate }).step, stream, cuts);
      expect(reader.bufferedBytes).toBe(0);
      return strip(out);
    };
    const whole = await run([]);
    const poison = Buffer.concat([Buffer.from('D'), int32(4 + 1 + `${RESERVED_STATEMENT_PREFIX}0123456789ab_0`.length + 1), Buffer.from('SPOISON\0')]).toString('latin1');
    expect(whole).toBe(Buffer.concat(pipeline.slice(0, 5)).toString('latin1') + poison + Buffer.concat(pipeline.slice(8)).toString('latin1'));
    for (let i = 0; i <= stream.length; i++) {
      expect(await run([i]), `split at ${i}`).toBe(whole);
      expect(await run([i, Math.min(stream.length, i + 3)]), `split at ${i}, ${i + 3}`).toBe(whole);
    }
  });
});

describe('the backend side', () => {
  it('replaces the answer to its Describe with the refusal, at every split point, and leaves other errors alone', async () => {
    const deny = { action: 'deny', rule: 'no-drop', message: 'DROP is not allowed', reason: 'rule no-drop matched' } as const;
    const setup = (): { gate: StatementGate; name: string } => {
      const gate = new StatementGate(new TestJudge());
      const name = poisonName(sent(gate.frontend(msg(query('drop table t'))))[0]!)!;
      return { gate, name };
    };
    const { name } = setup();
    const before = [message('1'), message('2'), message('T', Buffer.alloc(30, 1)), message('D', Buffer.alloc(200, 2)), message('C', 'SELECT 1')];
    const other = errorResponse({ severity: 'ERROR', code: '42P01', message: 'relation "x" does not exist' });
    const stream = Buffer.concat([...before, message('N', 'notice'), other, serverMissing(name), message('Z', Buffer.from('I'))]);
    const expected = Buffer.concat([...before, message('N', 'notice'), other, refusalError(deny), message('Z', Buffer.from('I'))]);
    for (let i = 0; i <= stream.length; i++) {
      for (const j of [i, Math.min(stream.length, i + 1), Math.min(stream.length, i + 7)]) {
        const { gate, name: n } = setup();
        const s = Buffer.from(stream.toString('latin1').replace(name, n), 'latin1');
        expect((await throughBackend(gate, s, [i, j])).equals(expected), `split at ${i}, ${j}`).toBe(true);
        expect(gate.pendingRefusals).toBe(0);
      }
    }
    const e = errorOf(refusalError(deny));
    expect(e.code).toBe('42501');
    expect(e.message).toBe('hoop: denied by rule "no-drop": DROP is not allowed');
    expect(e.detail).toBe('rule no-drop matched');
    expect(e.hint).toContain('hoop policy check');
    // With the connection and a short statement, a command that works as written; a long or multi-line one is left for the person to paste.
    expect(errorOf(refusalError(deny, explainCommand('prod-db', "drop table it's"))).hint).toContain("`hoop policy check --connection prod-db 'drop table it'\\''s'`");
    expect(explainCommand('prod db', 'drop table t\n')).toBe(`\`hoop policy check --connection 'prod db' "<statement>"\``);
  });

  it('says review as approval required', () => {
    const e = errorOf(refusalError({ action: 'review', rule: 'drop-needs-review', message: 'DROP and TRUNCATE need a reviewer', reason: 'x' }));
    expect(e.code).toBe('42501');
    expect(e.message).toBe('hoop: approval required (rule "drop-needs-review"): DROP and TRUNCATE need a reviewer');
  });

  it('forwards chunks untouched while nothing is pending, without copying', async () => {
    const gate = new StatementGate(new TestJudge());
    const chunk = Buffer.concat([message('E', 'S', 'ERROR\0'), message('Z', Buffer.from('I'))]);
    const out = collectingOutput();
    await new BackendPath({ reader: new MessageReader({ side: 'backend' }), gate }).step(chunk, out);
    out.flush();
    expect(out.writes).toHaveLength(1);
    expect(out.writes[0]!.buffer).toBe(chunk.buffer);
    expect(out.writes[0]!.equals(chunk)).toBe(true);
  });
});
