/**
 * `hoop request <connection> --for 1h --reason "…" [--mode read-write] [--wait]`: asks for
 * temporary access under a requestable access rule of the policy. Reviewers decide it with `hoop
 * review` as any review; once approved, the requester may use the connection until the grant
 * ends, and sessions that rest on it end then, saying so. CI workloads ask the same way.
 *
 * Exit codes: 0 asked (or, with `--wait`, approved); 3 denied; 4 not decided (expired, or still
 * pending when `--wait` gave up).
 *
 * @see docs/internals.md (§3.6, §4.4)
 */
import { Command, Option } from 'commander';
import { followReview, requestAccess } from '../api-client/reviews.js';
import { duration, gatewayOptions, withGatewayAsPerson, type GatewayFlags } from '../client/client-config.js';
import { CommandExit } from '../errors.js';
import type { CliIo } from '../io.js';
import { standing } from '../ui/review-lines.js';
import { printJson } from '../ui/output.js';

interface RequestFlags extends GatewayFlags {
  for: number;
  reason: string;
  mode: 'read-only' | 'read-write';
  wait?: string | true;
  json?: boolean;
}

/** Builds the `request` command. */
export function requestCommand(io: CliIo): Command {
  const command = new Command('request')
    .description('ask for temporary access to a connection (a requestable access rule); reviewers approve it with `hoop review`')
    .argument('<connection>', 'the connection, as the policy names it')
    .requiredOption('--for <time>', 'how long the access should last once approved: 1h, 30m, 2d', duration)
    .requiredOption('--reason <text>', 'why you need it (the reviewers read it)')
    .addOption(new Option('--mode <mode>', 'the access asked for').choices(['read-only', 'read-write']).default('read-only'))
    .option('--wait [seconds]', 'wait for the decision (exit 0 approved, 3 denied, 4 not decided)')
    .option('--json', 'print the request as JSON');
  return gatewayOptions(command).action(async (connection: string, opts: RequestFlags) => {
    const wait = opts.wait === undefined ? undefined : opts.wait === true ? Number.POSITIVE_INFINITY : Number(opts.wait);
    const r = await withGatewayAsPerson(io, opts, async (endpoint, token) => {
      const asked = await requestAccess(endpoint, await token(), { connection, mode: opts.mode, seconds: opts.for, reason: opts.reason });
      if (!opts.json) io.stderr.write(`hoop: request ${asked.id} for ${opts.mode} access to ${connection}: ${standing(asked)}; a reviewer runs \`hoop review approve ${asked.id}\`\n`);
      return wait === undefined || asked.state !== 'pending' ? asked : followReview(endpoint, token, asked.id, wait);
    });
    if (opts.json) printJson(io, r);
    else io.stdout.write(`request ${r.id}: ${standing(r)}\n`);
    if (wait !== undefined && r.state !== 'approved') throw new CommandExit(r.state === 'denied' ? 3 : 4);
  });
}
