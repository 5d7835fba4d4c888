/**
 * `hoop policy show | pull | test | check | status | schema`: look at, fetch and exercise a policy
 * bundle, and see what the gateway runs.
 *
 * `show`, `test` and `check` read what the user is editing: the working tree of `--dir`, of the
 * local config repo `--repo PATH` or `$HOOP_POLICY_REPO` names, or of the current directory (a
 * git URL, a bare repo or `--ref` are pulled instead, with the gateway's rules; see
 * ../client/policy-source.ts). `test` first validates the bundle exactly as the gateway validates a commit
 * (its `policy.allowedSecrets`, asked of the gateway when one is configured) and fails with the
 * gateway's refusal of the commit the tree is on. Secret references are never resolved by the CLI.
 *
 * Exit codes: `check` 0 allow, 1 deny, 2 review; `test` 0 when every case passes, 1 otherwise;
 * 78 for an invalid policy (one the gateway would refuse), 64 for bad usage.
 */
import { Command, InvalidArgumentError } from 'commander';
import * as z from 'zod';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { VIAS } from '../policy/principal.js';
import { policyFileSchema } from '../policy/schema.js';
import { runbookFileSchema } from '../policy/runbooks.js';
import { describePolicy, policyAsJson } from '../policy/summary.js';
import { policyTestFileSchema } from '../policy/test-cases.js';
import { gatewayOptions } from '../client/client-config.js';
import { loadSource, pullSource, type SourceOptions } from '../client/policy-source.js';
import { policyCheck, type PolicyCheckFlags } from './policy-check.js';
import { policyStatus, policyTest } from './policy-test.js';
import { printJson } from '../ui/output.js';

