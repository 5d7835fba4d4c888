/**
 * Secrets typed into SQL are kept out of what hoop writes down (issue 72, class 8): role and user
 * passwords, FDW and dblink options, secret settings, MySQL's IDENTIFIED BY and SET PASSWORD, and
 * what the detectors find, each as a keyed hash; nothing else changes, comments and quotes read as
 * the servers read them.
 */
import { describe, expect, it } from 'vitest';
import { redactSql, secretParameters, valuesHiddenFromReview, withoutRedactionHashes } from '../../src/policy/sql/redact.js';

const KEY = 'k';
const pg = (sql: string): string => redactSql(sql, 'postgres', { key: KEY }).text;
const my = (sql: string): string => redactSql(sql, 'mysql', { key: KEY }).text;
const marker = /\[redacted:[0-9a-f]{8}\]/;

/** Each of `sqls`, as `redact` writes it down, holds no `hunter2` (nor a piece of it) and a marker in its place. */
function expectRedacted(redact: (sql: string) => string, sqls: readonly string[]): void {
  for (const sql of sqls) {
    const out = redact(sql);
    expect(out, sql).not.toContain('hunter2');
    expect(out, sql).not.toContain('ter2');
    expect(out, sql).toMatch(marker);
  }
}

describe('redacting secrets from SQL', () => {
  it("takes out PostgreSQL's passwords: roles, users, user mappings and servers, dblink and URIs, secret settings", () => {
    expectRedacted(pg, [
      "alter role app password 'hunter2'",
      "create role app login encrypted password 'hunter2' valid until 'infinity'",
      "ALTER USER app WITH PASSWORD 'hunter2'",
      "create user mapping for app server s options (user 'app', password 'hunter2')",
      "select dblink_connect('host=db user=app password=hunter2 dbname=x')",
      "select * from dblink('postgresql://app:hunter2@db/x', 'select 1') as t(a int)",
      "set app.api_token = 'hunter2'",
      "set session my.secret to 'hunter2'",
      "alter role app password E'hun\\'ter2'",
      'alter role app password $pw$hunter2$pw$',
      "alter role app /* a comment's quote */ password 'hunter2'",
    ]);
    // What names no credential stays, to the byte; a statement that names one anywhere has every literal taken (its secret may be where hoop does not look).
    for (const sql of ["select * from users where name = 'bob'", "create role app valid until 'infinity'", "comment on role app is 'the app'"]) expect(pg(sql), sql).toBe(sql);
    expect(pg("create role app login encrypted password 'hunter2' valid until 'infinity'")).toMatch(/valid until '\[redacted:[0-9a-f]{8}\]'$/);
    expect(pg("select 'password' as word")).toMatch(/^select '\[redacted:[0-9a-f]{8}\]' as word$/);
  });

  it("takes out MySQL's: IDENTIFIED BY (with a plugin too), SET PASSWORD, its own quoting and comments", () => {
    expectRedacted(my, [
      "CREATE USER 'app'@'%' IDENTIFIED BY 'hunter2'",
      "ALTER USER app IDENTIFIED WITH caching_sha2_password BY 'hunter2'",
      "SET PASSWORD FOR 'app'@'%' = 'hunter2'",
      'SET PASSWORD = "hunter2"',
      "alter user app identified by 'hun\\'ter2' # a comment",
    ]);
    expect(my("CREATE USER 'app'@'%' IDENTIFIED BY 'hunter2'")).toMatch(/^CREATE USER '\[redacted:[0-9a-f]{8}\]'@'\[redacted:[0-9a-f]{8}\]' IDENTIFIED BY '\[redacted:[0-9a-f]{8}\]'$/);
  });

  it('takes out what the detectors find, hashes a value alike in every session and otherwise not, and says when it redacted', () => {
    const out = redactSql("insert into cards (number, note) values ('4111 1111 1111 1111', 'ok')", 'postgres', { key: KEY, detectors: ['payment-card'] });
    expect(out).toEqual({ text: expect.stringMatching(/^insert into cards \(number, note\) values \('\[redacted:[0-9a-f]{8}\]', 'ok'\)$/), redacted: true, spans: [[42, 61]] });
    expect(pg("alter role a password 'same'").match(marker)![0]).toBe(pg("alter role b password 'same'").match(marker)![0]);
    expect(pg("alter role a password 'same'").match(marker)![0]).not.toBe(pg("alter role a password 'other'").match(marker)![0]);
    expect(redactSql("alter role a password 'x'", 'postgres').text).toBe("alter role a password '[redacted]'");
    expect(redactSql('select 1', 'postgres')).toEqual({ text: 'select 1', redacted: false });
    expect(withoutRedactionHashes(pg("alter role a password 'x'"))).toBe("alter role a password '[redacted]'");
    // A card the server joins from literals that only blanks and comments keep apart (the fourteenth attack): MariaDB joins
    // them whatever the comment, PostgreSQL across a newline; either way the recording takes the whole run.
    for (const [sql, dialect] of [
      ["insert into t values ('4111 1111' /* x */ ' 1111 1111')", 'mysql'],
      ["insert into t values ('4111 1111' -- x\n ' 1111 1111')", 'mysql'],
      ["insert into t values ('4111 1111' # x\n ' 1111 1111')", 'mysql'],
      ['insert into t values ("4111 1111" " 1111 1111")', 'mysql'],
      ["insert into t values ('4111 1111' -- x\n ' 1111 1111')", 'postgres'],
    ] as const) {
      const r = redactSql(sql, dialect, { key: KEY, detectors: ['payment-card'] });
      expect(r.text, sql).not.toMatch(/4111|1111 1111/);
    }
    expect(redactSql("select 'a' /* x */ 'b'", 'mysql', { key: KEY, detectors: ['payment-card'] }).redacted).toBe(false);
    // A card MariaDB reads from a wide character set's hex or from a bit literal (the fifteenth attack).
    const card = '4111111111111111';
    for (const sql of [
      `update t set s = _utf16 0x${Buffer.from(card, 'utf16le').swap16().toString('hex')}`,
      `update t set s = _utf32 0x${[...card].map((c) => `000000${c.charCodeAt(0).toString(16)}`).join('')}`,
      `update t set s = b'${[...Buffer.from(card)].map((b) => b.toString(2).padStart(8, '0')).join('')}'`,
    ])
      expect(redactSql(sql, 'mysql', { key: KEY, detectors: ['payment-card'] }).redacted, sql).toBe(true);
  });

  it("takes out a function's key or password argument, and the value of a secret setting set by set_config, in either dialect", () => {
    expectRedacted(pg, [
      "select set_config('app.api_token', 'hunter2', false)",
      "select pg_catalog.set_config('my.secret', 'hunter2', true)",
      "select pgp_sym_encrypt('data', 'hunter2')",
      "select pgp_sym_decrypt(col, 'hunter2') from t",
      "select hmac('data', 'hunter2', 'sha256')",
      "select encrypt('data', 'hunter2', 'aes')",
      "select crypt('hunter2', gen_salt('bf'))",
      "select pgp_pub_decrypt(col, dearmor('-----key'), 'hunter2') from t",
    ]);
    for (const sql of ["SELECT AES_ENCRYPT('data', 'hunter2')", "select aes_decrypt(col, 'hunter2') from t", "select password('hunter2')", "SELECT DES_ENCRYPT('data', 'hunter2')"]) {
      expect(my(sql), sql).not.toContain('hunter2');
    }
    // A cipher's call has every literal taken (a key may stand anywhere in it); what only looks alike stays to the byte.
    expect(pg("select pgp_sym_encrypt('data', 'k')")).toMatch(/^select pgp_sym_encrypt\('\[redacted:[0-9a-f]{8}\]', '\[redacted:[0-9a-f]{8}\]'\)$/);
    expect(my("select aes_encrypt('d', 0x68756e74657232)")).not.toContain('68756e74657232');
    for (const sql of ["select encode('x'::bytea, 'hex')", "select upper('hunter2')", "select coalesce(a, 'b') from t"]) expect(pg(sql), sql).toBe(sql);
  });

  it('names the parameters a statement takes as secrets: at a secret place, after a secret word or a secret setting', () => {
    expect(secretParameters('select pgp_sym_encrypt($1, $2)', 'postgres')).toBe('all');
    expect(secretParameters('update users set api_token = $1, name = $2 where id = $3', 'postgres')).toBe('all');
    expect(secretParameters("select set_config('app.token', $1, false)", 'postgres')).toBe('all');
    expect(secretParameters('select encode(?, ?), ?', 'mysql')).toEqual([2]);
    expect(secretParameters('select aes_encrypt(?, ?), ?', 'mysql')).toBe('all');
    expect(secretParameters("insert into t (a, b) values ($1, '$2')", 'postgres')).toEqual([]);
    expect(secretParameters('insert into t (a, b) values (?, ?)', 'mysql')).toEqual([]);
    // Values to columns the statement does not name: any may be a secret.
    expect(secretParameters('insert into t values ($1, $2)', 'postgres')).toBe('all');
    expect(secretParameters('select $1::text', 'postgres')).toEqual([]);
  });

  it('finds a secret by its place however it is spelled: wrapped, cast, named, in a column list, compared either way, executed (an attack of issue 72, class 8)', () => {
    // A statement naming a credential, a cipher or set_config: every parameter and literal is taken.
    for (const sql of [
      "select set_config('app.api_token'::text, ($1), false)",
      "select set_config(setting_name => 'app.api_token', new_value => $1, is_local => false)",
      "select pgp_sym_encrypt(x, coalesce($2, ''))",
      'insert into users (name, password) values ($1, $2), ($3, $4)',
      'update users set password = $1 || $2, name = $3 where id = $4',
      'select count(*) from tok where lower(api_token) = $1',
      'select * from t where row(id, api_token) = row($1, $2)',
      'select set_config($1, $2, false)',
    ])
      expect(secretParameters(sql, 'postgres'), sql).toBe('all');
    expect(pg("insert into users (name, password) values ('bob', 'hunter2')")).toMatch(/values \('\[redacted:[0-9a-f]{8}\]', '\[redacted:[0-9a-f]{8}\]'\)$/);
    // EXECUTE of a statement prepared in the same text: its secret places; of one prepared elsewhere: every argument.
    expect(pg("prepare p as select pgp_sym_encrypt($1, $2); execute p('data', 'hunter2')")).not.toMatch(/data|hunter2/);
    expect(pg("execute q('data', 'hunter2')")).not.toContain('data');
    // MySQL text whose lexing depends on the session's sql_mode or version: every parameter.
    for (const sql of ['SELECT /*!50000 ? ,*/ AES_ENCRYPT(?, ?)', "SELECT '\\', AES_ENCRYPT(?, ?)", 'SELECT "a", AES_ENCRYPT(?, ?)']) expect(secretParameters(sql, 'mysql'), sql).toBe('all');
  });

  it('redacts to the end a literal it cannot read to its end', () => {
    expect(pg("alter role a password 'unterminated")).not.toContain('unterminated');
  });
  it('reads every string form as the servers lex it: U&, dollar tags of any letter, literals joined across a newline, E-string conninfo, URIs (a third attack of issue 72)', () => {
    expectRedacted(pg, [
      "create role r1 login password U&'hunter2'",
      "create role r1 login password U&'hun\\0074er2' UESCAPE '\\'",
      "create role r1 login password u&'hunter2'",
      'create role r2 login password $é$hunter2$é$',
      'create role r2 login password $日本$hunter2$日本$',
      "alter role r password 'hun'\n'ter2'",
      "alter role r password 'hun' -- a comment\n  'ter2'",
      "alter role r password E'hun'\n'ter2'",
      "select dblink_connect(E'host=127.0.0.1\\npassword=hunter2')",
      "select dblink_connect('postgresql://127.0.0.1/app?password=hunter2')",
      "select dblink_connect('postgresql://127.0.0.1/app?sslmode=disable&password=hunter2')",
      "select dblink_connect('postgresql://app:hunter2@127.0.0.1/app')",
      // libpq reads a URI's password to its `@`, blanks and all, and its user to the first `:`.
      "create subscription s connection 'postgresql://rep:hunter2 x@db.example/app' publication p",
      "create subscription s connection 'postgresql://rep user:hunter2@db.example/app' publication p",
      "alter subscription s connection 'postgresql://rep:hunter2\t@db.example/app'",
      "alter subscription s connection 'postgresql://rep:a:b hunter2@db.example/app'",
      "select dblink_connect('host=127.0.0.1 password=' || 'hunter2')",
      "select dblink_connect('host=127.0.0.1 pass' || 'word=hunter2')",
      "select dblink_connect('c1', 'host=h ' || 'password=' || 'hunter2')",
      "select dblink_exec('dbname=app', 'alter role r password ''hunter2''')",
    ]);
    // Literals on one line are not joined (PostgreSQL refuses them): nothing here is a secret.
    expect(pg("select 'a' as x, 'b'")).toBe("select 'a' as x, 'b'");
  });

  it("reads MySQL's executable comments as SQL, introducers apart from their literal, and a PREPARE's text as SQL", () => {
    expectRedacted(my, [
      "create table f (a int) engine=federated connection='mysql://app:hunter2 x@h:3306/db/t'",
      "/*!ALTER USER 'u'@'%' IDENTIFIED BY 'hunter2'*/",
      "/*!50700 ALTER USER 'u'@'%' IDENTIFIED BY 'hunter2'*/",
      "/*M!100100 ALTER USER 'u'@'%' IDENTIFIED BY 'hunter2' */",
      "ALTER USER 'u'@'%' IDENTIFIED BY _utf8mb4 'hunter2'",
      "ALTER USER 'u'@'%' IDENTIFIED BY _utf8mb4'hunter2'",
      "ALTER USER 'u'@'%' IDENTIFIED BY /*!'hunter2'*/",
      "ALTER USER 'u'@'%' IDENTIFIED BY 'hun' 'ter2'",
      "PREPARE s FROM 'ALTER USER ''u''@''%'' IDENTIFIED BY ''hunter2'''",
      "PREPARE s FROM \"ALTER USER 'u'@'%' IDENTIFIED BY 'hunter2'\"",
      "SET @q = 'ALTER USER u IDENTIFIED BY \\'hunter2\\''",
    ]);
  });

  it('never leaves a secret at its place, whatever mix of string forms spells it (generated inputs)', () => {
    // A small deterministic generator (xorshift), so that a failure replays.
    let seed = 0x2545f491;
    const rand = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)]!;
    const tags = ['', 'q', 'é', '_x1', '日本', 'Tag9'];
    const blanks = ['\n', ' \n ', '\r\n', ' -- note\n', '\n\t'];
    /** One literal holding `v` (no quote in it), in one of PostgreSQL's string forms; `join`: `||` allowed. */
    const literal = (v: string, join: boolean): string => {
      const cut = 1 + rand(v.length - 1);
      switch (rand(join ? 6 : 5)) {
        case 0:
          return `'${v}'`;
        case 1:
          return `${pick(['E', 'e'])}'${v}'`;
        case 2:
          return `${pick(['U&', 'u&'])}'${v}'${rand(2) ? " UESCAPE '!'" : ''}`;
        case 3: {
          const tag = pick(tags);
          return `$${tag}$${v}$${tag}$`;
        }
        case 4:
          return `'${v.slice(0, cut)}'${pick(blanks)}'${v.slice(cut)}'`;
        default:
          return `${literal(v.slice(0, cut), false)} || ${literal(v.slice(cut), false)}`;
      }
    };
    // Secret places; `true` where PostgreSQL takes an expression there (not PASSWORD nor OPTIONS).
    const places: ReadonlyArray<[(l: string) => string, boolean]> = [
      [(l) => `create role r login password ${l}`, false],
      [(l) => `alter user r with encrypted password ${l} valid until 'infinity'`, false],
      [(l) => `create user mapping for app server s options (user 'app', password ${l})`, false],
      [(l) => `select dblink_connect(${l})`, true],
      [(l) => `select dblink_connect('c1', ${l})`, true],
      [(l) => `select * from dblink(${l}, 'select 1') as t(a int)`, true],
      [(l) => `select pgp_sym_encrypt('data', ${l})`, true],
      [(l) => `select set_config('app.api_token', ${l}, false)`, true],
    ];
    for (let round = 0; round < 1000; round++) {
      const secret = `k${rand(1e9).toString(36)}Q${rand(1e9).toString(36)}`;
      const [place, join] = pick(places);
      const sql = place(literal(secret, join));
      const out = pg(sql);
      // Neither the secret nor any piece of it (a literal split in two).
      for (let k = 0; k + 4 <= secret.length; k++) expect(out, sql).not.toContain(secret.slice(k, k + 4));
    }
  });

  it('takes every literal of a statement that names a credential or a cipher anywhere, so a secret where hoop does not look is taken too (a fourth attack of issue 72)', () => {
    const secret = 'sekrit';
    for (const sql of [
      `create user mapping for current_user server s1 options (user 'x', U&"p\\0061ssword" '${secret}')`,
      `create subscription sub1 connection 'postgresql://127.0.0.1/app?%70assword=${secret}' publication p`,
      `alter system set primary_conninfo = 'host=h sslpassword=${secret}'`,
      `select set_config(new_value => '${secret}', setting_name => 'app.secret', is_local => false)`,
      `update creds set (id, password) = (1, '${secret}')`,
      `insert into creds (id, password) select 1, '${secret}'`,
      `select dblink_exec('host=h dbname=app', 'alter role r1 password ' || quote_literal('${secret}'))`,
      `do $$ begin execute 'alter role r1 password ' || quote_literal('${secret}'); end $$`,
      `copy creds from program 'PGPASSWORD=${secret} psql -h x'`,
    ])
      expect(pg(sql), sql).not.toContain(secret);
    for (const sql of [
      `ALTER USER u --\x01 '\n IDENTIFIED BY '${secret}'`,
      `select aes_encrypt('d', 0x${Buffer.from(secret).toString('hex')})`,
      `SET @q = CONCAT('ALTER USER u IDENTIFIED BY ', QUOTE('${secret}'))`,
      `ALTER USER u IDENTIFIED VIA mysql_native_password USING '*${secret}'`,
      `CREATE USER u IDENTIFIED WITH 'mysql_native_password' AS '${secret}'`,
      `ALTER USER u IDENTIFIED BY 'new' REPLACE '${secret}'`,
    ])
      expect(my(sql), sql).not.toMatch(new RegExp(`${secret}|${Buffer.from(secret).toString('hex')}`));
  });

  it('takes every value of a statement naming a token or a setting by set_config, bare words of a SET, escapes that spell a secret (a fifth attack of issue 72)', () => {
    for (const sql of [
      'set app.api_token = sekrit',
      'set app.api_token to 12345678',
      'alter role r1 set app.api_token = sekrit',
      "select * from tok where lower(api_token) = 'sekrit'",
      "update tok set api_token = 'x' where (id, api_token) in ((1, 'sekrit'))",
      "insert into tok (id, api_token) select 1, 'sekrit'",
      "create subscription s1 connection E'host=h \\x70assword=sekrit' publication p",
      "select 'postgresql://u:pw\\x40' || 'sekrit'",
    ])
      expect(pg(sql), sql).not.toMatch(/sekrit|12345678/);
    expect(my('set @api_token = 0x736563726574')).not.toContain('736563726574');
    // Values going to columns the statement does not name: any may be a secret.
    for (const sql of [
      "insert into creds values ('alice', 'sekrit')",
      'INSERT INTO public."Creds" VALUES (1, \'sekrit\')',
      "insert into creds as c values (1, 'sekrit')",
      "insert into creds overriding system value values (1, 'sekrit')",
      "insert into creds (select 1, 'sekrit')",
      "insert into creds select 1, 'sekrit'",
    ])
      expect(pg(sql), sql).not.toMatch(/sekrit/);
    for (const sql of ["insert ignore creds values ('alice', 'sekrit')", "replace into `creds` value ('alice', 'sekrit')", "insert low_priority into creds values ('alice', 'sekrit')"])
      expect(my(sql), sql).not.toMatch(/sekrit/);
    expect(pg("insert into orders (id, status) values (5, 'paid')")).toBe("insert into orders (id, status) values (5, 'paid')");
    // What names none of them keeps its values: a reviewer sees which row.
    expect(pg("update orders set total = 0 where id = 5 and status = 'paid'")).toBe("update orders set total = 0 where id = 5 and status = 'paid'");
  });
});

describe('what a reviewer could not see', () => {
  it('says why, where hoop hides every literal and some stand at no secret’s place; nothing where each hidden value is a secret', () => {
    for (const dialect of ['postgres', 'mysql'] as const) {
      expect(valuesHiddenFromReview("update t set note = 'x' where id = 7 -- token", dialect)).toMatch(/names a credential/);
      expect(valuesHiddenFromReview("update t set note = 'x' /* password */", dialect)).toMatch(/names a credential/);
      expect(valuesHiddenFromReview("insert into t values (1, 'a')", dialect)).toMatch(/names no columns/);
      for (const shown of ["update t set note = 'x' where id = 7", "update users set api_token = 'abc' where id = 3", "insert into t (a, b) values (1, 'a')", 'update t set n = 1 -- token'])
        expect(valuesHiddenFromReview(shown, dialect), shown).toBeUndefined();
    }
    expect(valuesHiddenFromReview("alter role bob password 'hunter2'", 'postgres')).toBeUndefined();
  });
});
