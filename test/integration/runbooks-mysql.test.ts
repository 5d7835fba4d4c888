/**
 * Runbook runs on MariaDB (src/gateway/api/runbook-run.ts): each step a prepared statement with its
 * values bound (each `?` in turn), the steps in one transaction that a failing or refused step
 * rolls back, the policy's statement rules judging them, a hostile value stored as given.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMariaDb, type MariaServer } from '../harness/mariadb.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack } from '../harness/stack.js';

let db: MariaServer;
let stack: HoopStack;
let repo: PolicyGitRepo;

const REFUND = `version: 1
description: Refund a paid order
connection: shop
parameters:
  order_id: { type: integer, min: 1 }
  reason: { type: string }
steps:
  - sql: update rb_orders set status = 'refunded' where id = ? and status = 'paid'
    params: [order_id]
  - sql: insert into rb_refunds (order_id, reason) values (?, ?)
    params: [order_id, reason]
  - sql: select id, status from rb_orders where id = ?
    params: [order_id]
run:
  - { groups: [support] }
maxAffectedRows: 1
`;

const PURGE = `version: 1
description: Delete an order (the policy denies deletes)
connection: shop
parameters:
  order_id: { type: integer }
steps:
  - sql: update rb_orders set status = 'purging' where id = ?
    params: [order_id]
  - sql: delete from rb_orders where id = ?
    params: [order_id]
run:
  - { groups: [support] }
`;

beforeAll(async () => {
  db = await startMariaDb();
  await db.sql(
    `create table rb_orders (id int primary key, status varchar(20) not null);
create table rb_refunds (order_id int not null, reason varchar(200) not null, check (order_id < 1000));
insert into rb_orders values (1, 'paid'), (2, 'paid'), (3, 'paid'), (2000, 'paid');`,
    { database: 'app' },
  );
  repo = new PolicyGitRepo('hoop-runbooks-mysql-');
  const tls = `{ mode: verify-full, ca: ${db.caFile}, serverName: localhost }`;
  stack = await startStack({
    env: { MARIA_PASSWORD: db.users.native.password },
    policy: () => {
      mkdirSync(join(repo.dir, 'runbooks'));
      writeFileSync(join(repo.dir, 'runbooks', 'refund-order.yaml'), REFUND);
      writeFileSync(join(repo.dir, 'runbooks', 'purge-order.yaml'), PURGE);
      repo.commit(`version: 1
connections:
  - { name: shop, type: mysql, host: 127.0.0.1, port: ${db.port}, database: app, user: app, password: "\${env:MARIA_PASSWORD}", tls: ${tls} }
access:
  - { name: nobody, subjects: [nobody], connections: [shop], mode: read-only }
statements:
  rules:
    - { name: no-deletes, match: { kinds: [delete] }, action: deny, message: rows are not deleted here }
`);
      return repo.gatewayBlock(['${env:MARIA_*}']);
    },
  });
});

afterAll(async () => {
  await stack?.close();
  repo?.remove();
  await db?.stop();
});

const SUPPORT = { subject: 'sam', groups: ['support'] };

async function hoop(argv: string[]) {
  return stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(SUPPORT.subject, SUPPORT.groups) });
}

describe('a runbook run on MariaDB', () => {
  it('binds each value to its ?, runs the steps in one transaction, and returns what the last selects', async () => {
    const reason = "x', 'y'); delete from rb_orders; -- \\ ?";
    const r = await hoop(['runbook', 'run', 'refund-order', '-p', 'order_id=1', '-p', `reason=${reason}`, '--json']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({
      outcome: 'ran',
      steps: [
        { step: 1, tag: 'OK 1' },
        { step: 2, tag: 'OK 1' },
        { step: 3, columns: ['id', 'status'], rows: [['1', 'refunded']] },
      ],
    });
    expect(await db.sql('select status from rb_orders where id = 1; select reason from rb_refunds where order_id = 1', { database: 'app' })).toBe(`refunded\n${reason.replace(/\\/g, '\\\\')}\n`);
    expect(await db.sql('select count(*) from rb_orders', { database: 'app' })).toBe('4\n');
  });

  it('keeps nothing when a step fails, and says which', async () => {
    const r = await hoop(['runbook', 'run', 'refund-order', '-p', 'order_id=2000', '-p', 'reason=late']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/step 2 failed: .*CONSTRAINT/i);
    expect(await db.sql('select status from rb_orders where id = 2000', { database: 'app' })).toBe('paid\n');
  });

  it("is judged by the policy's statement rules: a refused step rolls back the steps before it", async () => {
    const r = await hoop(['runbook', 'run', 'purge-order', '-p', 'order_id=3']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('step 2 refused');
    expect(await db.sql('select status from rb_orders where id = 3', { database: 'app' })).toBe('paid\n');
  });
});
