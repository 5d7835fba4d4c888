/**
 * `hoop runbook ls|show|run`: the runbooks of the gateway's policy repo you may run (what each
 * does, on which connection, its parameters and steps), as `GET /v1/runbooks[/{name}]` answers for
 * your token, and a run of one (`POST /v1/runbooks/{name}/run`), which waits for its reviewer when
 * it has one (docs/runbooks.md).
 */
import { Command } from 'commander';
import type { RunbookInfo, RunbookParamInfo } from '../api/answers.js';
import { getRunbook, listRunbooks, runRunbook, whatStays } from '../api-client/runbooks.js';
import { followReview } from '../api-client/reviews.js';
import { writtenStepLine } from '../policy/runbooks.js';
import { CommandExit, ErrorCode, HoopError, hoopSays } from '../errors.js';
import { ExecExit } from '../client/exec-statements.js';
import type { RunbookRunAnswer } from '../api/answers.js';
import { type GatewayFlags, gatewayOptions, withGateway } from '../client/client-config.js';
import type { CliIo } from '../io.js';
import { paintedTable, printJson } from '../ui/output.js';
import { terminalSafe } from '../ui/terminal-safe.js';

interface RunbookFlags extends GatewayFlags {
  json?: boolean;
}

interface RunFlags extends RunbookFlags {
  param?: string[];
  wait: boolean;
}

/** `--param k=v`, each as a pair (a value may hold `=`). */
function paramPairs(given: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of given) {
    const at = p.indexOf('=');
    if (at < 1) throw new HoopError(ErrorCode.USAGE, `--param ${JSON.stringify(p)} is not NAME=VALUE`, { hint: 'hoop runbook run refund-order --param order_id=42' });
    const name = p.slice(0, at);
    if (Object.hasOwn(out, name)) throw new HoopError(ErrorCode.USAGE, `--param ${name} given twice`);
    out[name] = p.slice(at + 1);
  }
  return out;
}

/** A run's results as text: each step's rows, as a table, then its command tag. */
function runText(io: CliIo, run: RunbookRunAnswer): string {
  let out = '';
  for (const s of run.steps) {
    if (s.columns && s.rows) {
      out += paintedTable(
        io,
        [s.columns, ...s.rows.map((r) => r.map((v) => v ?? 'NULL'))].map((row) => row.map(terminalSafe)),
      );
      out += `(${s.rows.length} row${s.rows.length === 1 ? '' : 's'}${s.truncated ? ', and more not shown' : ''})\n`;
    }
    // An SSH step's output as it printed it, made safe for the terminal.
    if (s.stdout) out += terminalSafe(s.stdout).replace(/([^\n])$/, '$1\n');
    if (s.stderr) io.stderr.write(terminalSafe(s.stderr).replace(/([^\n])$/, '$1\n'));
    out += `step ${s.step}: ${terminalSafe(s.tag)}\n`;
  }
  return out;
}

/** What parameter `p` takes, as `show` says it. */
function takes(p: RunbookParamInfo): string {
  const bounds = [p.min !== undefined ? `≥ ${p.min}` : '', p.max !== undefined ? `≤ ${p.max}` : ''].filter(Boolean).join(' ');
  const what =
    p.type === 'enum'
      ? `one of ${p.values?.join(', ')}`
      : p.type === 'string'
        ? `string, at most ${p.maxLength} characters${p.pattern ? `, matching ${p.pattern}` : ''}`
        : `${p.type}${bounds ? ` ${bounds}` : ''}`;
  return `${what}${p.required ? '' : p.default !== undefined ? ` (default ${JSON.stringify(p.default)})` : ' (optional)'}${p.description ? ` — ${p.description}` : ''}`;
}

/** A step as `show` says it: SQL with what it binds, an SSH command, an HTTP request. */
function stepText(s: RunbookInfo['steps'][number]): string {
  if ('sql' in s) return `${s.sql}${s.params.length > 0 ? `   [${s.params.map((p, j) => `$${j + 1} = ${p}`).join(', ')}]` : ''}`;
  return `${'ssh' in s ? 'ssh' : 'http'}: ${writtenStepLine(s)}`;
}

/** Runbook `r` in full. */
function text(r: RunbookInfo): string {
  const lines = [
    `runbook     ${r.name}: ${r.description}`,
    `connection  ${r.connection}`,
    `review      ${r.review ? 'a run waits for a reviewer' : 'none'}`,
    `limits      ${r.maxAffectedRows !== undefined ? `at most ${r.maxAffectedRows} rows changed, ` : ''}${r.deadlineSeconds}s`,
    ...(r.returns ? [`returns     ${r.returns.join(', ')}`] : []),
    ...(r.bypass ? [`bypasses    ${r.bypass.join(', ')} (statement rules its run is exempt from)`] : []),
    `file        sha256 ${r.digest}${r.commit ? ` at ${r.commit}` : ''}`,
    '',
    'parameters',
    ...(r.parameters.length > 0 ? r.parameters.map((p) => `  ${p.name}  ${takes(p)}`) : ['  (none)']),
    '',
    'steps',
    ...r.steps.map((s, i) => `  ${i + 1}. ${stepText(s)}`),
  ];
  // What the policy repo says is shown as text: nothing in it may drive the terminal.
  return `${lines.map(terminalSafe).join('\n')}\n`;
}

