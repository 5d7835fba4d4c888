/**
 * An HTTP session's events as `curl -v` prints an exchange: the request (`> ` lines: its start
 * line, fields and body), the answer (`< ` lines: its status line and fields), its body as the
 * client got it, and its size; and what the gateway did beside (an upstream unreachable, an answer
 * refused or cut).
 *
 * @see https://curl.se/docs/manpage.html#-v
 */
import type { RecordingEvent } from '../recording/event-line.js';
import type { TranscriptLine } from './transcript-line.js';

/** Most characters of one body shown. */
const SHOWN = 4096;

/** The lines of an `http` event, or of an `http-*` one. */
export function httpLines(e: RecordingEvent): TranscriptLine[] {
  const at = e.at;
  if (e.t === 'http') {
    if (e.request) {
      const r = e.request as { method?: unknown; target?: unknown; fields?: Array<[string, string]>; body?: unknown; bodyBytes?: unknown };
      const body = typeof r.body === 'string' ? [cut(r.body)] : typeof r.bodyBytes === 'number' && r.bodyBytes > 0 ? [`-- a body of ${r.bodyBytes} B, not recorded`] : [];
      return [{ at, text: [`> ${String(r.method)} ${String(r.target)} HTTP/1.1`, ...(r.fields ?? []).map(([n, v]) => `> ${n}: ${v}`), '>', ...body].join('\n') }];
    }
    if (e.response) {
      const r = e.response as { status?: unknown; reason?: unknown; fields?: Array<[string, string]> };
      const refused = r.status === 403 && (r.fields ?? []).some(([n]) => n.toLowerCase() === 'hoop-refused');
      return [
        { at, text: [`< HTTP/1.1 ${String(r.status)} ${String(r.reason ?? '')}`.trimEnd(), ...(r.fields ?? []).map(([n, v]) => `< ${n}: ${v}`), '<'].join('\n'), ...(refused ? { denied: true } : {}) },
      ];
    }
    if (typeof e.body === 'string') return [{ at, text: cut(e.body) }];
    if (e.end) {
      const end = e.end as { bytes?: unknown; recorded?: unknown };
      return [{ at, text: `-- ${String(end.bytes)} B${typeof end.recorded === 'number' ? ` (the first ${end.recorded} B recorded)` : ''}` }];
    }
    return [];
  }
  switch (e.t) {
    case 'http-upstream-failed':
      return [{ at, text: `-- the API could not answer${e.status ? ` (${String(e.status)})` : ''}: ${String(e.message)}` }];
    case 'http-answer-refused':
      return [{ at, text: `-- the API's answer (${String(e.status)}) was refused: ${String(e.reason)}`, denied: true }];
    case 'http-answer-cut':
      return [{ at, text: `-- the API's answer was cut: ${String(e.reason)}` }];
    case 'http-end':
      return [{ at, text: `-- the gateway ended the session: ${String(e.message ?? e.reason)}` }];
    default:
      return [];
  }
}

function cut(text: string): string {
  return text.length > SHOWN ? `${text.slice(0, SHOWN)}… (${text.length - SHOWN} more characters)` : text;
}
