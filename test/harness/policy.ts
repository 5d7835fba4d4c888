/** A policy with nothing in it (what `version: 1` alone loads to), with the parts a test sets; policy repos for a test file. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { PolicyInvalidError } from '../../src/policy/load.js';
import type { Policy, StatementRule } from '../../src/policy/schema.js';

export function emptyPolicy(parts: Partial<Policy> = {}): Policy {
  return {
    connections: [],
    access: [],
    statements: { unparseable: 'deny', rules: [] },
    masking: { columns: [], names: [], detectors: [], derived: 'mask' },
    recording: { results: 'masked', rowCap: 1000, onFailure: 'close', auditors: [] },
    tests: [],
    ...parts,
  };
}

/** The rules of the contract's example, plus a few more. */
export const EXAMPLE_RULES: StatementRule[] = [
  { name: 'drop-needs-review', match: { kinds: ['drop', 'truncate'] }, action: 'review', message: 'DROP and TRUNCATE need a reviewer' },
  { name: 'no-unbounded-writes', match: { kinds: ['update', 'delete'], missingWhere: true }, action: 'deny', message: 'UPDATE/DELETE without WHERE' },
  { name: 'contractors-no-cards', match: { tables: ['public.cards', 'billing.*'], groups: ['contractors'] }, action: 'deny', message: 'no card data for contractors' },
  { name: 'no-file-access', match: { functions: ['pg_read_file', 'pg_read_binary_file', 'lo_import', 'dblink*'] }, action: 'deny' },
  { name: 'no-set-config', match: { functions: ['set_config'] }, action: 'deny', message: 'use SET, not set_config' },
  { name: 'no-role-switch', match: { kinds: ['set-role', 'set-session-authorization'] }, action: 'deny', message: 'no role switching' },
  { name: 'no-cte-writes', match: { cteDml: true }, action: 'review', message: 'writes inside WITH need review' },
  { name: 'no-batches-with-ddl', match: { multiStatement: true, kinds: ['ddl'] }, action: 'deny', message: 'no DDL in a batch' },
  { name: 'do-needs-review', match: { kinds: ['do', 'call', 'create-function'] }, action: 'review', message: 'code needs review' },
  { name: 'program-copy', match: { kinds: ['copy-in', 'copy-out'], subjects: ['alice'] }, action: 'allow', message: 'alice may COPY' },
  { name: 'copy-review', match: { kinds: ['copy-in', 'copy-out'], groups: ['contractors'] }, action: 'review', message: 'COPY needs review' },
  { name: 'prod-only-grants', match: { kinds: ['grant', 'revoke'], connections: ['prod-db'] }, action: 'deny', message: 'no grants on prod' },
];

/**
 * Policy repos for one test file, each a directory of one `hoop.yaml` under a temporary directory
 * removed after the file; and the problems a load reports (none when it loads).
 */
export function policyRepos(prefix: string): { repo: (text: string) => string; problemsOf: (loading: Promise<unknown>) => Promise<string[]> } {
  const base = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  let n = 0;
  return {
    repo: (text) => {
      const dir = join(base, `r${n++}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'hoop.yaml'), text);
      return dir;
    },
    problemsOf: (loading) =>
      loading.then(
        () => [],
        (err: PolicyInvalidError) => err.problems,
      ),
  };
}
