/**
 * `hoop policy show | pull | test | check`: look at, fetch and exercise a policy bundle.
 *
 * The bundle comes from a directory (`--dir`: a checked-out config repo) or from git (`--repo
 * URL|PATH --ref REF`, ref default `$HOOP_POLICY_REF`, else `main`). With neither, every subcommand
 * pulls `$HOOP_POLICY_REPO` when it is set, and reads the current directory otherwise. Pulled repos
 * are kept under `$HOOP_CONFIG_DIR/policy/<hash>` with the same validation and signature rules as
 * the gateway (`--allowed-signers FILE` or `$HOOP_POLICY_ALLOWED_SIGNERS`). Secret references are
 * never resolved by the CLI.
 *
 * Exit codes: `check` 0 allow, 1 deny, 2 review; `test` 0 when every case passes, 1 otherwise;
 * 78 for an invalid policy, 64 for bad usage.
 */
import { Command } from 'commander';
import { resolve } from 'node:path';
import { configDir } from '../auth/paths.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { createLogger, levelFromEnv } from '../log.js';
import { evaluateStatement, runPolicyTests } from '../policy/evaluate.js';
import { loadPolicyDir } from '../policy/load.js';
import { PolicyRepo, cliPolicyWorkDir, looksLikeGitUrl } from '../policy/repo.js';
import type { Policy } from '../policy/schema.js';
import { describePolicy, policyAsJson } from '../policy/summary.js';
import { describedPrincipal, VIAS, type Via } from '../policy/principal.js';

interface SourceOptions {
  dir?: string;
  repo?: string;
  ref?: string;
  allowedSigners?: string;
}

function withSource(cmd: Command, dirHelp = 'a checked-out config repo (default: the current directory, unless $HOOP_POLICY_REPO is set)'): Command {
  return cmd
    .option('--dir <dir>', dirHelp)
    .option('--repo <url>', 'a config repo URL or path to pull instead (default: $HOOP_POLICY_REPO, unless --dir is given)')
    .option('--ref <ref>', 'branch, tag or commit of --repo (default: $HOOP_POLICY_REF, else main)')
    .option('--allowed-signers <file>', 'accept only commits signed by these SSH keys (default: $HOOP_POLICY_ALLOWED_SIGNERS)');
}

/** Opens the CLI's copy of a config repo (fetching it), with the gateway's rules. */
async function openRepo(io: CliIo, repo: string, opts: SourceOptions): Promise<PolicyRepo> {
  const isUrl = looksLikeGitUrl(repo);
  const remote = isUrl ? repo : resolve(io.cwd, repo);
  const signers = opts.allowedSigners ?? io.env.HOOP_POLICY_ALLOWED_SIGNERS?.trim();
  return PolicyRepo.open({
    ...(isUrl ? { url: remote } : { path: remote }),
    ref: opts.ref ?? (io.env.HOOP_POLICY_REF?.trim() || 'main'),
    workDir: cliPolicyWorkDir(configDir(io.env, io.cwd), remote),
    ...(signers ? { allowedSignersFile: resolve(io.cwd, signers) } : {}),
    log: createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr }),
    env: io.env,
    checkSecrets: false,
  });
}

/** Says on stderr when the ref's newest commit was refused and an older accepted one is used. */
function warnIfRefused(io: CliIo, pr: PolicyRepo): void {
  const last = pr.lastRefresh();
  if (last?.error && last.candidate !== pr.commit) {
    io.stderr.write(`hoop: warning: the ref's newest commit was refused; keeping the last accepted one\n  ${last.error.replace(/\n/g, '\n  ')}\n`);
  }
}

