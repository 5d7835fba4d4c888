/**
 * `hoop review watch` on a terminal: a live inbox of the reviews that wait for the caller, newest
 * first, refreshed every few seconds. Below the list, the selected review's rule and what approving
 * it binds (its statement and parameters, or the access asked for), wrapped to the terminal's
 * width, in a pane as tall as the terminal leaves. Keys: ↑/↓ (or k/j) select, `a` approves, `d`
 * denies (type the reason, Enter sends it, Esc cancels), `v` or space pages on, `r` refreshes now,
 * `q` quits. What does not fit is marked cut, and `a` approves only once every line of it has been
 * on screen: a reviewer approves what they saw. What the gateway answered (or why it refused) is
 * on the status line.
 *
 * @see https://github.com/vadimdemedes/ink
 */
import { Box, Text, useApp, useInput, useStdout, useCallback, useEffect, useRef, useState } from './ink-vendor.js';
import type { ReviewInfo } from '../api-client/reviews.js';
import { relative, reviewBody, reviewRows, standing } from './review-lines.js';
import { statementSafe, terminalSafe } from './terminal-safe.js';
import { characters, columns, displayWidth } from '../text-format.js';
import { describeError } from '../errors.js';
import { runInk } from './run-ink.js';

/** What the inbox reads and writes through (the gateway's reviews API, or a test's stand-in). */
export interface ReviewInboxProps {
  /** The pending reviews the caller may see. */
  load: () => Promise<ReviewInfo[]>;
  /** Records the caller's decision; resolves the review as it then stands. */
  decide: (id: string, decision: 'approve' | 'deny', reason?: string) => Promise<ReviewInfo>;
  /** How often the list is loaded again. */
  refreshMs?: number;
  /** At most this many lines of the selected review's detail at once (default: as many as the terminal leaves). */
  sqlLines?: number;
  /** The terminal's width (default: its own, else 80): a statement's lines are wrapped to it. */
  width?: number;
  /** The terminal's height (default: its own, else 24): the detail pane is what the list and the other lines leave of it. */
  height?: number;
}

/** Lines around the detail pane besides the list: the gap, the review's header and message, the cut mark, a reason typed, the status (two). */
const CHROME_LINES = 7;

/** The first line shown of each review's detail, and how many of its lines have been on screen (counted from the top), at the width they were wrapped to (another width: none seen). */
interface Viewed {
  top: number;
  seen: number;
  width: number;
}

/**
 * `text`'s lines, each cut into pieces of at most `width` terminal columns, measured a character
 * (grapheme cluster) at a time as the terminal draws it, tabs drawn as spaces to the next multiple
 * of 8: a long or wide line wraps, so no part of it leaves the screen unseen.
 */
export function wrapLines(text: string, width: number): string[] {
  const w = Math.max(8, width);
  return text.split('\n').flatMap((line) => {
    const pieces: string[] = [];
    let piece = '';
    let used = 0;
    for (const segment of characters(line)) {
      const drawn = segment === '\t' ? ' '.repeat(8 - (used % 8)) : segment;
      const cw = segment === '\t' ? drawn.length : displayWidth(segment);
      if (used + cw > w && piece !== '') {
        pieces.push(piece);
        [piece, used] = ['', 0];
      }
      piece += segment === '\t' ? ' '.repeat(Math.min(cw, w - used)) : drawn;
      used += cw;
    }
    pieces.push(piece);
    return pieces;
  });
}

