/**
 * Parser consistency at run time: the gateway judges SQL as PostgreSQL reads it with
 * `standard_conforming_strings = on` and a backslash-safe client encoding. The analyzer refuses
 * `SET` of those settings, but a DO block or a function can still change them; the server then
 * reports the change (ParameterStatus) and the gateway ends the session. A server that starts
 * the session with them already unsafe is refused before the client gets ReadyForQuery. A
 * statement pipelined behind the change is never judged under the old lexing: one whose text
 * has a backslash waits until the server has answered what came before it (or, behind an
 * unsynced Bind or Execute, is refused).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { Policy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { query } from '../../src/postgres/wire/messages.js';
import { bind, execute, frontendMessage, parse, sync } from '../harness/pg-frontend.js';
import { psql } from '../harness/clients.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

const policy: Policy = {
  connections: [],
  access: [],
  statements: { unparseable: 'deny', rules: [{ name: 'no-drop', match: { kinds: ['drop'] }, action: 'deny' }] },
  masking: { columns: [], names: [], detectors: [], derived: 'mask' },
  recording: { results: 'masked', rowCap: 1000, onFailure: 'close', auditors: [] },
  tests: [],
};

let stack: HoopStack;
let judged: RunningConnect;
let plain: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      sessionPolicy: (identity, connection) =>
        identity.groups.includes('nojudge') ? undefined : { judge: new StatementJudge(policy, { subject: identity.subject, groups: identity.groups }, connection.name, 'read-write') },
    },
  });
  await stack.pg.psql(
    `create function flip(is_local boolean) returns text language plpgsql as $$ begin return set_config('standard_conforming_strings', 'off', is_local); end $$;
     create table victim (id int); alter table victim owner to ${stack.pg.users.scram.user}`,
    { database: 'app' },
  );
  judged = await stack.connect('app', await stack.token('alice'));
  plain = await stack.connect('app', await stack.token('bob', ['nojudge']));
});

afterAll(async () => {
  await judged?.stop();
  await plain?.stop();
  await stack?.close();
});

async function raw(c: RunningConnect): Promise<RawFrontend> {
  const f = await RawFrontend.tcp(c.info.port);
  await f.startup(c.info.password, [
    ['user', c.info.user],
    ['database', c.info.database],
  ]);
  return f;
}

const said = (setting: string): string => `hoop: the session changed ${setting}, which the gateway's checks rely on (how SQL reads, or read-only access); the session is closed`;

describe('a judged session whose SQL changes how the server reads SQL', () => {
  it('is ended when a DO block turns standard_conforming_strings off', async () => {
    const f = await raw(judged);
    f.write(query("do $$ begin perform set_config('standard_conforming_strings', 'off', false); end $$"));
    const e = await f.error();
    expect(e).toMatchObject({ severity: 'FATAL', code: '0A000', message: said('standard_conforming_strings') });
    expect(await f.closed()).toBe(true);
    expect(stack.logs().some((l) => l.event === 'session.unsafe-setting' && l.setting === 'standard_conforming_strings')).toBe(true);
    await expect.poll(() => stack.logs().some((l) => l.event === 'tunnel.close' && l.reason === 'unsafe-setting')).toBe(true);
  });

  it('is ended when a function does it, also for the transaction only', async () => {
    // A change local to a transaction counts once the server reports it (at ReadyForQuery), i.e.
    // when a later message could be read with it.
    for (const sql of [['select flip(false)'], ['begin', 'select flip(true)']]) {
      const r = await psql(judged.info, ['-At', '-v', 'ON_ERROR_STOP=1', ...sql.flatMap((c) => ['-c', c]), '-c', 'select 1']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(said('standard_conforming_strings'));
    }
    // Within one Query message the server parsed the whole string before running any of it, and
    // reports nothing when the value is back to on at its end: nothing to close.
    const r = await psql(judged.info, ['-At', '-v', 'ON_ERROR_STOP=1', '-c', 'begin; select flip(true); commit', '-c', 'select 42']);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('42');
  });

  it('is ended when a DO block switches client_encoding to an encoding whose characters can hold a backslash', async () => {
    const f = await raw(judged);
    f.write(query("do $$ begin perform set_config('client_encoding', 'SJIS', false); end $$"));
    const e = await f.error();
    expect(e).toMatchObject({ severity: 'FATAL', message: said('client_encoding') });
    expect(await f.closed()).toBe(true);
  });

  it('is ended for SHIFT_JIS_2004 too, before a statement smuggled behind a backslash runs; the table stays', async () => {
    const f = await raw(judged);
    // In SHIFT_JIS_2004, 0x81 0x5C is one character: the backslash would vanish and the literal end early.
    const smuggled = Buffer.concat([Buffer.from("SELECT E'"), Buffer.from([0xc2, 0x81]), Buffer.from("\\'; DROP TABLE victim; --'\0")]);
    f.write(Buffer.concat([query("do $$ begin perform set_config('client_encoding', 'SHIFT_JIS_2004', false); end $$"), frontendMessage('Q', smuggled)]));
    const e = await f.error();
    expect(e).toMatchObject({ severity: 'FATAL', message: said('client_encoding') });
    expect(await f.closed()).toBe(true);
    expect((await stack.pg.psql("select count(*) from pg_tables where tablename = 'victim'", { database: 'app' })).trim()).toBe('1');
  });

  it('is refused at startup with an encoding whose characters can hold a backslash, under any alias', async () => {
    for (const encoding of ['SHIFT_JIS_2004', 'shift-jis-2004', 'windows932']) {
      const r = await psql(judged.info, ['-At', '-c', 'select 1'], { env: { PGCLIENTENCODING: encoding } });
      expect(r.code, encoding).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`startup parameter "client_encoding" is not allowed through hoop: client_encoding "${encoding}"`);
    }
  });

  it('goes on when the change is harmless (LATIN1, standard_conforming_strings on)', async () => {
    const r = await psql(judged.info, [
      '-At',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      "do $$ begin perform set_config('standard_conforming_strings', 'on', false); perform set_config('client_encoding', 'LATIN1', false); end $$",
      '-c',
      'select 40 + 2',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n').at(-1)).toBe('42');
  });

  it('is not watched without a judge', async () => {
    const r = await psql(plain.info, [
      '-At',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      "do $$ begin perform set_config('standard_conforming_strings', 'off', false); end $$",
      '-c',
      'show standard_conforming_strings',
    ]);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('off');
  });
});

describe('a statement pipelined behind a change of standard_conforming_strings', () => {
  // With standard_conforming_strings on (how the gateway reads it) this selects two strings;
  // with it off (how the server would read it after flip) the second quote is escaped and a DROP runs.
  const EVIL = "select 'a\\' , ' ; drop table victim ; -- '";
  const victimExists = async (): Promise<boolean> => (await stack.pg.psql("select to_regclass('public.victim') is not null", { database: 'app' })).trim() === 't';

  it('is held until the server answered, in one write of simple Queries: the session ends, the table stays', async () => {
    const f = await raw(judged);
    f.write(Buffer.concat([query('select flip(false)'), query(EVIL)]));
    expect(await f.error()).toMatchObject({ severity: 'FATAL', message: said('standard_conforming_strings') });
    expect(await f.closed()).toBe(true);
    expect(await victimExists()).toBe(true);
  });

  it('is held behind an earlier Sync batch of the extended protocol', async () => {
    const f = await raw(judged);
    f.write(Buffer.concat([parse('', 'select flip(false)'), bind('', ''), execute(''), sync(), parse('', EVIL), bind('', ''), execute(''), sync()]));
    expect(await f.error()).toMatchObject({ severity: 'FATAL', message: said('standard_conforming_strings') });
    expect(await f.closed()).toBe(true);
    expect(await victimExists()).toBe(true);
  });

  it('is refused behind an Execute of the same unsynced batch', async () => {
    const f = await raw(judged);
    f.write(Buffer.concat([parse('', 'select flip(false)'), bind('', ''), execute(''), parse('', EVIL), bind('', ''), execute(''), sync()]));
    const e = await f.error();
    expect(e).toMatchObject({ code: '42501' });
    expect(e?.message).toContain('hoop:lexing-pending');
    expect(await victimExists()).toBe(true);
  });

  it('costs a backslash-free pipeline nothing, and a backslash statement in its own batch runs', async () => {
    const f = await raw(judged);
    const from = f.raw.length;
    f.write(Buffer.concat([query('select 1'), query("select 'a\\b' as v"), parse('', "select 'c\\d'"), bind('', ''), execute(''), sync()]));
    const all = await f.messagesSince(from, 3);
    expect(all.filter((m) => m.type === 0x45)).toHaveLength(0);
    expect(Buffer.concat(all.map((m) => m.raw)).toString('latin1')).toContain('a\\b');
    expect(Buffer.concat(all.map((m) => m.raw)).toString('latin1')).toContain('c\\d');
    f.destroy();
  });
});

describe('a server that starts the session unsafe', () => {
  it('is refused before ReadyForQuery for a judged session', async () => {
    await stack.pg.psql('alter database app set standard_conforming_strings = off', { database: 'postgres' });
    try {
      const r = await psql(judged.info, ['-At', '-c', 'select 1']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('hoop: the server reports standard_conforming_strings = off');
      expect(stack.logs().filter((l) => l.event === 'tunnel.close' && l.reason === 'unsafe-setting').length).toBeGreaterThan(0);
      const p = await psql(plain.info, ['-At', '-c', 'show standard_conforming_strings']);
      expect(p.stdout.trim()).toBe('off');
    } finally {
      await stack.pg.psql('alter database app reset standard_conforming_strings', { database: 'postgres' });
    }
    const ok = await psql(judged.info, ['-At', '-c', 'select 1']);
    expect(ok.stdout.trim()).toBe('1');
  });
});
