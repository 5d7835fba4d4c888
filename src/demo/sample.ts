/**
 * What the demo holds: its accounts, the `shop` database (customers with emails, card numbers
 * and SSNs; their orders), and the config repo's policy that guards it (mask emails, card
 * numbers and SSNs; deny DROP and TRUNCATE; ask a reviewer for UPDATE / DELETE that may touch
 * every row; read-write engineers, read-only analysts), with its own test cases.
 *
 * The data is made up and the same on every run: card numbers pass the Luhn check (so the
 * payment-card detector sees them as cards) and SSNs are in the issued ranges.
 *
 * @see https://en.wikipedia.org/wiki/Luhn_algorithm
 */
import type { DemoAccount } from './issuer.js';

/** Who can sign in to the demo. */
export const DEMO_ACCOUNTS: Record<string, DemoAccount> = {
  demo: { name: 'Dana Demo (engineer)', email: 'demo@hoop.example', groups: ['engineers'] },
  analyst: { name: 'Ari Analyst', email: 'analyst@hoop.example', groups: ['analysts'] },
  reviewer: { name: 'Rae Reviewer (DBA)', email: 'rae@hoop.example', groups: ['dba'] },
};

/** The account that reviews held statements in the demo (a second CLI login, in its own config directory). */
export const DEMO_REVIEWER = 'reviewer';

/** The account the demo signs in as. */
export const DEMO_USER = 'demo';
/** The demo's connection, database and the role the gateway signs in with. */
export const DEMO_CONNECTION = 'demo-db';
export const DEMO_DATABASE = 'shop';
export const DEMO_ROLE = 'shop_app';

const FIRST = [
  'Ada',
  'Grace',
  'Alan',
  'Barbara',
  'Linus',
  'Margaret',
  'Dennis',
  'Frances',
  'Ken',
  'Radia',
  'Edsger',
  'Sophie',
  'Tim',
  'Hedy',
  'Guido',
  'Karen',
  'Bjarne',
  'Anita',
  'John',
  'Katherine',
];
const LAST = [
  'Lovelace',
  'Hopper',
  'Turing',
  'Liskov',
  'Torvalds',
  'Hamilton',
  'Ritchie',
  'Allen',
  'Thompson',
  'Perlman',
  'Dijkstra',
  'Wilson',
  'Berners-Lee',
  'Lamarr',
  'van Rossum',
  'Sparck Jones',
  'Stroustrup',
  'Borg',
  'Backus',
  'Johnson',
];
const COUNTRIES = ['GB', 'US', 'FR', 'DE', 'NL', 'SE', 'IE', 'CA'];
const STATUSES = ['paid', 'shipped', 'delivered', 'refunded'];

/** `digits` followed by its Luhn check digit. */
function withLuhn(digits: string): string {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return `${digits}${(10 - (sum % 10)) % 10}`;
}

