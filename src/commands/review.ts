/**
 * `hoop review ls|show|approve|deny|watch`: the reviewer's side of just-in-time approvals. A
 * statement a `review` rule holds waits at the gateway; reviewers list what waits, read the
 * statement (SQL and parameters, who asks, under which rule), and approve or deny it. Requesters
 * use `show --wait` to follow their own. The gateway decides who may see and decide each review.
 *
 * @see /work/shared/ARCHITECTURE.md ("Approvals and agents")
 */
import { Command, Option } from 'commander';
import { decideReview, getReview, listReviews, type ReviewInfo } from '../auth/gateway-client.js';
import { commandTokenProvider, type GatewayFlags } from '../client-config.js';
import { CommandExit, ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { columns } from './connections.js';
import { formatDuration } from '../postgres/statement-gate.js';

interface ReviewFlags extends GatewayFlags {
  json?: boolean;
}

const gatewayOptions = (c: Command): Command =>
  c
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current profile)')
    .option('--ca-file <file>', "trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile's)")
    .option('--token-file <file>', 'use the token in this file instead (default: $HOOP_TOKEN, else the login)')
    .option('--json', 'print JSON');

/** Calls `use` with the gateway endpoint and a token. */
async function withGateway<T>(io: CliIo, flags: GatewayFlags, use: (endpoint: { gateway: string; ca?: Buffer }, token: string) => Promise<T>): Promise<T> {
  const provider = await commandTokenProvider(io, flags);
  try {
    return await use({ gateway: provider.gateway, ...(provider.ca ? { ca: provider.ca } : {}) }, (await provider.current()).token);
  } finally {
    provider.close();
  }
}

/** Who, as a review names people: their email, else their subject. */
const person = (p: { subject: string; email?: string }): string => p.email ?? p.subject;