/** Builds the `runbook` command. */
export function runbookCommand(io: CliIo): Command {
  const runbook = new Command('runbook').description('the runbooks you may run: named operations of the policy repo (docs/runbooks.md)');
  runbook.addCommand(
    gatewayOptions(new Command('ls').description('list the runbooks you may run'))
      .option('--json', 'print one JSON object: { runbooks: [{ name, description, connection, parameters, steps, review, deadlineSeconds, digest, … }] }')
      .action((opts: RunbookFlags) =>
        withGateway(io, opts, async (endpoint, token) => {
          const runbooks = await listRunbooks(endpoint, await token());
          if (opts.json) return printJson(io, { runbooks });
          if (runbooks.length === 0) return void io.stdout.write('no runbook of the policy is one you may run\n');
          const rows = [
            ['NAME', 'CONNECTION', 'PARAMETERS', 'REVIEW', 'DESCRIPTION'],
            ...runbooks.map((r) => [r.name, r.connection, r.parameters.map((p) => p.name).join(',') || '-', r.review ? 'yes' : 'no', r.description]),
          ];
          io.stdout.write(
            paintedTable(
              io,
              rows.map((row) => row.map(terminalSafe)),
            ),
          );
        }),
      ),
  );
  runbook.addCommand(
    gatewayOptions(new Command('show').description('what a runbook does: its parameters, its steps as written, its review and limits').argument('<name>', 'the runbook'))
      .option('--json', 'print the runbook as JSON')
      .action((name: string, opts: RunbookFlags) =>
        withGateway(io, opts, async (endpoint, token) => {
          const r = await getRunbook(endpoint, await token(), name);
          if (opts.json) printJson(io, r);
          else io.stdout.write(text(r));
        }),
      ),
  );
  runbook.addCommand(
    gatewayOptions(
      new Command('run').description('run a runbook with its parameters: one transaction where its steps are SQL; held first when it asks for a reviewer').argument('<name>', 'the runbook'),
    )
      .option('-p, --param <name=value>', 'a parameter (repeat for each)', (v: string, all: string[] = []) => [...all, v])
      .option('--json', 'print the run as one JSON object: { runbook, digest, commit, session, outcome, steps: [{ step, tag, columns, rows }], failed?, held? }')
      .option('--no-wait', "a run held for review: print the review's id and exit 4 instead of waiting; run it again once approved")
      .action((name: string, opts: RunFlags) => withGateway(io, opts, (endpoint, token) => runOne(io, endpoint, token, name, opts))),
  );
  return runbook;
}

/** `hoop runbook run`: runs it; held for review, waits for the decision (unless --no-wait) and runs it again, which uses the approval. */
async function runOne(io: CliIo, endpoint: { gateway: string; ca?: Buffer }, token: () => Promise<string>, name: string, opts: RunFlags): Promise<void> {
  const params = paramPairs(opts.param ?? []);
  const r = await getRunbook(endpoint, await token(), name);
  const say = (line: string): void => void io.stderr.write(`${hoopSays(terminalSafe(line))}\n`);
  const once = async (): Promise<RunbookRunAnswer> => runRunbook(endpoint, await token(), r.name, { params, text: true, via: 'exec', deadlineSeconds: r.deadlineSeconds });
  let run = await once();
  if (run.outcome === 'held' && opts.wait) {
    const id = run.held!.review;
    say(
      `runbook ${r.name} waits for review ${id}${run.held!.step !== undefined ? ` (a statement rule holds step ${run.held!.step})` : ''}: nothing ran yet; waiting for a reviewer (hoop review approve ${id})`,
    );
    const decided = await followReview(endpoint, token, id, Number.POSITIVE_INFINITY);
    if (decided.state !== 'approved') {
      say(`review ${id} was ${decided.state}: the runbook did not run`);
      throw new CommandExit(ExecExit.REVIEW);
    }
    say(`review ${id} approved: running`);
    run = await once();
  }
  if (opts.json) printJson(io, run);
  else io.stdout.write(runText(io, run));
  if (run.outcome === 'held') {
    if (!opts.json) io.stdout.write(`${run.held!.review}\n`);
    say(`runbook ${r.name} waits for review ${run.held!.review}: nothing ran; once it is approved, run it again with the same parameters`);
    throw new CommandExit(ExecExit.REVIEW);
  }
  if (run.outcome === 'failed') {
    const f = run.failed!;
    say(`${f.step > 0 && f.step <= r.steps.length ? `step ${f.step} ` : ''}${f.refused ? 'refused' : 'failed'}: ${f.message.replace(/^hoop: /, '')}; ${whatStays(f)} (session ${run.session})`);
    if (f.hint) say(`hint: ${f.hint}`);
    throw new CommandExit(f.refused ? ExecExit.REFUSED : ExecExit.STATEMENT_FAILED);
  }
}