/** See the module documentation. */
export function ReviewInbox({ load, decide, refreshMs = 2000, sqlLines = Number.POSITIVE_INFINITY, width, height }: ReviewInboxProps) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const [reviews, setReviews] = useState<ReviewInfo[] | undefined>(undefined);
  // The review selected, by id: a list refreshed with a review more, or one fewer, above it selects the same one.
  const [selectedId, setSelectedId] = useState<string | undefined>(undefined);
  const [status, setStatus] = useState('');
  const [reason, setShownReason] = useState<string | undefined>(undefined);
  // The reason being typed, read by the key handler as keys come (pasted text arrives before a re-render).
  const typing = useRef<string | undefined>(undefined);
  const setReason = (r: string | undefined): void => {
    typing.current = r;
    setShownReason(r);
  };
  const [busy, setBusy] = useState(false);
  // Per review id, where its pane is and how far down it has been drawn: `seen` moves only once a page is on screen, never as a key is read.
  const viewed = useRef(new Map<string, Viewed>());
  const [, redraw] = useState(0);

  const refresh = useCallback(async () => {
    try {
      setReviews(await load());
    } catch (err) {
      setStatus(`could not list the reviews: ${describeError(err)}`);
    }
  }, [load]);

  useEffect(() => {
    void refresh();
    const timer = setInterval(() => void refresh(), refreshMs);
    return () => clearInterval(timer);
  }, [refresh, refreshMs]);

  const list = reviews ?? [];
  // None selected yet: the first; the one selected gone (decided elsewhere, expired): none, until the reviewer picks another.
  const found = selectedId === undefined ? (list.length > 0 ? 0 : -1) : list.findIndex((r) => r.id === selectedId);
  const current = found >= 0 ? list[found] : undefined;
  const index = Math.max(0, found);
  useEffect(() => {
    if (selectedId === undefined && current) setSelectedId(current.id);
  }, [selectedId, current]);
  const rows = reviews === undefined ? ['loading…'] : list.length === 0 ? ['no reviews wait for you'] : columns(reviewRows(list));
  // Indented by 4: wrapped to what is left of the width.
  const wrap = (width ?? stdout.columns ?? 80) - 4;
  const detail = current ? wrapLines(statementSafe(reviewBody(current).join('\n')), wrap) : [];
  const pane = Math.max(3, Math.min(sqlLines, (height ?? stdout.rows ?? 24) - rows.length - CHROME_LINES));
  /** What was seen of review `id` at this width (the terminal resized: its lines are other lines, none seen yet). */
  const viewOf = (id: string): Viewed => {
    const kept = viewed.current.get(id);
    return kept?.width === wrap ? kept : { top: 0, seen: 0, width: wrap };
  };
  const view = current ? viewOf(current.id) : { top: 0, seen: 0, width: wrap };
  const top = Math.min(view.top, Math.max(0, detail.length - pane));
  const bottom = Math.min(detail.length, top + pane);
  useEffect(() => {
    if (current && bottom > view.seen) viewed.current.set(current.id, { top, seen: bottom, width: wrap });
  });
  /** Pages the selected review's pane on (back to its top after its last page). */
  const pageOn = (id: string): void => {
    viewed.current.set(id, { top: bottom >= detail.length ? 0 : Math.min(top + pane, detail.length - pane), seen: viewOf(id).seen, width: wrap });
    redraw((n) => n + 1);
  };
  /** How many lines of the selected review have never been on screen. */
  const unseen = (id: string): number => detail.length - viewOf(id).seen;

  const act = (decision: 'approve' | 'deny', why?: string): void => {
    if (!current) return;
    if (busy) {
      setStatus('still sending the last decision: press again in a moment');
      return;
    }
    setBusy(true);
    decide(current.id, decision, why)
      .then((r) => setStatus(`review ${r.id}: ${standing(r)}`))
      .catch((err: unknown) => setStatus(describeError(err)))
      .finally(() => {
        setBusy(false);
        void refresh();
      });
  };

  useInput((input, key) => {
    const typed = typing.current;
    if (typed !== undefined) {
      if (key.escape) setReason(undefined);
      else if (key.return) {
        if (typed.trim() === '') setStatus('a denial needs a reason');
        else {
          act('deny', typed.trim());
          setReason(undefined);
        }
      } else if (key.backspace || key.delete) setReason(typed.slice(0, -1));
      else if (input && !key.ctrl && !key.meta) setReason(`${typed}${input}`);
      return;
    }
    if (input === 'q' || key.escape || (key.ctrl && input === 'c')) exit();
    else if (key.upArrow || input === 'k') setSelectedId(list[found < 0 ? 0 : Math.max(0, index - 1)]?.id);
    else if (key.downArrow || input === 'j') setSelectedId(list[found < 0 ? 0 : Math.min(list.length - 1, index + 1)]?.id);
    else if (input === 'a' && current && unseen(current.id) > 0) setStatus(`${unseen(current.id)} line(s) of ${current.id} not yet on screen: page through it (v or space) before you approve it`);
    else if (input === 'a') act('approve');
    else if ((input === 'v' || input === ' ') && current) pageOn(current.id);
    else if (input === 'd' && current) setReason('');
    else if (input === 'r') void refresh();
  });

  return (
    <Box flexDirection="column">
      {rows.map((line, i) => (
        <Text key={i} {...(i === 0 && list.length > 0 ? { bold: true } : {})} {...(i === found + 1 && found >= 0 ? { inverse: true } : {})}>
          {line}
        </Text>
      ))}
      {current ? (
        <Box flexDirection="column" marginTop={1}>
          <Text wrap="truncate">
            {terminalSafe(
              `${current.id} · ${current.requester.email ?? current.requester.subject} on ${current.connection} · rule ${current.rule ?? '(policy)'} · expires ${relative(current.expiresAt)}`,
            )}
          </Text>
          <Text dimColor wrap="truncate">
            {terminalSafe(current.message ?? current.reason)}
          </Text>
          {detail.slice(top, bottom).map((l, i) => (
            <Text key={i} color="cyan" wrap="truncate">{`    ${l}`}</Text>
          ))}
          {detail.length > pane ? (
            <Text bold wrap="truncate">{`    … cut: lines ${top + 1}–${bottom} of ${detail.length} shown, ${detail.length - Math.max(view.seen, bottom)} never yet (v/space: next page)`}</Text>
          ) : null}
        </Box>
      ) : selectedId !== undefined && reviews !== undefined && list.length > 0 ? (
        <Text>{`${selectedId} is no longer waiting (decided, withdrawn or expired): ↑/↓ selects another`}</Text>
      ) : null}
      {reason !== undefined ? <Text>{`deny ${current?.id ?? ''}: reason? ${reason}▌  (Enter sends, Esc cancels)`}</Text> : null}
      <Text inverse>{` ${busy ? 'sending… · ' : ''}${status ? `${status} · ` : ''}↑/↓ select · a approve · d deny · v/space page · r refresh · q quit `}</Text>
    </Box>
  );
}

/** Runs the inbox in the terminal (stdout and stdin must be TTYs) until the user quits or `signal` aborts. */
export async function watchReviews(props: ReviewInboxProps, o: { stdout: NodeJS.WriteStream; stdin: NodeJS.ReadStream; signal: AbortSignal }): Promise<void> {
  await runInk(<ReviewInbox {...props} />, o);
}
