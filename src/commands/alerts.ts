/**
 * `hoop alerts ls|clear`: the alerts the gateway raised under the policy's `alerts:` rules (who,
 * which rule, how many events, whether it suspends them) and clearing one, a person's decision
 * with a reason. The gateway decides who may see and clear each.
 *
 * @see docs/internals.md (§4.7)
 */
import { Command, Option } from 'commander';
import { countedText, type RaisedAlert } from '../api/answers.js';
import { clearAlert, listAlerts } from '../api-client/alerts.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { describeLength } from '../text-format.js';
import { terminalSafe } from '../ui/terminal-safe.js';
import { type GatewayFlags, gatewayOptions, withGateway, withGatewayAsPerson } from '../client/client-config.js';
import { paintedTable, printJson } from '../ui/output.js';
import { nearestName } from '../suggest.js';

interface AlertFlags extends GatewayFlags {
  json?: boolean;
}

/** Whom an alert is about, as a line names it. */
function about(a: RaisedAlert): string {
  return a.per === 'run' ? `${a.subject} (run ${a.run})` : a.per === 'agent' ? `${a.subject} (agent ${a.agent})` : a.subject;
}

/** One alert's row. */
function row(a: RaisedAlert): string[] {
  const state = a.state === 'open' ? (a.suspend ? 'open, suspends' : 'open') : `cleared by ${a.clearer?.email ?? a.clearer?.subject ?? '?'}`;
  return [a.id, a.raisedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), a.rule, about(a), `${countedText(a)} in ${describeLength(Math.round(a.withinMs / 1000))}`, state];
}

/** An alert in full: the row's facts, then its evidence. */
function text(a: RaisedAlert): string {
  const lines = [
    `alert       ${a.id} (${a.rule})`,
    `about       ${about(a)}`,
    `raised      ${a.raisedAt}: ${countedText(a)} within ${describeLength(Math.round(a.withinMs / 1000))}`,
    `state       ${row(a)[5]}${a.clearReason ? `: ${a.clearReason}` : ''}`,
    ...(a.state === 'open' ? [`clear       hoop alerts clear ${a.id} --reason "…" (members of ${a.clearedBy.join(', ') || 'the auditors'})`] : []),
    '',
    ...a.evidence.map((e) => `  ${e.at}  ${e.session ? `session ${e.session}` : ''}${e.connection ? ` on ${e.connection}` : ''}${e.rule ? `: ${e.rule}` : ''}${e.reason ? ` (${e.reason})` : ''}`),
  ];
  // Evidence holds what clients said (a reason a CLI reported): nothing in it may drive the terminal.
  return `${lines.map(terminalSafe).join('\n')}\n`;
}

/** Builds the `alerts` command. */
export function alertsCommand(io: CliIo): Command {
  const alerts = new Command('alerts').description("list and clear the alerts the gateway raised under the policy's alerts: rules");
  alerts.addCommand(
    gatewayOptions(new Command('ls'))
      .description('list the alerts you may see, newest first (auditors and those who may clear them: all; anyone else: those about them)')
      .addOption(new Option('--state <state>', 'only alerts in this state').choices(['open', 'cleared', 'all']).default('open'))
      .option('--json', 'print JSON')
      .action(async (opts: AlertFlags & { state: 'open' | 'cleared' | 'all' }) => {
        const list = await withGateway(io, opts, async (endpoint, token) => listAlerts(endpoint, await token(), opts.state === 'all' ? undefined : opts.state));
        if (opts.json) printJson(io, { alerts: list });
        else if (list.length === 0) io.stdout.write(opts.state === 'all' ? 'no alerts\n' : `no ${opts.state} alerts\n`);
        else io.stdout.write(paintedTable(io, [['ID', 'RAISED', 'RULE', 'ABOUT', 'EVENTS', 'STATE'], ...list.map((a) => row(a).map(terminalSafe))]));
      }),
  );
  alerts.addCommand(
    gatewayOptions(new Command('show'))
      .description('show one alert: whom it is about, what it counted, its evidence')
      .argument('<id>', 'the alert id (alert-…)')
      .option('--json', 'print JSON')
      .action(async (id: string, opts: AlertFlags) => {
        const all = await withGateway(io, opts, async (endpoint, token) => listAlerts(endpoint, await token()));
        const found = all.find((a) => a.id === id);
        if (!found) {
          const near = nearestName(
            id,
            all.map((a) => a.id),
          );
          throw new HoopError(ErrorCode.USAGE, `no alert ${id} that you may see${near ? `: did you mean "${near}"?` : ''}`, { hint: '`hoop alerts ls --state all` lists them' });
        }
        if (opts.json) printJson(io, found);
        else io.stdout.write(text(found));
      }),
  );
  alerts.addCommand(
    gatewayOptions(new Command('clear'))
      .description('clear an alert (its suspension ends): a person of the groups that may clear it, never the one it is about')
      .argument('<id>', 'the alert id (alert-…)')
      .requiredOption('--reason <text>', 'why (kept with the alert and on the audit stream)')
      .option('--json', 'print JSON')
      .action(async (id: string, opts: AlertFlags & { reason: string }) => {
        const a = await withGatewayAsPerson(io, opts, async (endpoint, token) => clearAlert(endpoint, await token(), id, opts.reason));
        if (opts.json) printJson(io, a);
        else io.stdout.write(`alert ${a.id}: cleared${a.suspend ? `; ${about(a)} may connect again` : ''}\n`);
      }),
  );
  return alerts;
}
