/**
 * `hoop review watch` on a terminal: a live inbox of the reviews that wait for the caller, newest
 * first, refreshed every few seconds. The selected review's statement, parameters and rule are
 * shown below the list. Keys: ↑/↓ (or k/j) select, `a` approves, `d` denies (type the reason,
 * Enter sends it, Esc cancels), `v` shows a long statement whole, `r` refreshes now, `q` quits.
 * A statement longer than the lines shown (its long lines wrapped to the terminal's width) is
 * marked cut, and `a` approves it only once it was shown whole: a reviewer approves what they saw. What the gateway answered (or why it refused)
 * is on the status line.
 *
 * @see https://github.com/vadimdemedes/ink
 */
import { Box, Text, useApp, useInput, useStdout, useCallback, useEffect, useRef, useState } from './ink-vendor.js';
import type { ReviewInfo } from '../api-client/reviews.js';
import { relative, reviewRows, standing } from './review-lines.js';
import { terminalSafe } from './terminal-safe.js';
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
  /** Lines of SQL shown for the selected review. */
  sqlLines?: number;
  /** The terminal's width (default: its own, else 80): a statement's lines are wrapped to it. */
  width?: number;
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
export function ReviewInbox({ load, decide, refreshMs = 2000, sqlLines = 8, width }: ReviewInboxProps) {
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
  // The reviews shown whole (`v`), by id: what a reviewer saw of each. Read by the key handler as keys come (`v` then `a` may arrive before a re-render).
  const [whole, setShownWhole] = useState<ReadonlySet<string>>(new Set());
  const wholeNow = useRef<ReadonlySet<string>>(whole);
  const showWhole = (id: string): void => {
    wholeNow.current = new Set([...wholeNow.current, id]);
    setShownWhole(wholeNow.current);
  };

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
  // Indented by 4: wrapped to what is left of the width.
  const sqlShown = current ? wrapLines(terminalSafe(current.sql), (width ?? stdout.columns ?? 80) - 4) : [];
  const cut = current !== undefined && !whole.has(current.id) && sqlShown.length > sqlLines;

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
    else if (input === 'a' && current && !wholeNow.current.has(current.id) && sqlShown.length > sqlLines)
      setStatus(`not all of ${current!.id} is shown: press v to see it whole before you approve it`);
    else if (input === 'a') act('approve');
    else if (input === 'v' && current) showWhole(current.id);
    else if (input === 'd' && current) setReason('');
    else if (input === 'r') void refresh();
  });

  const rows = reviews === undefined ? ['loading…'] : list.length === 0 ? ['no reviews wait for you'] : columns(reviewRows(list));
  return (
    <Box flexDirection="column">
      {rows.map((line, i) => (
        <Text key={i} {...(i === 0 && list.length > 0 ? { bold: true } : {})} {...(i === found + 1 && found >= 0 ? { inverse: true } : {})}>
          {line}
        </Text>
      ))}
      {current ? (
        <Box flexDirection="column" marginTop={1}>
          <Text>
            {terminalSafe(
              `${current.id} · ${current.requester.email ?? current.requester.subject} on ${current.connection} · rule ${current.rule ?? '(policy)'} · expires ${relative(current.expiresAt)}`,
            )}
          </Text>
          <Text dimColor>{terminalSafe(current.message ?? current.reason)}</Text>
          {(cut ? sqlShown.slice(0, sqlLines) : sqlShown).map((l, i) => (
            <Text key={i} color="cyan" wrap="truncate">{`    ${l}`}</Text>
          ))}
          {cut ? <Text bold>{`    … cut: ${sqlShown.length - sqlLines} more lines of ${sqlShown.length} (v shows them all; approve only what you saw)`}</Text> : null}
          {current.params?.length ? <Text color="cyan">{terminalSafe(`    -- parameters: ${current.params.map((p) => (p === null ? 'NULL' : JSON.stringify(p))).join(', ')}`)}</Text> : null}
        </Box>
      ) : selectedId !== undefined && reviews !== undefined && list.length > 0 ? (
        <Text>{`${selectedId} is no longer waiting (decided, withdrawn or expired): ↑/↓ selects another`}</Text>
      ) : null}
      {reason !== undefined ? <Text>{`deny ${current?.id ?? ''}: reason? ${reason}▌  (Enter sends, Esc cancels)`}</Text> : null}
      <Text inverse>{` ${busy ? 'sending… · ' : ''}${status ? `${status} · ` : ''}↑/↓ select · a approve · d deny · v view whole · r refresh · q quit `}</Text>
    </Box>
  );
}

/** Runs the inbox in the terminal (stdout and stdin must be TTYs) until the user quits or `signal` aborts. */
export async function watchReviews(props: ReviewInboxProps, o: { stdout: NodeJS.WriteStream; stdin: NodeJS.ReadStream; signal: AbortSignal }): Promise<void> {
  await runInk(<ReviewInbox {...props} />, o);
}
