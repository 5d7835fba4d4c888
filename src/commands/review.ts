/**
 * `hoop review ls|show|approve|deny|watch`: the reviewer's side of just-in-time approvals. A
 * statement a `review` rule holds waits at the gateway; reviewers list what waits, read the
 * statement (SQL and parameters, who asks, under which rule), and approve or deny it. Requesters
 * use `show --wait` to follow their own. The gateway decides who may see and decide each review.
 *
 * @see docs/internals.md (§3.6, §4.4)
 */
import { Command, Option } from 'commander';
import { decideReview, followReview, getReview, listReviews, type ReviewInfo } from '../api-client/reviews.js';
import { gatewayOptions, withGateway, withGatewayAsPerson, type GatewayFlags } from '../client/client-config.js';
import { watchPendingReviews } from '../client/review-watch.js';
import { CommandExit, ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { reviewRows, reviewText, standing } from '../ui/review-lines.js';
import { paintedTable, printJson } from '../ui/output.js';

interface ReviewFlags extends GatewayFlags {
  json?: boolean;
}

/** The gateway options, and `--json`. */
const reviewOptions = (c: Command): Command => gatewayOptions(c).option('--json', 'print JSON');

/** Exit code of `show --wait` by outcome: 0 approved, 3 denied, 4 still pending or not decided (expired, withdrawn). */
function waitExit(r: ReviewInfo): number {
  return r.state === 'approved' ? 0 : r.state === 'denied' ? 3 : 4;
}

/** Builds the `review` command. */
export function reviewCommand(io: CliIo): Command {
  const review = new Command('review').description('list, read, approve and deny statements held for review (just-in-time approvals)');

  review.addCommand(
    reviewOptions(
      new Command('ls')
        .description('list the reviews you may see: what waits for you, and your own requests (newest first)')
        .addOption(new Option('--state <state>', 'only reviews in this state').choices(['pending', 'approved', 'denied', 'expired', 'withdrawn', 'all']).default('pending')),
    ).action(async (opts: ReviewFlags & { state: string }) => {
      const reviews = await withGateway(io, opts, async (endpoint, token) => listReviews(endpoint, await token(), opts.state === 'all' ? undefined : opts.state));
      if (opts.json) printJson(io, { reviews });
      else if (reviews.length === 0) io.stdout.write(opts.state === 'pending' ? 'no reviews wait for a decision\n' : `no ${opts.state === 'all' ? '' : `${opts.state} `}reviews\n`);
      else io.stdout.write(paintedTable(io, reviewRows(reviews)));
    }),
  );

  review.addCommand(
    reviewOptions(
      new Command('show')
        .description('show one review: the statement, who asks, the rule, the decisions')
        .argument('<id>', 'the review id (rv-…), as the notice and `hoop review ls` name it')
        .option('--wait [seconds]', 'wait for the decision (exit 0 approved, 3 denied, 4 not decided)'),
    ).action(async (id: string, opts: ReviewFlags & { wait?: string | true }) => {
      const wait = opts.wait === undefined ? undefined : opts.wait === true ? Number.POSITIVE_INFINITY : Number(opts.wait);
      if (wait !== undefined && !(wait >= 0)) throw new HoopError(ErrorCode.USAGE, '--wait takes a number of seconds');
      const r = await withGateway(io, opts, async (endpoint, token) => (wait === undefined ? getReview(endpoint, await token(), id) : followReview(endpoint, token, id, wait)));
      if (opts.json) printJson(io, r);
      else io.stdout.write(reviewText(r));
      if (wait !== undefined && waitExit(r) !== 0) throw new CommandExit(waitExit(r));
    }),
  );

  for (const decision of ['approve', 'deny'] as const) {
    review.addCommand(
      reviewOptions(
        new Command(decision)
          .description(decision === 'approve' ? 'approve a held statement: it runs as sent once enough reviewers approved' : 'deny a held statement: its client gets an error with your reason')
          .argument('<id>', 'the review id (rv-…)')
          .option('--reason <text>', decision === 'approve' ? 'why (kept with the review)' : 'why (required: the requester sees it)'),
      ).action(async (id: string, opts: ReviewFlags & { reason?: string }) => {
        if (decision === 'deny' && !opts.reason?.trim()) throw new HoopError(ErrorCode.USAGE, 'a denial needs a reason', { hint: `hoop review deny ${id} --reason "why"` });
        const r = await withGatewayAsPerson(io, opts, async (endpoint, token) => decideReview(endpoint, await token(), id, decision, opts.reason));
        if (opts.json) printJson(io, r);
        else io.stdout.write(`review ${r.id}: ${standing(r)}\n`);
      }),
    );
  }
  review.addCommand(
    reviewOptions(new Command('watch').description('a live inbox of the reviews that wait for you: approve or deny from the terminal (without a terminal: print each new one as it comes)')).action(
      (opts: ReviewFlags) => watchPendingReviews(io, opts),
    ),
  );
  return review;
}