/** The bundle of `--repo` (pulled), else `--dir`, else `$HOOP_POLICY_REPO` (pulled), else the current directory. */
async function loadSource(io: CliIo, opts: SourceOptions): Promise<{ policy: Policy; source: string }> {
  if (opts.dir !== undefined && opts.repo !== undefined) throw new HoopError(ErrorCode.USAGE, 'give --dir or --repo, not both');
  const repo = opts.dir === undefined ? (opts.repo ?? (io.env.HOOP_POLICY_REPO?.trim() || undefined)) : undefined;
  if (repo !== undefined) {
    const pr = await openRepo(io, repo, opts);
    warnIfRefused(io, pr);
    return { policy: pr.current(), source: repo };
  }
  if (opts.ref !== undefined || opts.allowedSigners !== undefined) {
    throw new HoopError(ErrorCode.USAGE, `${opts.ref !== undefined ? '--ref' : '--allowed-signers'} applies to a pulled config repo, not to --dir or the current directory`, {
      hint: 'pass --repo URL (or set HOOP_POLICY_REPO and leave out --dir)',
    });
  }
  const dir = resolve(io.cwd, opts.dir ?? '.');
  return { policy: await loadPolicyDir(dir), source: dir };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Builds the `policy` command and its subcommands. */
export function policyCommand(io: CliIo): Command {
  const policy = new Command('policy').description('show, pull, test and check the policy bundle of a config repo');

  policy.addCommand(
    withSource(new Command('show').description('summarise a policy bundle: commit, connections, access, statement rules, masking (never secret values)'))
      .option('--json', 'print the bundle as JSON')
      .action(async (opts: SourceOptions & { json?: boolean }) => {
        const { policy: p, source } = await loadSource(io, opts);
        io.stdout.write(opts.json ? `${JSON.stringify(policyAsJson(p), null, 2)}\n` : describePolicy(p, source));
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
        const pr = await openRepo(io, repo, opts);
        warnIfRefused(io, pr);
        io.stdout.write(`${pr.commit}\n`);
      }),
  );

  policy.addCommand(
    withSource(
      new Command('test').description("run the bundle's test cases (policy/tests/*.yaml); exit 1 if any fails"),
      'the config repo (default: the current directory, unless $HOOP_POLICY_REPO is set)',
    ).action(async (opts: SourceOptions) => {
      const { policy: p } = await loadSource(io, opts);
      if (p.tests.length === 0) throw new HoopError(ErrorCode.USAGE, 'the bundle has no test cases', { hint: 'add policy/tests/*.yaml with a tests: list' });
      const results = await runPolicyTests(p);
      for (const r of results) {
        const decided = `${r.action}${r.rule ? ` by rule "${r.rule}"` : ''}`;
        const raised = r.raised ? `alerts ${r.raised.length > 0 ? r.raised.join(', ') : 'none'}` : undefined;
        const got = r.test.expect !== undefined ? `${decided}${raised ? `, ${raised}` : ''}` : raised!;
        if (r.passed) io.stdout.write(`✓ ${r.test.name}: ${got}\n`);
        else {
          const wantedAlerts = r.test.alerts ? `alerts ${r.test.alerts.length > 0 ? r.test.alerts.join(', ') : 'none'}` : undefined;
          const wanted = [r.test.expect !== undefined ? `${r.test.expect}${r.test.rule ? ` by rule "${r.test.rule}"` : ''}` : undefined, wantedAlerts].filter(Boolean).join(', ');
          io.stdout.write(`✗ ${r.test.name} (${r.test.source}): expected ${wanted}, got ${got}\n    ${r.reason}\n`);
        }
      }
      const failed = results.filter((r) => !r.passed).length;
      io.stdout.write(`\n${results.length - failed} passed, ${failed} failed\n`);
      if (failed > 0) {
        throw new HoopError(ErrorCode.CONFIG_INVALID, `${failed} of ${results.length} policy test${results.length === 1 ? '' : 's'} failed`, {
          hint: 'fix the policy or the expectations in policy/tests/',
          exitCode: 1,
        });
      }
    }),
  );

  policy.addCommand(
    withSource(new Command('check').description('explain the decision for one SQL statement: allow (exit 0), deny (exit 1) or review (exit 2)'))
      .argument('<sql>', 'the SQL text, as a client would send it in one Query message')
      .option('--as <subject>', 'the identity (subject); without it access is not checked')
      .option('--email <email>', "the identity's email")
      .option('--group <group>', "one of the identity's groups (repeat for more)", collect, [] as string[])
      .option('--connection <name>', 'the connection (default: the only one defined)')
      .option('--via <way>', `how the session comes: ${VIAS.join(', ')} (default: connect; run with --agent)`)
      .option('--agent <name>', 'judge it as this agent in a run acting for the identity')
      .option('--not-isolated', "the agent's run was not contained")
      .action(async (sql: string, opts: SourceOptions & { as?: string; email?: string; group: string[]; connection?: string; via?: string; agent?: string; notIsolated?: boolean }) => {
        const { policy: p } = await loadSource(io, opts);
        let connection = opts.connection;
        if (connection === undefined) {
          if (p.connections.length !== 1) {
            throw new HoopError(ErrorCode.USAGE, 'which connection?', { hint: `pass --connection (one of: ${p.connections.map((c) => c.name).join(', ') || 'none defined'})` });
          }
          connection = p.connections[0]!.name;
        }
        if (opts.as === undefined && (opts.email !== undefined || opts.group.length > 0)) {
          throw new HoopError(ErrorCode.USAGE, '--email and --group describe the identity given with --as', { hint: 'add --as SUBJECT' });
        }
        if (opts.via !== undefined && !(VIAS as readonly string[]).includes(opts.via)) throw new HoopError(ErrorCode.USAGE, `--via must be one of ${VIAS.join(', ')}`);
        const principal = describedPrincipal({ via: opts.via as Via | undefined, agent: opts.agent, ...(opts.notIsolated ? { isolated: false } : {}) });
        if (typeof principal === 'string') throw new HoopError(ErrorCode.USAGE, principal.replace('agent and isolated', '--agent and --not-isolated').replace('via:', '--via'));
        if (opts.as === undefined && principal !== undefined) throw new HoopError(ErrorCode.USAGE, '--via and --agent describe how the identity given with --as comes', { hint: 'add --as SUBJECT' });
        const who =
          opts.as !== undefined ? { subject: opts.as, groups: opts.group, ...(opts.email !== undefined ? { email: opts.email.toLowerCase() } : {}), ...(principal ? { principal } : {}) } : undefined;
        const { access, decision } = await evaluateStatement(p, who, connection, sql);
        const lines = [
          `decision  ${decision.action}`,
          `rule      ${decision.rule ?? '(none)'}`,
          ...(decision.message ? [`message   ${decision.message}`] : []),
          `reason    ${decision.reason}`,
          `access    ${who ? (access ? `${access.mode} by rule "${access.rule}"${access.maxSessionSeconds !== undefined ? `, sessions up to ${access.maxSessionSeconds}s` : ''}` : 'none') : 'not checked (no --as); statement rules applied as for read-write'}`,
          `policy    ${p.commit ?? 'working tree'}`,
        ];
        io.stdout.write(`${lines.join('\n')}\n`);
        if (decision.action !== 'allow') {
          throw new HoopError(ErrorCode.ACCESS_DENIED, decision.action === 'deny' ? 'the statement would be denied' : 'the statement would need approval', {
            exitCode: decision.action === 'deny' ? 1 : 2,
          });
        }
      }),
  );
  return policy;
}
