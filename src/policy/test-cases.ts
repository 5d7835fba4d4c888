/**
 * The format of a bundle's test files (`policy/tests/*.yaml`): each case names an identity
 * (`as`), a connection, and what it asks, and says what must come of it.
 *
 * - `sql`: one statement text, or a list run in order (PostgreSQL connections);
 * - `ssh`: a command line, a list of them, or `{ shell: true }`, `{ sftp: true }`,
 *   `{ exec: "…" }`, `{ forward: host:port }` (SSH connections);
 * - `mcp`: `{ tool: name, arguments: {…} }`, `{ resource: uri }`, `{ prompt: name, arguments }`,
 *   or a list of them (MCP connections);
 * - `expect`: the decision each gets (`allow`, `deny`, `review`), and `rule`, the rule that decides;
 * - `alerts`: the alerts the statements raise together (with `rows` and `at`);
 * - `masked`: the result columns that come back masked (`[email, card]`, or `{ email: redact }`
 *   to name the strategy), every other column as the database holds it; checked on `fixture`
 *   (an SQL file of the repo, run into a scratch database), else on the connection itself.
 *
 * @see ./load.ts (checked against the bundle: connections and alerts it names)
 * @see ./evaluate.ts (how a case runs)
 */
import * as z from 'zod';
import { VIAS } from './principal.js';
import { action, strategy, versionSchema } from './schema.js';
import { list, lowerName, nonEmpty, wholeNumber } from './schema-fields.js';

/** The identity of a test case: a person, or with `via`, `agent` and `isolated`, an agent's run acting for them. */
export const testIdentitySchema = z.strictObject({
  subject: nonEmpty('a subject'),
  email: lowerName('an email address').optional(),
  groups: list('a group name').default([]),
  via: z.enum(VIAS, { error: `must be one of ${VIAS.join(', ')}` }).optional(),
  agent: lowerName('an agent name').optional(),
  isolated: z.boolean({ error: 'must be true or false' }).optional(),
});

const sqlListError = 'must be the SQL to judge, or a list of statements run in order';
const sshError = 'must be a command line, a list of them, or one of { shell: true }, { sftp: true }, { exec: "…" }, { forward: host:port }';

/** One thing an SSH case asks. */
const sshAsk = z.union(
  [
    nonEmpty('a command line'),
    z.strictObject({ shell: z.literal(true) }),
    z.strictObject({ sftp: z.literal(true) }),
    z.strictObject({ exec: nonEmpty('a command line') }),
    z.strictObject({ forward: z.string().regex(/^[^\s:]+:[0-9]{1,5}$/, { error: 'must be host:port' }) }),
  ],
  { error: sshError },
);

const mcpError = 'must be { tool: name, arguments: {…} }, { resource: uri }, { prompt: name }, or a list of them';

/** One thing an MCP case asks. */
const mcpAsk = z.union(
  [
    z.strictObject({ tool: nonEmpty('a tool name'), arguments: z.record(z.string(), z.json()).optional() }),
    z.strictObject({ resource: nonEmpty('a resource URI') }),
    z.strictObject({ prompt: nonEmpty('a prompt name'), arguments: z.record(z.string(), z.json()).optional() }),
  ],
  { error: mcpError },
);

const maskedError = 'must list the result columns that come back masked ([email, card]), or name each strategy ({ email: redact })';

/** One test case. */
export const policyTestSchema = z
  .strictObject({
    name: nonEmpty('a test name'),
    as: testIdentitySchema,
    connection: nonEmpty('a connection name'),
    sql: z
      .union([nonEmpty('the SQL to judge'), z.array(nonEmpty('the SQL to judge')).min(1, { error: 'must list at least one statement' }).max(1000, { error: 'must list at most 1000' })], {
        error: sqlListError,
      })
      .optional(),
    ssh: z.union([sshAsk, z.array(sshAsk).min(1, { error: 'must list at least one' }).max(1000, { error: 'must list at most 1000' })], { error: sshError }).optional(),
    mcp: z.union([mcpAsk, z.array(mcpAsk).min(1, { error: 'must list at least one' }).max(1000, { error: 'must list at most 1000' })], { error: mcpError }).optional(),
    expect: action.optional(),
    rule: nonEmpty('a rule name').optional(),
    rows: wholeNumber('a number of rows', 0, 1_000_000_000).optional(),
    alerts: z.array(nonEmpty('an alert name'), { error: 'must list the alert names the statements raise ([] for none)' }).optional(),
    at: z
      .string({ error: 'must be a date and time, such as 2026-11-22T23:30:00+01:00' })
      .refine((v) => !Number.isNaN(Date.parse(v)), { error: 'must be a date and time, such as 2026-11-22T23:30:00+01:00' })
      .optional(),
    masked: z
      .union(
        [
          z.array(nonEmpty('a column name'), { error: maskedError }),
          z.record(z.string(), z.enum([...strategy.options, 'detector'], { error: 'must be redact, last4, hash, null, or detector (parts of the value masked)' }), { error: maskedError }),
        ],
        { error: maskedError },
      )
      .optional(),
    fixture: nonEmpty('an SQL file of the repo, such as policy/fixtures/shop.sql').optional(),
  })
  .refine((t) => [t.sql, t.ssh, t.mcp].filter((x) => x !== undefined).length === 1, {
    error: 'needs sql: (a PostgreSQL case), ssh: (an SSH case) or mcp: (an MCP case), one of them',
    path: ['sql'],
  })
  .refine((t) => t.expect !== undefined || t.alerts !== undefined || t.masked !== undefined, {
    error: 'needs expect: (allow, deny or review), alerts: (the alerts it raises), masked: (the columns that come back masked), or several',
    path: ['expect'],
  })
  .refine((t) => t.masked === undefined || t.sql !== undefined, { error: 'masked: goes with sql:', path: ['masked'] })
  .refine((t) => t.masked === undefined || t.expect === undefined || t.expect === 'allow', { error: 'a case with masked: runs its statements: expect allow, or leave expect out', path: ['expect'] })
  .refine((t) => t.fixture === undefined || t.masked !== undefined, { error: 'fixture: is the data masked: is checked on; add masked:', path: ['fixture'] });

/** A test file (`policy/tests/*.yaml`). */
export const policyTestFileSchema = z.strictObject(
  {
    version: versionSchema.optional(),
    tests: z.array(policyTestSchema, { error: 'must be a list of test cases' }).min(1, { error: 'must list at least one test case' }),
  },
  { error: (iss) => (iss.code === 'invalid_type' ? 'the file must be a mapping with a tests: list' : undefined) },
);
