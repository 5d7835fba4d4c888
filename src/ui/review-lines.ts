/**
 * How reviews are said in text: the rows of `hoop review ls` (and the inbox), the page of `hoop
 * review show`, where a review stands in a few words, and the status line `hoop connect`, `hoop
 * run` and `hoop exec` print as a held statement's review goes on. What requesters and reviewers
 * wrote (statements, commands, reasons) is printed through {@link terminalSafe}.
 */
import { realClock } from '../clock.js';
import type { ReviewInfo } from '../api-client/reviews.js';
import { characters, displayWidth, formatDuration } from '../text-format.js';
import { lineSafe, statementSafe, terminalSafe } from './terminal-safe.js';

/** Who, as a review names people: their email, else their subject. */
export const person = (p: { subject: string; email?: string }): string => p.email ?? p.subject;

/** How long from now until `iso`, or since: `in 9 min`, `2 min ago`. */
export function relative(iso: string, now = realClock.now()): string {
  const ms = Date.parse(iso) - now;
  const abs = Math.abs(ms);
  const text = abs < 90_000 ? `${Math.round(abs / 1000)} s` : abs < 5_400_000 ? `${Math.round(abs / 60_000)} min` : `${(abs / 3_600_000).toFixed(1).replace(/\.0$/, '')} h`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

/**
 * One line of SQL (or a command) for a table cell, shown safe ({@link lineSafe}), at most `max`
 * terminal columns (cut with `…`). Only runs of spaces and tabs fold, which no parser reads apart:
 * a line break is shown `\n` (it ends a `--` comment: folded, `… id = 5 --⏎OR true` reads as
 * commented out), and a no-break space, a letter to PostgreSQL, as its escape.
 */
export const oneLine = (sql: string, max = 60): string => {
  let shown = '';
  let width = 0;
  /** Where the text is cut if it is longer than `max`: room for the `…`. */
  let cut = -1;
  for (const c of characters(sql.replace(/[ \t]+/g, ' ').trim())) {
    const piece = lineSafe(c);
    width += displayWidth(piece);
    if (cut < 0 && width > max - 1) cut = shown.length;
    shown += piece;
    if (width > max) return `${shown.slice(0, cut)}…`;
  }
  return shown;
};

/** Where a review stands, in words: `pending (1 of 2 approvals, expires in 9 min)`, `denied by bob: too broad`. */
export function standing(r: ReviewInfo): string {
  return terminalSafe(standingOf(r));
}

function standingOf(r: ReviewInfo): string {
  const approvals = r.decisions.filter((d) => d.decision === 'approve');
  switch (r.state) {
    case 'pending':
      return `pending (${approvals.length} of ${r.approvals} approval${r.approvals > 1 ? 's' : ''}, expires ${relative(r.expiresAt)})`;
    case 'approved':
      return `approved by ${approvals.map(person).join(', ')}${r.access?.until ? `: ${r.access.mode} access to ${r.connection} until ${r.access.until}` : ''}`;
    case 'denied': {
      const d = r.decisions.find((x) => x.decision === 'deny');
      return `denied by ${d ? person(d) : '?'}${d?.reason ? `: ${d.reason}` : ''}`;
    }
    default:
      return `${r.state}${r.closedBecause ? ` (${r.closedBecause})` : ''}`;
  }
}

/** What a review is about, in one line: the statement, or the access asked for. */
export function subjectLine(r: ReviewInfo): string {
  return r.access ? `access ${r.access.mode} for ${formatDuration(r.access.seconds * 1000)}: ${oneLine(r.access.reason, 50)}` : oneLine(r.sql);
}

/** The rows of `hoop review ls` (and the inbox): a header, then one per review. */
export function reviewRows(reviews: readonly ReviewInfo[]): string[][] {
  return [
    ['ID', 'STATE', 'REQUESTER', 'CONNECTION', 'RULE', 'AGE', 'STATEMENT'],
    ...reviews.map((r) =>
      [r.id, r.state === 'pending' ? `pending ${r.decisions.length}/${r.approvals}` : r.state, person(r.requester), r.connection, r.rule ?? '-', relative(r.createdAt).replace(/^in /, '')]
        .map(terminalSafe)
        .concat(subjectLine(r)),
    ),
  ];
}

/** What approving a review binds, as lines: the statement and its parameters, or the access asked for. */
export function reviewBody(r: ReviewInfo): string[] {
  if (r.access) return [`asks for ${r.access.mode} access to ${r.connection} for ${formatDuration(r.access.seconds * 1000)}: ${r.access.reason}`];
  const params = r.params?.length ? [`-- parameters: ${r.params.map((p) => (p === null ? 'NULL' : JSON.stringify(p))).join(', ')}`] : [];
  return [...r.sql.split('\n'), ...params];
}

/** `hoop review show`: everything a reviewer needs to decide. */
export function reviewText(r: ReviewInfo): string {
  const lines = [
    `review ${r.id}: ${standing(r)}`,
    `requested by ${person(r.requester)}${r.requester.groups.length ? ` (${r.requester.groups.join(', ')})` : ''} on ${r.connection}${r.session ? `, session ${r.session}` : ''}${r.run ? `, run ${String(r.run)}` : ''}, ${relative(r.createdAt)}`,
    r.access ? `access rule: ${r.rule ?? '?'}` : `rule: ${r.rule ?? '(policy)'}: ${r.message ?? r.reason}`,
    `reviewers: ${r.groups.join(', ')}; ${r.approvals} approval${r.approvals > 1 ? 's' : ''} needed${r.selfApprove ? '' : ', not the requester'}`,
    ...(r.agent !== undefined ? [`sent by the agent ${r.agent} (${r.via ?? 'run'})${r.prompt !== undefined ? ", whose run's prompt was, in its person's words:" : ''}`] : []),
    ...(r.prompt !== undefined ? r.prompt.split('\n').map((l) => `    > ${l}`) : []),
  ];
  // What approving binds is shown with what passes for its own punctuation escaped too.
  const body = statementSafe(reviewBody(r).join('\n'))
    .split('\n')
    .map((l) => `    ${l}`);
  const after: string[] = [];
  if (r.decisions.length)
    after.push('', ...r.decisions.map((d) => `${d.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}  ${person(d)} ${d.decision === 'approve' ? 'approved' : 'denied'}${d.reason ? `: ${d.reason}` : ''}`));
  if (r.state === 'pending') after.push('', `approve: hoop review approve ${r.id}`, `deny:    hoop review deny ${r.id} --reason "…"`);
  return `${[...lines.map(terminalSafe), '', ...body, ...after.map(terminalSafe)].join('\n')}\n`;
}

/**
 * One status line for a `review` control message of the gateway (what `hoop connect`, `hoop run`
 * and `hoop exec` print as a held statement's review goes on).
 */
export function reviewStatusLine(m: Record<string, unknown>): string {
  return terminalSafe(statusLineOf(m));
}

function statusLineOf(m: Record<string, unknown>): string {
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
