/**
 * The AnswerQueue: which client message each server message answers, as PostgreSQL takes them —
 * discarding up to Sync after an extended-protocol error (a Query among the discarded), ignoring
 * Sync in copy-in and consuming the message that breaks it, ignoring CopyDone outside copy-in —
 * and a server message that answers nothing ends the session.
 */
import { describe, expect, it } from 'vitest';
import { AnswerQueue, askKindOf, type Ask } from '../../src/postgres/pipeline/answers.js';
import { PgProtocolError } from '../../src/postgres/wire/protocol-error.js';

interface Named extends Ask {
  id: string;
}

/** A queue fed with frontend messages by type letter (`Q1` = a Query with id Q1). */
function queue(...sent: string[]): { q: AnswerQueue<Named>; pushed: boolean[] } {
  const q = new AnswerQueue<Named>();
  const pushed = sent.map((id) => q.push({ k: askKindOf(id.charCodeAt(0))!, id }));
  return { q, pushed };
}

/** Feeds server messages (by type letter) and returns the id each answered. */
function answers(q: AnswerQueue<Named>, types: string): Array<string | undefined> {
  return [...types].map((t) => q.answer(t.charCodeAt(0))?.id);
}

describe('AnswerQueue', () => {
  it('matches the extended protocol and simple queries in order', () => {
    const { q } = queue('P1', 'B1', 'D1', 'E1', 'S1', 'Q1');
    expect(answers(q, '12TDDCZ')).toEqual(['P1', 'B1', 'D1', 'E1', 'E1', 'E1', 'S1']);
    expect(answers(q, 'TDNCTCZ')).toEqual(['Q1', 'Q1', undefined, 'Q1', 'Q1', 'Q1', 'Q1']);
    expect(q.length).toBe(0);
    expect(q.pendingReady).toBe(0);
  });

  it('after an error in the extended protocol, drops everything up to the next Sync, a Query too', () => {
    const { q } = queue('P1', 'B1', 'Q1', 'S1', 'Q2');
    expect(answers(q, 'E')).toEqual(['P1']);
    expect(q.head?.id).toBe('S1');
    expect(answers(q, 'ZTDCZ')).toEqual(['S1', 'Q2', 'Q2', 'Q2', 'Q2']);
  });

  it('keeps discarding what comes after the error until a Sync is sent', () => {
    const { q } = queue('P1');
    expect(answers(q, 'E')).toEqual(['P1']);
    expect(q.push({ k: 'query', id: 'Q1' })).toBe(false);
    expect(q.push({ k: 'bind', id: 'B1' })).toBe(false);
    expect(q.push({ k: 'sync', id: 'S1' })).toBe(true);
    q.push({ k: 'query', id: 'Q2' });
    expect(answers(q, 'ZTDCZ')).toEqual(['S1', 'Q2', 'Q2', 'Q2', 'Q2']);
  });

  it('an error of a Query, a Sync or a FunctionCall waits for its ReadyForQuery', () => {
    const { q } = queue('Q1', 'Q2');
    expect(answers(q, 'EZ')).toEqual(['Q1', 'Q1']);
    expect(answers(q, 'CZ')).toEqual(['Q2', 'Q2']);
  });

  it('in copy-in, ignores the Syncs sent before it ends (also those sent before CopyInResponse)', () => {
    // libpq: Parse/Bind/Execute/Sync of COPY FROM STDIN, then CopyData..., CopyDone and a Sync of its own.
    const { q } = queue('P1', 'B1', 'E1', 'S1');
    expect(answers(q, '12G')).toEqual(['P1', 'B1', 'E1']);
    expect(q.push({ k: 'sync', id: 'S2' })).toBe(false);
    expect(q.push({ k: 'copy-end', id: 'c' })).toBe(false);
    q.push({ k: 'sync', id: 'S3' });
    expect(answers(q, 'CZ')).toEqual(['E1', 'S3']);
    expect(q.length).toBe(0);
  });

  it('a simple COPY FROM STDIN pipelined with a Sync and a Query: the Sync is ignored, the Query breaks the copy and is consumed', () => {
    const { q } = queue('Q1', 'S1', 'Q2', 'Q3');
    expect(answers(q, 'G')).toEqual(['Q1']);
    expect(q.pendingReady).toBe(2);
    expect(answers(q, 'EZ')).toEqual(['Q1', 'Q1']);
    expect(answers(q, 'CZ')).toEqual(['Q3', 'Q3']);
  });

  it('a CopyDone or CopyFail outside copy-in is ignored', () => {
    const { q, pushed } = queue('c', 'Q1', 'f', 'Q2');
    expect(pushed).toEqual([false, true, true, true]);
    expect(answers(q, 'CZCZ')).toEqual(['Q1', 'Q1', 'Q2', 'Q2']);
  });

  it('a server message that answers nothing the server was sent, or the wrong thing, is a protocol error', () => {
    expect(() => queue().q.answer('Z'.charCodeAt(0))).toThrow(PgProtocolError);
    expect(() => queue('Q1').q.answer('1'.charCodeAt(0))).toThrow(/expected the answer to a Query/);
    expect(() => queue('P1').q.answer('Z'.charCodeAt(0))).toThrow(/Parse/);
    expect(() => queue('E1').q.answer('T'.charCodeAt(0))).toThrow(PgProtocolError);
    // Notices, notifications, ParameterStatus and a FATAL error with nothing pending answer nothing.
    const { q } = queue();
    expect(answers(q, 'NASE')).toEqual([undefined, undefined, undefined, undefined]);
  });
});
