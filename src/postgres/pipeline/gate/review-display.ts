/**
 * What a reviewer is shown of a statement held for review: every SQL text the held message may
 * run (its own, the bodies it EXECUTEs, each text a prepared name may hold) and a Bind's
 * parameters, whole (text as text, binary and non-UTF-8 text as `\x…` hex), with a digest of
 * the message. The gate never shows a cut value: what cannot be shown whole is refused, not held.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { ReviewAsk, StatementVerdict } from '../../../session/engine.js';
import { bindParameterSpans } from '../../wire/frontend-messages.js';
import type { Held } from './names.js';

/** Most of a Bind's parameters a reviewer is shown, all of them together (as text; binary as hex): more is not held, but refused. */
export const REVIEW_PARAMS_MAX = 64 * 1024;
/** Why a Bind's parameters cannot be shown: too long (see {@link REVIEW_PARAMS_MAX}). */
export const PARAMS_TOO_LONG = `its parameters are longer than ${REVIEW_PARAMS_MAX / 1024} KiB`;

/** What a reviewer is shown of a remembered statement: its first text (a long one's analysis shows none). */
export function heldText(held: Held): string | undefined {
  const text = held.find((s): s is string => typeof s === 'string');
  return text;
}

/**
 * A Bind's parameters as a reviewer sees them, whole: text (a leading backslash doubled), binary as `\x…` hex; or, when together
 * they are longer than {@link REVIEW_PARAMS_MAX} shown, why they cannot be shown (never a cut
 * value a reviewer would approve without seeing the rest).
 */
export function reviewParams(body: Buffer): { params: Array<string | null> } | { unshowable: string } | undefined {
  const spans = bindParameterSpans(body);
  if (!spans) return undefined;
  // Binary values, and text that is not UTF-8 (which a decoder would turn into U+FFFD, so that different bytes read alike), as hex.
  const hex = (p: { start: number; end: number; format: number }): boolean => p.format === 1 || !isUtf8(body.subarray(p.start, p.end));
  let shown = 0;
  for (const p of spans) if (p !== null) shown += (p.end - p.start) * (hex(p) ? 2 : 1) + 2;
  if (shown > REVIEW_PARAMS_MAX) return { unshowable: PARAMS_TOO_LONG };
  // A text that starts with a backslash shows it doubled: `\x…` is only ever a value shown as hex, so no two values show alike.
  const text = (p: { start: number; end: number }): string => body.toString('utf8', p.start, p.end).replace(/^\\/, '\\\\');
  return { params: spans.map((p) => (p === null ? null : hex(p) ? `\\x${body.toString('hex', p.start, p.end)}` : text(p))) };
}

/**
 * The review a held message asks for: `sql` (its own text) followed by every other text it may
 * run (`seen`), a digest of the message as sent and of those texts, a Bind's `params`, and the
 * verdict's rule, message, reason and review settings.
 */
export function reviewAsk(raw: Buffer | undefined, sql: string, seen: readonly string[], params: Array<string | null> | undefined, verdict: StatementVerdict): ReviewAsk {
  // The reviewer sees every text that may run: the statements an EXECUTE runs, each text a prepared name may hold.
  const others = seen.filter((t) => t !== sql);
  const digest = createHash('sha256').update(raw ?? Buffer.alloc(0));
  for (const t of seen) digest.update('\0').update(t);
  return {
    sql: others.length > 0 ? `${sql}\n-- which runs, or may run:\n${others.join('\n-- or:\n')}` : sql,
    digest: digest.digest('hex'),
    ...(params ? { params } : {}),
    ...(verdict.rule !== undefined ? { rule: verdict.rule } : {}),
    ...(verdict.message !== undefined ? { message: verdict.message } : {}),
    reason: verdict.reason,
    settings: verdict.review!,
  };
}
