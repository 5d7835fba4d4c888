/**
 * `hoop runbook ls|show`: the runbooks of the gateway's policy repo you may run (what each does,
 * on which connection, its parameters and steps), as `GET /v1/runbooks[/{name}]` answers for your
 * token. Running them is not built yet (docs/runbooks.md).
 */
import { Command } from 'commander';
import type { RunbookInfo, RunbookParamInfo } from '../api/answers.js';
import { getRunbook, listRunbooks } from '../api-client/runbooks.js';
import { type GatewayFlags, gatewayOptions, withGateway } from '../client/client-config.js';
import type { CliIo } from '../io.js';
import { paintedTable, printJson } from '../ui/output.js';
import { terminalSafe } from '../ui/terminal-safe.js';

interface RunbookFlags extends GatewayFlags {
  json?: boolean;
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

/** Runbook `r` in full. */
function text(r: RunbookInfo): string {
  const lines = [
    `runbook     ${r.name}: ${r.description}`,
    `connection  ${r.connection}`,
    `review      ${r.review ? 'a run waits for a reviewer' : 'none'}`,
    `limits      ${r.maxAffectedRows !== undefined ? `at most ${r.maxAffectedRows} rows changed, ` : ''}${r.deadlineSeconds}s`,
    ...(r.returns ? [`returns     ${r.returns.join(', ')}`] : []),
    `file        sha256 ${r.digest}${r.commit ? ` at ${r.commit}` : ''}`,
    '',
    'parameters',
    ...(r.parameters.length > 0 ? r.parameters.map((p) => `  ${p.name}  ${takes(p)}`) : ['  (none)']),
    '',
    'steps',
    ...r.steps.map((s, i) => `  ${i + 1}. ${'sql' in s ? `${s.sql}${s.params.length > 0 ? `   [${s.params.map((p, j) => `$${j + 1} = ${p}`).join(', ')}]` : ''}` : `ssh: ${s.ssh.join(' ')}`}`),
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
  return runbook;
}