function sql(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The shop's customers, as the database and the demo's API hold them. */
export function sampleCustomers(): Array<{ id: number; name: string; email: string; card_number: string; ssn: string; country: string }> {
  return FIRST.map((first, n) => {
    const i = n + 1;
    const last = LAST[n]!;
    return {
      id: i,
      name: `${first} ${last}`,
      email: `${`${first}.${last}`.toLowerCase().replace(/[^a-z.]/g, '')}@example.com`,
      card_number: withLuhn(`4${String(100000000000000 + i * 7_919_731).slice(0, 14)}`).replace(/(\d{4})(?=\d)/g, '$1 '),
      ssn: `${String(100 + ((i * 37) % 500)).padStart(3, '0')}-${String(10 + ((i * 13) % 89)).padStart(2, '0')}-${String(1000 + ((i * 271) % 8999)).padStart(4, '0')}`,
      country: COUNTRIES[i % COUNTRIES.length]!,
    };
  });
}

/** The `shop` schema and its rows, as one SQL script run by the database's owner, in PostgreSQL's words or MySQL's. */
export function sampleSchemaSql(dialect: 'postgres' | 'mysql' = 'postgres'): string {
  const my = dialect === 'mysql';
  const customers = sampleCustomers().map((c) => `(${c.id}, ${sql(c.name)}, ${sql(c.email)}, ${sql(c.card_number)}, ${sql(c.ssn)}, ${sql(c.country)})`);
  const orders: string[] = [];
  for (let i = 1; i <= 60; i++) {
    const customer = ((i * 7) % FIRST.length) + 1;
    const total = ((i * 1937) % 50000) / 100 + 5;
    const placed = my ? `timestamp '2026-01-01 09:00:00' + interval ${i * 17} hour` : `timestamptz '2026-01-01 09:00+00' + interval '${i * 17} hours'`;
    orders.push(`(${i}, ${customer}, ${total.toFixed(2)}, ${sql(STATUSES[i % STATUSES.length]!)}, ${placed})`);
  }
  const text = my ? 'varchar(255)' : 'text';
  return `create table customers (
  id int primary key,
  name ${text} not null,
  email ${text} not null unique,
  card_number ${text},
  ssn ${text},
  country ${text}
);
create table orders (
  id int primary key,
  customer_id int not null references customers${my ? ' (id)' : ''},
  total numeric(10, 2) not null,
  status ${text} not null,
  placed_at ${my ? 'datetime' : 'timestamptz'} not null
);
insert into customers values
  ${customers.join(',\n  ')};
insert into orders values
  ${orders.join(',\n  ')};
`;
}

/** Where the demo's connection is and how the gateway signs in to it. */
export interface SampleTarget {
  port: number;
  /** The file holding the role's password (the bundle refers to it as a secret). */
  passwordFile: string;
  /** The demo's sshd, when OpenSSH's server is installed: the `demo-ssh` connection. */
  ssh?: { port: number; user: string; keyFile: string; hostKey: string };
  /** The demo's MariaDB server, when installed: the `demo-mysql` connection. */
  mysql?: { port: number; passwordFile: string };
  /** The reference MCP filesystem server over the demo's `files` directory, when installed: the `demo-files` connection. */
  files?: { command: string[] };
  /** The demo's REST API (./rest-api.ts): the `demo-api` connection. */
  api?: { port: number; tokenFile: string };
}

/** The demo's HTTP connection: the shop's REST API, its token held by the gateway. */
export const DEMO_API_CONNECTION = 'demo-api';

/** The demo's MCP connection (when the reference filesystem server is installed): the tools of a directory of files. */
export const DEMO_FILES_CONNECTION = 'demo-files';

/** The demo's MySQL connection (when MariaDB's server is installed): the same shop, the same policy. */
export const DEMO_MYSQL_CONNECTION = 'demo-mysql';

/** The demo's SSH connection (when OpenSSH's server is installed). */
export const DEMO_SSH_CONNECTION = 'demo-ssh';

/**
 * The files of the demo's config repo: `hoop.yaml` (connection, access, statement rules,
 * masking), `policy/tests/demo.yaml` (what `hoop policy test` checks) and the data its masking
 * case runs on (`policy/fixtures/shop.sql`).
 */
export function samplePolicyFiles(target: SampleTarget): Record<string, string> {
  return {
    'hoop.yaml': [connectionsYaml(target), accessYaml(target), STATEMENTS_YAML, RUNS_AND_ALERTS_YAML, maskingYaml(target), sshRulesYaml(target), mcpRulesYaml(target), httpRulesYaml(target)].join(''),
    'policy/tests/demo.yaml': POLICY_TESTS_YAML,
    'runbooks/refund-order.yaml': REFUND_RUNBOOK,
    'runbooks/lookup-customer.yaml': LOOKUP_RUNBOOK,
    'policy/fixtures/shop.sql': `-- The data the masking case of policy/tests/demo.yaml runs on (the demo's own).\n${sampleSchemaSql()}`,
  };
}

/** `hoop.yaml`'s head and its connections: the demo's database, and its sshd when there is one. */
function connectionsYaml(target: SampleTarget): string {
  return `# The demo's policy: who may reach demo-db, what they may run, what they may see.
# hoop reads it from this git repository; commit a change and the gateway picks it up.
version: 1

connections:
  - name: ${DEMO_CONNECTION}
    type: postgres
    host: 127.0.0.1
    port: ${target.port}
    database: ${DEMO_DATABASE}
    user: ${DEMO_ROLE}
    password: \${file:${target.passwordFile}}   # a secret reference: only the gateway reads it
    tls: { mode: disable }                      # the demo's server is on this machine
${
  target.ssh
    ? `  - name: ${DEMO_SSH_CONNECTION}                             # the demo's own sshd: the gateway alone holds its key
    type: ssh
    host: 127.0.0.1
    port: ${target.ssh.port}
    user: ${target.ssh.user}
    privateKey: \${file:${target.ssh.keyFile}}
    hostKeys: ["${target.ssh.hostKey}"]         # pinned: another server is refused
`
    : ''
}${
  target.mysql
    ? `  - name: ${DEMO_MYSQL_CONNECTION}                           # the same shop on the demo's MariaDB
    type: mysql
    host: 127.0.0.1
    port: ${target.mysql.port}
    database: ${DEMO_DATABASE}
    user: ${DEMO_ROLE}
    password: \${file:${target.mysql.passwordFile}}
    tls: { mode: disable }
`
    : ''
}${
  target.files
    ? `  - name: ${DEMO_FILES_CONNECTION}                           # an MCP server: the gateway runs it, agents reach its tools through hoop
    type: mcp
    command: ${JSON.stringify(target.files.command)}
`
    : ''
}${
  target.api
    ? `  - name: ${DEMO_API_CONNECTION}                             # the shop's REST API: the gateway alone holds its token
    type: http
    url: http://127.0.0.1:${target.api.port}
    plainHttp: true                             # the demo's API is on this machine; use https elsewhere
    credential: { bearer: "\${file:${target.api.tokenFile}}" }
`
    : ''
}
`;
}

/** `hoop.yaml`'s access rules: engineers read and write (the SSH connection too), analysts only read. */
function accessYaml(target: SampleTarget): string {
  return `access:                                         # nobody gets in unless a rule admits them
  - { name: engineers, groups: [engineers], connections: [${DEMO_CONNECTION}${target.ssh ? `, ${DEMO_SSH_CONNECTION}` : ''}${target.mysql ? `, ${DEMO_MYSQL_CONNECTION}` : ''}${target.files ? `, ${DEMO_FILES_CONNECTION}` : ''}${target.api ? `, ${DEMO_API_CONNECTION}` : ''}], mode: read-write, maxSessionSeconds: 28800 }
  - { name: analysts, groups: [analysts], connections: [${DEMO_CONNECTION}${target.mysql ? `, ${DEMO_MYSQL_CONNECTION}` : ''}${target.files ? `, ${DEMO_FILES_CONNECTION}` : ''}${target.api ? `, ${DEMO_API_CONNECTION}` : ''}], mode: read-only, statementTimeout: 30s }

`;
}

/** `hoop.yaml`'s statement rules and who reviews what they hold. */
const STATEMENTS_YAML = `statements:
  unparseable: deny
  reviewers:                                    # who decides statements a review rule holds
    - { groups: [dba], approvals: 1, timeout: 10min }
  rules:
    - name: no-drop-or-truncate
      match: { kinds: [drop, truncate] }
      action: deny
      message: dropping or emptying tables is not allowed through hoop
    - name: no-unseen-code                      # DO blocks, procedures and new functions run SQL the gateway cannot read
      match: { kinds: [do, call, create-function] }
      action: deny
      message: DO blocks, procedures and new functions run SQL hoop cannot see; send the statements themselves
    - name: review-mass-writes
      match: { kinds: [update, delete, merge], missingWhere: true }
      action: review
      message: an UPDATE or DELETE that may touch every row needs a reviewer
    - name: agents-writes-review                # an agent (hoop run, hoop mcp) acting for you
      match: { via: [run, mcp], kinds: [write] }
      action: review
      message: a write an agent sends needs a reviewer, even where its person's own runs

reviews:
  requireSignInWithin: 12h                      # a decision needs a sign-in of the last 12 hours (hoop login --reauth): a token an agent took cannot make one

`;

/** `hoop.yaml`'s runs (what a contained agent may reach) and alerts (what the security team hears about). */
const RUNS_AND_ALERTS_YAML = `runs:                                           # agents under hoop run: contained, they reach the gateway and nothing else
  egress:                                       # but what is listed here (host:port), through the run's proxy
    - { to: [api.anthropic.com:443], agents: [claude*] }   # e.g. Claude Code's model API, for agents named claude*

alerts:                                         # what the security team hears about: hoop alerts ls
  - name: refusal-burst
    when: { event: refused, count: 5, within: 10min }   # five refusals of one person (or their agents) in ten minutes
  - name: bulk-customers
    when: { event: rows-read, table: customers, count: 1000, within: 1min }   # more than 1,000 rows of customers read in a minute

`;

/** `hoop.yaml`'s masking: emails redacted, card numbers and SSNs to their last four, by column (PostgreSQL's and MySQL's), by name and by what the values look like. */
function maskingYaml(target: SampleTarget): string {
  const mysql = target.mysql
    ? `    - { table: ${DEMO_DATABASE}.customers, column: email, strategy: redact }        # ${DEMO_MYSQL_CONNECTION}: a MySQL table's schema is its database
    - { table: ${DEMO_DATABASE}.customers, column: card_number, strategy: last4 }
`
    : '';
  return `masking:
  columns:
    - { table: public.customers, column: email, strategy: redact }
    - { table: public.customers, column: card_number, strategy: last4 }
${mysql}  names:
    - { pattern: "^(ssn|social_security_number)$", strategy: last4 }
  detectors:
    - { detector: payment-card, strategy: last4 }
    - { detector: email, strategy: redact }
  derived: mask
`;
}

/** `hoop.yaml`'s MCP rules, with the MCP connection: reading allowed (under read-only access too), changes held for a reviewer. */
function mcpRulesYaml(target: SampleTarget): string {
  return target.files
    ? `
mcp:                                            # what agents may do with the tools of ${DEMO_FILES_CONNECTION}
  rules:
    - name: reads
      match: { tools: [read_*, list_*, directory_tree, search_files, get_file_info] }
      action: allow
    - name: file-changes-review
      match: { tools: [write_file, edit_file, create_directory, move_file] }
      action: review
      message: a change to the files needs a reviewer
`
    : '';
}

/** `hoop.yaml`'s HTTP rules, with the HTTP connection: refunds held for a reviewer. */
function httpRulesYaml(target: SampleTarget): string {
  return target.api
    ? `
http:                                           # what requests on ${DEMO_API_CONNECTION} may do
  rules:
    - name: refunds-review
      match: { methods: [POST], paths: ["/refunds"] }
      action: review
      message: a refund needs a reviewer
`
    : '';
}

/** The demo's (and docs/ssh.md's) pattern for `rm` with a recursive option: any short cluster with r or R, a long option's prefix `--r` (GNU reads `--rec` as `--recursive`); options after operands are read first by the judge. */
export const NO_RECURSIVE_RM = String.raw`^(\S*/)?rm\s+(-\S+\s+)*(-[a-zA-Z]*[rR]|--r)`;

/** `hoop.yaml`'s SSH rules, with the SSH connection: no recursive deletes. */
function sshRulesYaml(target: SampleTarget): string {
  return target.ssh
    ? `
ssh:                                            # what sessions on ${DEMO_SSH_CONNECTION} may do
  rules:
    - name: no-recursive-rm
      match: { patterns: ['${NO_RECURSIVE_RM}'] }   # rm as the command (each command a line runs, sudo's too)
      action: deny
      message: recursive deletes are not allowed through hoop
`
    : '';
}

/** The demo's runbook for a write: a refund, at most 100 and one order, which an agent may run without a reviewer. */
const REFUND_RUNBOOK = `# A named operation, reviewed once here: run it with hoop runbook run refund-order -p order_id=4
version: 1
description: Refund a paid order of at most 100
connection: ${DEMO_CONNECTION}
parameters:
  order_id: { type: integer, min: 1, description: the order to refund }
steps:
  - sql: update orders set status = 'refunded' where id = $1 and status = 'paid' and total <= 100 returning id, status, total
    params: [order_id]
run:
  - { groups: [engineers] }
  - { agents: ["*"], via: [run, mcp] }      # any agent of an engineer, through hoop run or hoop mcp
maxAffectedRows: 1
bypass: [agents-writes-review]              # this runbook is the agent's review: no reviewer per refund
`;

/** The demo's runbook for a read: one customer, masked as every read is. */
const LOOKUP_RUNBOOK = `version: 1
description: Look up a customer by id (masked as the policy masks every read)
connection: ${DEMO_CONNECTION}
parameters:
  customer_id: { type: integer, min: 1 }
steps:
  - sql: select id, name, email, card_number, country from customers where id = $1
    params: [customer_id]
run:
  - { groups: [engineers, analysts] }
  - { agents: ["*"], via: [run, mcp] }
`;

/** `policy/tests/demo.yaml`: what `hoop policy test` checks of the demo's policy. */
const POLICY_TESTS_YAML = `# Run with: hoop policy test --dir <this repository>
tests:
  - name: engineers read customers
    as: { subject: demo, groups: [engineers] }
    connection: ${DEMO_CONNECTION}
    sql: select name, email from customers
    expect: allow
  - name: nobody drops tables
    as: { subject: demo, groups: [engineers] }
    connection: ${DEMO_CONNECTION}
    sql: drop table orders
    expect: deny
    rule: no-drop-or-truncate
  - name: a DO block cannot hide a DROP
    as: { subject: demo, groups: [engineers] }
    connection: ${DEMO_CONNECTION}
    sql: do $$ begin execute 'drop table orders'; end $$
    expect: deny
    rule: no-unseen-code
  - name: a delete of every row waits for a reviewer
    as: { subject: demo, groups: [engineers] }
    connection: ${DEMO_CONNECTION}
    sql: delete from orders
    expect: review
    rule: review-mass-writes
  - name: a delete of one row runs
    as: { subject: demo, groups: [engineers] }
    connection: ${DEMO_CONNECTION}
    sql: delete from orders where id = 7
    expect: allow
  - name: an agent's write waits for a reviewer, where its person's own runs
    as: { subject: demo, groups: [engineers], via: run, agent: claude }
    connection: ${DEMO_CONNECTION}
    sql: delete from orders where id = 7
    expect: review
    rule: agents-writes-review
  - name: analysts only read
    as: { subject: analyst, groups: [analysts] }
    connection: ${DEMO_CONNECTION}
    sql: update orders set status = 'paid' where id = 7
    expect: deny
    rule: read-only-access
  - name: demo gets customers' emails, card numbers and SSNs masked, names as stored
    as: { subject: demo, groups: [engineers] }
    connection: ${DEMO_CONNECTION}
    sql: select name, email, card_number, ssn from customers order by id limit 5
    fixture: policy/fixtures/shop.sql       # the demo's data, in a scratch database: run straight and through hoop
    masked: { email: redact, card_number: last4, ssn: last4 }
`;