/** How long from now until `iso`, or since: `in 9 min`, `2 min ago`. */
export function relative(iso: string, now = Date.now()): string {
  const ms = Date.parse(iso) - now;
  const abs = Math.abs(ms);
  const text = abs < 90_000 ? `${Math.round(abs / 1000)} s` : abs < 5_400_000 ? `${Math.round(abs / 60_000)} min` : `${(abs / 3_600_000).toFixed(1).replace(/\.0$/, '')} h`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

/** One line of SQL for a table cell. */
const oneLine = (sql: string, max = 60): string => {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

/** Where a review stands, in words: `pending (1 of 2 approvals, expires in 9 min)`, `denied by bob: too broad`. */
export function standing(r: ReviewInfo): string {
  const approvals = r.decisions.filter((d) => d.decision === 'approve');
  switch (r.state) {
    case 'pending':
      return `pending (${approvals.length} of ${r.approvals} approval${r.approvals > 1 ? 's' : ''}, expires ${relative(r.expiresAt)})`;
    case 'approved':
      return `approved by ${approvals.map(person).join(', ')}`;
    case 'denied': {
      const d = r.decisions.find((x) => x.decision === 'deny');
      return `denied by ${d ? person(d) : '?'}${d?.reason ? `: ${d.reason}` : ''}`;
    }
    default:
      return `${r.state}${r.closedBecause ? ` (${r.closedBecause})` : ''}`;
  }
}

/** The rows of `hoop review ls`. */
export function reviewRows(reviews: readonly ReviewInfo[]): string[][] {
  return [['ID', 'STATE', 'REQUESTER', 'CONNECTION', 'RULE', 'AGE', 'STATEMENT'], ...reviews.map((r) => [r.id, r.state === 'pending' ? `pending ${r.decisions.length}/${r.approvals}` : r.state, person(r.requester), r.connection, r.rule ?? '-', relative(r.createdAt).replace(/^in /, ''), oneLine(r.sql)])];
}

/** `hoop review show`: everything a reviewer needs to decide. */
export function reviewText(r: ReviewInfo): string {
  const lines = [
    `review ${r.id}: ${standing(r)}`,
    `requested by ${person(r.requester)}${r.requester.groups.length ? ` (${r.requester.groups.join(', ')})` : ''} on ${r.connection}, session ${r.session}${r.run ? `, run ${String(r.run)}` : ''}, ${relative(r.createdAt)}`,
    `rule: ${r.rule ?? '(policy)'}: ${r.message ?? r.reason}`,
    `reviewers: ${r.groups.join(', ')}; ${r.approvals} approval${r.approvals > 1 ? 's' : ''} needed${r.selfApprove ? '' : ', not the requester'}`,
    '',
    ...r.sql.split('\n').map((l) => `    ${l}`),
  ];
  if (r.params?.length) lines.push(`    -- parameters: ${r.params.map((p) => (p === null ? 'NULL' : JSON.stringify(p))).join(', ')}`);
  if (r.decisions.length) lines.push('', ...r.decisions.map((d) => `${d.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}  ${person(d)} ${d.decision === 'approve' ? 'approved' : 'denied'}${d.reason ? `: ${d.reason}` : ''}`));
  if (r.state === 'pending') lines.push('', `approve: hoop review approve ${r.id}`, `deny:    hoop review deny ${r.id} --reason "…"`);
  return `${lines.join('\n')}\n`;
}

/**
 * One status line for a `review` control message of the gateway (what `hoop connect`, `hoop run`
 * and `hoop exec` print as a held statement's review goes on).
 */
export function reviewStatusLine(m: Record<string, unknown>): string {
  const id = String(m.id);
  const by = Array.isArray(m.by) ? m.by.join(', ') : typeof m.by === 'string' ? m.by : '?';
  switch (m.state) {
    case 'pending': {
      const groups = Array.isArray(m.groups) ? m.groups.join(', ') : '?';
      const n = Number(m.approvals ?? 1);
      const within = typeof m.timeoutMs === 'number' ? ` within ${formatDuration(m.timeoutMs)}` : '';
      return `statement held for review ${id}${m.rule ? ` (rule "${String(m.rule)}")` : ''}: waiting for ${n === 1 ? 'one approval' : `${n} approvals`} from ${groups}${within}; a reviewer runs \`hoop review approve ${id}\``;
    }
    case 'approved':
      return `review ${id} approved by ${by}: the statement runs`;
    case 'denied':
      return `review ${id} denied by ${by}${typeof m.reason === 'string' ? `: ${m.reason}` : ''}; the statement did not run`;
    case 'expired':
      return `review ${id} was not decided in time; the statement did not run`;
    default:
      return `review ${id} withdrawn; the statement did not run`;
  }
}

/** Exit code of `show --wait` by outcome: 0 approved, 3 denied, 4 still pending or not decided (expired, withdrawn). */
function waitExit(r: ReviewInfo): number {
  return r.state === 'approved' ? 0 : r.state === 'denied' ? 3 : 4;
}

/** Builds the `review` command. */
export function reviewCommand(io: CliIo): Command {
  const review = new Command('review').description('list, read, approve and deny statements held for review (just-in-time approvals)');

  review.addCommand(
    gatewayOptions(
      new Command('ls')
        .description('list the reviews you may see: what waits for you, and your own requests (newest first)')
        .addOption(new Option('--state <state>', 'only reviews in this state').choices(['pending', 'approved', 'denied', 'expired', 'withdrawn', 'all']).default('pending')),
    ).action(async (opts: ReviewFlags & { state: string }) => {
      const reviews = await withGateway(io, opts, (endpoint, token) => listReviews(endpoint, token, opts.state === 'all' ? undefined : opts.state));
      if (opts.json) io.stdout.write(`${JSON.stringify({ reviews }, null, 2)}\n`);
      else if (reviews.length === 0) io.stdout.write(opts.state === 'pending' ? 'no reviews wait for a decision\n' : `no ${opts.state === 'all' ? '' : `${opts.state} `}reviews\n`);
      else io.stdout.write(`${columns(reviewRows(reviews)).join('\n')}\n`);
    }),
  );

  review.addCommand(
    gatewayOptions(
      new Command('show')
        .description('show one review: the statement, who asks, the rule, the decisions')
        .argument('<id>', 'the review id (rv-…), as the notice and `hoop review ls` name it')
        .option('--wait [seconds]', 'wait for the decision (exit 0 approved, 3 denied, 4 not decided)'),
    ).action(async (id: string, opts: ReviewFlags & { wait?: string | true }) => {
      const wait = opts.wait === undefined ? undefined : opts.wait === true ? Number.POSITIVE_INFINITY : Number(opts.wait);
      if (wait !== undefined && !(wait >= 0)) throw new HoopError(ErrorCode.USAGE, '--wait takes a number of seconds');
      const r = await withGateway(io, opts, async (endpoint, token) => {
        if (wait === undefined) return getReview(endpoint, token, id);
        const until = Date.now() + wait * 1000;
        for (;;) {
          const left = Math.max(0, until - Date.now());
          const now = await getReview(endpoint, token, id, Math.min(60, left / 1000));
          if (now.state !== 'pending' || Date.now() >= until) return now;
        }
      });
      io.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : reviewText(r));
      if (wait !== undefined && waitExit(r) !== 0) throw new CommandExit(waitExit(r));
    }),
  );

  for (const decision of ['approve', 'deny'] as const) {
    review.addCommand(
      gatewayOptions(
        new Command(decision)
          .description(decision === 'approve' ? 'approve a held statement: it runs as sent once enough reviewers approved' : 'deny a held statement: its client gets an error with your reason')
          .argument('<id>', 'the review id (rv-…)')
          .option('--reason <text>', decision === 'approve' ? 'why (kept with the review)' : 'why (required: the requester sees it)'),
      ).action(async (id: string, opts: ReviewFlags & { reason?: string }) => {
        if (decision === 'deny' && !opts.reason?.trim()) throw new HoopError(ErrorCode.USAGE, 'a denial needs a reason', { hint: `hoop review deny ${id} --reason "why"` });
        const r = await withGateway(io, opts, (endpoint, token) => decideReview(endpoint, token, id, decision, opts.reason));
        io.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `review ${r.id}: ${standing(r)}\n`);
      }),
    );
  }
  return review;
}