function withSource(cmd: Command, dirHelp = 'a checked-out config repo (default: the current directory, unless $HOOP_POLICY_REPO is set)'): Command {
  return cmd
    .option('--dir <dir>', dirHelp)
    .option('--repo <url>', 'a config repo: a local checkout (its working tree) or a URL to pull (default: $HOOP_POLICY_REPO, unless --dir is given)')
    .option('--ref <ref>', 'pull this branch, tag or commit of --repo instead of reading a working tree (default for a URL: $HOOP_POLICY_REF, else main)')
    .option('--allowed-signers <file>', 'accept only commits signed by these SSH keys (default: $HOOP_POLICY_ALLOWED_SIGNERS)');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Builds the `policy` command and its subcommands. */
export function policyCommand(io: CliIo): Command {
  const policy = new Command('policy').description('show, pull, test and check the policy bundle of a config repo, and see what the gateway runs');

  policy.addCommand(
    withSource(
      new Command('show').description('every rule of a policy bundle: connections, access (requestable grants, row and session limits), statements, masking, ssh, alerts (never secret values)'),
    )
      .option('--json', 'print the bundle as JSON')
      .action(async (opts: SourceOptions & { json?: boolean }) => {
        const { policy: p, source, what } = await loadSource(io, opts);
        if (!opts.json) io.stderr.write(`hoop: reading ${what}\n`);
        if (opts.json) printJson(io, policyAsJson(p));
        else io.stdout.write(describePolicy(p, source));
      }),
  );

  policy.addCommand(
    new Command('pull')
      .description("fetch the config repo into the CLI's copy, validate it (and its signature) and print the commit")
      .option('--repo <url>', 'config repo URL or path (default: $HOOP_POLICY_REPO)')
      .option('--ref <ref>', 'branch, tag or commit (default: $HOOP_POLICY_REF, else main)')
      .option('--allowed-signers <file>', 'accept only commits signed by these SSH keys (default: $HOOP_POLICY_ALLOWED_SIGNERS)')
      .action(async (opts: SourceOptions) => {
        const repo = opts.repo ?? io.env.HOOP_POLICY_REPO?.trim();
        if (!repo) throw new HoopError(ErrorCode.USAGE, 'no config repo given', { hint: 'pass --repo URL or set HOOP_POLICY_REPO' });
        io.stdout.write(`${(await pullSource(io, repo, opts)).pr.commit}\n`);
      }),
  );

  policy.addCommand(
    gatewayOptions(
      withSource(
        new Command('test').description('validate the bundle as the gateway will, then run its test cases (policy/tests/*.yaml: decisions, alerts, masked columns, ssh); exit 1 if any fails'),
        'the config repo (default: the current directory, unless $HOOP_POLICY_REPO is set)',
      ),
    )
      .option('--offline', 'do not ask the gateway how it validates (secret references are then checked for form only)')
      .option('--on-connections', 'run masking cases that have no fixture on their connection itself, through the gateway, as you (only SELECTs, read-only): never for a change you have not read')
      .option('--fixture-seconds <n>', 'the time one fixture may take to load (default 60)', budgetNumber(3600))
      .option('--fixture-mib <n>', 'the disk one fixture may fill, in MiB (default 256)', budgetNumber(65536))
      .option('--json', 'print the results as one JSON object: { policy, passed, failed, cases: [{ name, source, passed, expected, got, reason? }] }')
      .action(
        (opts: SourceOptions & { offline?: boolean; onConnections?: boolean; fixtureSeconds?: number; fixtureMib?: number; gateway?: string; tokenFile?: string; caFile?: string; json?: boolean }) =>
          policyTest(io, opts),
      ),
  );

  policy.addCommand(
    withSource(new Command('check').description('explain the decision for one SQL statement: allow (exit 0), deny (exit 1) or review (exit 2)'))
      .argument('<sql>', 'the SQL text, as a client would send it in one Query message')
      .option('--as <subject>', 'the identity (subject); without it access is not checked')
      .option('--email <email>', "the identity's email")
      .option('--group <group>', "one of the identity's groups (repeat for more)", collect, [] as string[])
      .option('--connection <name>', 'the connection (default: the only SQL connection defined)')
      .option('--via <way>', `how the session comes: ${VIAS.join(', ')} (default: connect; run with --agent)`)
      .option('--agent <name>', 'judge it as this agent in a run acting for the identity')
      .option('--not-isolated', "the agent's run was not contained")
      .option('--json', 'print the decision as one JSON object: { decision, rule, message?, reason, review?, access, policy } (the exit code as without)')
      .action((sql: string, opts: PolicyCheckFlags) => policyCheck(io, sql, opts)),
  );

  policy.addCommand(
    gatewayOptions(new Command('status').description('the policy commit the gateway runs, what it cannot open, and the last commit it refused (with every problem)'))
      .option('--json', 'print what the gateway says as JSON')
      .action((opts: { json?: boolean; gateway?: string; tokenFile?: string; caFile?: string }) => policyStatus(io, opts)),
  );

  policy.addCommand(
    new Command('schema')
      .description('print the JSON Schema of the policy file (hoop.yaml, policy/*.yaml), or of a test or runbook file, for editors (yaml-language-server)')
      .option('--tests', 'the schema of a test file (policy/tests/*.yaml)')
      .option('--runbooks', 'the schema of a runbook file (runbooks/*.yaml)')
      .action((opts: { tests?: boolean; runbooks?: boolean }) => {
        if (opts.tests && opts.runbooks) throw new HoopError(ErrorCode.USAGE, '--tests and --runbooks name two schemas', { hint: 'give one of them' });
        const file = opts.tests ? policyTestFileSchema : opts.runbooks ? runbookFileSchema : policyFileSchema;
        const schema = z.toJSONSchema(file, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' });
        const titled = {
          $schema: 'https://json-schema.org/draft/2020-12/schema',
          title: opts.tests ? 'hoop policy test file (policy/tests/*.yaml)' : opts.runbooks ? 'hoop runbook file (runbooks/*.yaml)' : 'hoop policy file (hoop.yaml, policy/*.yaml)',
          ...schema,
        };
        io.stdout.write(`${JSON.stringify(titled, null, 2)}\n`);
      }),
  );
  return policy;
}

/** A whole number from 1 to `max`, as a budget flag takes it. */
function budgetNumber(max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`must be a whole number from 1 to ${max}`);
    return n;
  };
}
