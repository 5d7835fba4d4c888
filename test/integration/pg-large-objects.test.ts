/**
 * Large objects under a masking policy with detectors (issue 72, class 9): libpq's lo_* calls
 * (psql's `\lo_import` and `\lo_export`, psycopg2's `lobject`, pgjdbc's `LargeObjectManager`) are FunctionCalls whose answers
 * (FunctionCallResponse: one value, no column count) pass the detectors as any function's result
 * does. They ended the session ("DataRow has trailing bytes") when read as a DataRow; now they
 * work, the database holds what the client wrote, and what is read back is masked.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { libpqEnv, psql, runProcess } from '../harness/clients.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

const CARD = '4111 1111 1111 1111';
const policy: MaskingPolicy = { columns: [], names: [], detectors: [{ detector: 'payment-card', strategy: 'redact' }], derived: 'mask' };
const files = mkdtempSync(join(tmpdir(), 'hoop-lo-'));
let stack: HoopStack;
let connected: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({ gateway: { sessionPolicy: () => ({ masking: { policy } }) } });
  connected = await stack.connect('app', await stack.token('alice'));
});

afterAll(async () => {
  await connected?.stop();
  await stack?.close();
  rmSync(files, { recursive: true, force: true });
});

/** What the database holds of large object `oid`, read straight from it. */
const stored = async (oid: string): Promise<string> => (await stack.pg.psql(`select convert_from(lo_get(${oid}), 'UTF8')`, { database: 'app' })).trim();

describe('large objects through hoop connect, with the payment-card detector on', () => {
  it("psql's \\lo_import and \\lo_export run: the database holds the file, what comes back is masked, and the session goes on", async () => {
    writeFileSync(join(files, 'in.txt'), `card ${CARD} on file\n`, { mode: 0o644 });
    const r = await psql(connected.info, ['-c', `\\lo_import ${join(files, 'in.txt')}`, '-c', 'select 41 + 1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('42');
    const oid = /lo_import (\d+)/.exec(r.stdout)![1]!;
    expect(await stored(oid)).toBe(`card ${CARD} on file`);
    const out = join(files, 'out.txt');
    const e = await psql(connected.info, ['-c', `\\lo_export ${oid} ${out}`, '-c', 'select 43']);
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toContain('43');
    expect(readFileSync(out, 'utf8')).not.toContain(CARD);
  });

  it("psycopg2's lobject writes and reads a large object", async () => {
    const py = `import psycopg2
c = psycopg2.connect('')
lo = c.lobject(0, 'wb'); lo.write(b'plain bytes, no card'); oid = lo.oid; lo.close(); c.commit()
lo = c.lobject(oid, 'rb'); print(oid, lo.read().decode()); lo.close()
cur = c.cursor(); cur.execute('select 7'); print(cur.fetchone()[0])
`;
    const r = await runProcess('/usr/bin/python3', ['-c', py], { env: { PATH: process.env.PATH, ...libpqEnv(connected.info) } });
    expect(r.code, r.stderr).toBe(0);
    const [line, seven] = r.stdout.trim().split('\n');
    expect(line).toMatch(/^\d+ plain bytes, no card$/);
    expect(seven).toBe('7');
    expect(await stored(line!.split(' ')[0]!)).toBe('plain bytes, no card');
  });

  it("pgjdbc's LargeObjectManager (its fastpath calls) writes and reads a large object; a card in it comes back masked", async () => {
    const program = `import java.sql.*;
import org.postgresql.PGConnection;
import org.postgresql.largeobject.*;
public class Lo {
  public static void main(String[] a) throws Exception {
    try (Connection c = DriverManager.getConnection(a[0], a[1], a[2])) {
      c.setAutoCommit(false);
      LargeObjectManager m = c.unwrap(PGConnection.class).getLargeObjectAPI();
      long oid = m.createLO(LargeObjectManager.READWRITE);
      try (LargeObject lo = m.open(oid, LargeObjectManager.WRITE)) { lo.write(("card " + a[3] + " inside").getBytes("UTF-8")); }
      c.commit();
      try (LargeObject lo = m.open(oid, LargeObjectManager.READ)) { System.out.println(oid + " " + new String(lo.read(lo.size()), "UTF-8")); }
      c.commit();
      try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("select 8")) { r.next(); System.out.println(r.getInt(1)); }
    }
  }
}
`;
    writeFileSync(join(files, 'Lo.java'), program);
    const { info } = connected;
    const r = await runProcess(
      'java',
      ['-cp', '/usr/share/java/postgresql.jar', join(files, 'Lo.java'), `jdbc:postgresql://${info.host}:${info.port}/${info.database}?sslmode=disable`, info.user, info.password, CARD],
      {
        env: { PATH: process.env.PATH },
        timeoutMs: 60_000,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    const [line, eight] = r.stdout.trim().split('\n');
    const [oid, ...text] = line!.split(' ');
    // The database holds what the client wrote; what it read back passed the detector.
    expect(await stored(oid!)).toBe(`card ${CARD} inside`);
    expect(text.join(' ')).not.toContain(CARD);
    expect(text.join(' ')).toMatch(/^card .+ inside$/);
    expect(eight).toBe('8');
  });
});
