/**
 * A recorded session as psql would have shown it (the events come from src/recording/read.ts).
 */
import type { RecordingEvent } from '../recording/event-line.js';
import { alignedTable, NUMERIC_TYPES, rowCount, serverMessageLines } from './psql-format.js';
import { mysqlRowCount, mysqlTable } from './mysql-format.js';
import { terminalSafe } from './terminal-safe.js';
import { RESERVED_STATEMENT_PREFIX } from '../postgres/pipeline/gate/names.js';
import { jsonText } from '../json-number.js';
import { httpLines } from './http-transcript.js';
import type { TranscriptLine } from './transcript-line.js';

/** The server's error for the Describe hoop connect sends in place of what it refused (and nothing else). */
const STAND_IN_ERROR = new RegExp(`^prepared statement "${RESERVED_STATEMENT_PREFIX}[0-9a-f]+_[0-9]+" does not exist$`);

/** What starts a line that goes on the line before it. */
export const CONTINUED = '   | ';
/** What starts an answer's lines (a tool's, a resource's): none is the transcript's own. */
const ANSWER = '   ';

export type { TranscriptLine } from './transcript-line.js';

/**
 * Turns events into what a psql user would have seen, statement by statement: the prompt and SQL,
 * then the result table, the command tag, errors and notices as psql prints them, and hoop's
 * decision when the policy refused the statement.
 */
export class TranscriptRenderer {
  #names: string[] | undefined;
  /** Which columns psql right-aligns (numbers), from the result's `types`. */
  #right: boolean[] = [];
  #rows: unknown[][] = [];
  #rowsAt = 0;
  #database = 'db';
  /** A MySQL session: shown as the mysql client prints it. */
  #mysql = false;
  /** The parameters of the last Bind, said after the statement its Execute runs. */
  #params: string | undefined;
  /** Prepared statements' SQL, from their `parse` events. */
  readonly #statements = new Map<string, string>();
  /** The CLI refused a statement: the server's error about the stand-in the CLI sent for it is not the client's. */
  #standIn = false;

  /**
   * The lines event `e` adds, if any, safe to print on a terminal (see {@link terminalSafe}): what
   * a line holds of others' text past a line break goes on behind {@link CONTINUED}, so nothing
   * recorded (a tool's answer, a command, a message) starts a line of the transcript's own.
   */
  render(e: RecordingEvent): TranscriptLine[] {
    return this.#lines(e).flatMap((l) =>
      terminalSafe(l.text)
        .split('\n')
        .map((text, i) => ({ ...l, text: i === 0 ? text : `${CONTINUED}${text}` })),
    );
  }

  #lines(e: RecordingEvent): TranscriptLine[] {
    const at = e.at;
    switch (e.t) {
      case 'start': {
        const id = e.identity as { subject?: string; groups?: string[] } | undefined;
        this.#database = String(e.connection ?? 'db');
        this.#mysql = e.type === 'mysql';
        // An agent's session: whose agent, how it came, in which run (the gateway's word, from the run's credential).
        const agent = typeof e.agent === 'string' ? `'s agent ${e.agent} via ${String(e.via)} (run ${String(e.runId)}${e.isolated === false ? ', not contained' : ''})` : '';
        // A runbook's run: which runbook, and its file's digest (the gateway's client sent its steps).
        const rb = e.runbook as { name?: unknown; digest?: unknown } | undefined;
        const runbook = typeof rb?.name === 'string' ? `, running runbook ${rb.name} (sha256 ${String(rb.digest).slice(0, 12)})` : '';
        return [
          {
            at,
            text: `-- session ${String(e.session)} of ${id?.subject ?? '?'}${id?.groups?.length ? ` (${id.groups.join(', ')})` : ''}${agent}${runbook} on ${this.#database}, from ${String(e.remote)}${e.policyCommit ? `, policy ${String(e.policyCommit).slice(0, 12)}` : ''}`,
          },
        ];
      }
      case 'query':
        return [{ at, text: this.#prompt(String(e.sql)) }];
      case 'parse':
        this.#statements.set(String(e.statement ?? ''), String(e.sql ?? ''));
        return [];
      case 'execute': {
        const sql = typeof e.statement === 'string' ? this.#statements.get(e.statement) : undefined;
        const params = this.#params;
        this.#params = undefined;
        if (sql === undefined) return [];
        return [{ at, text: `${this.#prompt(sql)}${e.portal ? `   -- portal ${String(e.portal)}` : ''}` }, ...(params ? [{ at, text: params }] : [])];
      }
      case 'bind': {
        const params = e.params;
        this.#params = Array.isArray(params) && params.length > 0 ? `   -- parameters: ${params.map((p) => (p === null ? 'NULL' : JSON.stringify(p))).join(', ')}` : undefined;
        return [];
      }
      case 'context': {
        // What the client said about why (its claim), quoted as JSON so that it cannot pass for anything else on the screen.
        const { t: _t, at: _at, source, tool, intent, ...more } = e;
        const who = [source, tool].filter((x) => typeof x === 'string' && x !== '').map((x) => (/^[\w.-]+$/.test(x as string) ? x : JSON.stringify(x)));
        const said = [...(intent !== undefined ? [JSON.stringify(intent)] : []), ...Object.entries(more).map(([k, v]) => `${k}=${JSON.stringify(v)}`)];
        return [{ at, text: `-- client${who.length ? ` (${who.join(' ')})` : ''} says: ${said.join(' ') || '(nothing)'}` }];
      }
      case 'cancel':
        return [{ at, text: "-- the client asked to cancel what runs (a CancelRequest: psql's Ctrl-C)" }];
      case 'sign-in':
        return [{ at, text: `-- signed in as role ${JSON.stringify(e.role)} on database ${JSON.stringify(e.database)}` }];
      case 'decision':
        return [{ at, text: `-- hoop: ${String(e.action === 'review' ? 'held for review' : 'denied')} by rule "${String(e.rule)}": ${String(e.reason)}`, denied: true }];
      case 'review': {
        if (e.state === 'pending') {
          const groups = Array.isArray(e.groups) ? e.groups.join(', ') : '?';
          return [
            { at, text: `-- hoop: held for review ${String(e.id)}${e.rule ? ` by rule "${String(e.rule)}"` : ''}: ${String(e.reason)} (${String(e.approvals ?? 1)} approval(s) from ${groups})` },
          ];
        }
        const decisions = Array.isArray(e.decisions) ? (e.decisions as Array<{ subject?: string; email?: string; decision?: string; reason?: string }>) : [];
        const said = decisions.map((d) => `${d.email ?? d.subject ?? '?'} ${d.decision === 'deny' ? 'denied' : 'approved'}${d.reason ? ` (${JSON.stringify(d.reason)})` : ''}`).join(', ');
        return [
          {
            at,
            text: `-- hoop: review ${String(e.id)} ${String(e.state)}${said ? `: ${said}` : ''}${e.because ? ` (${String(e.because)})` : ''}`,
            ...(e.state === 'approved' ? {} : { denied: true }),
          },
        ];
      }
      case 'columns':
        this.#names = (e.names as string[]) ?? [];
        this.#right = Array.isArray(e.numeric) ? e.numeric.map(Boolean) : Array.isArray(e.types) ? e.types.map((oid) => NUMERIC_TYPES.has(Number(oid))) : [];
        this.#rows = [];
        this.#rowsAt = at;
        return [];
      case 'row':
        this.#rows.push((e.values as unknown[]) ?? []);
        return [];
      case 'complete': {
        const out: TranscriptLine[] = [];
        if (this.#names && this.#mysql) {
          const n = Number(e.rows ?? this.#rows.length);
          if (n > 0) out.push(...mysqlTable(this.#names, this.#rows, this.#right).map((text) => ({ at: this.#rowsAt || at, text })));
          out.push({ at, text: `${mysqlRowCount(n)}${e.unrecorded ? `   -- ${String(e.unrecorded)} not recorded (row cap)` : ''}` }, { at, text: '' });
        } else if (this.#names) {
          out.push(...alignedTable(this.#names, this.#rows, this.#right).map((text) => ({ at: this.#rowsAt || at, text })));
          const n = Number(e.rows ?? this.#rows.length);
          out.push({ at, text: `${rowCount(n)}${e.unrecorded ? `   -- ${String(e.unrecorded)} not recorded (row cap)` : ''}` }, { at, text: '' });
        } else out.push({ at, text: String(e.tag) }, ...(this.#mysql ? [{ at, text: '' }] : []));
        this.#names = undefined;
        this.#rows = [];
        return out;
      }
      case 'client-refusal':
        this.#standIn = true;
        return [
          ...(typeof e.sql === 'string' ? [{ at, text: `${this.#database}=> ${e.sql}` }] : []),
          { at, text: `-- refused by hoop connect's early check before it reached the gateway (rule "${String(e.rule)}"): ${String(e.reason)}`, denied: true },
        ];
      case 'error':
        this.#names = undefined;
        this.#rows = [];
        // The server's answer to the Describe the CLI sent in place of what it refused.
        if (this.#standIn && STAND_IN_ERROR.test(String(e.message))) {
          this.#standIn = false;
          return [];
        }
        if (this.#mysql) return [{ at, text: String(e.message) }];
        return serverMessageLines({
          severity: 'ERROR',
          message: String(e.message),
          ...(e.detail ? { detail: String(e.detail) } : {}),
          ...(e.hint ? { hint: String(e.hint) } : {}),
        }).map((text) => ({ at, text }));
      case 'notice':
        return [{ at, text: `${String(e.severity ?? 'NOTICE')}:  ${String(e.message)}` }];
      case 'notification':
        return [{ at, text: `Asynchronous notification "${String(e.channel)}" with payload "${String(e.payload)}" received.` }];
      case 'end':
        return [{ at, text: `-- session ended: ${String(e.reason)}` }];
      default:
        if (e.t === 'mcp') return this.#mcpLines(e);
        if (e.t === 'http' || e.t.startsWith('http-')) return httpLines(e);
        return e.t.startsWith('ssh-') ? sshLines(e, this.#database) : e.t.startsWith('mcp-') ? mcpEventLines(e) : [];
    }
  }

  /** What each request of an MCP session asked (`method` and tool), by id, for the answer that follows. */
  readonly #mcpAsked = new Map<string, string>();

  /** An MCP message: a request at the prompt (`conn> tools/call name {arguments}`), an answer as its text, an error as hoop's or the server's. */
  #mcpLines(e: RecordingEvent): TranscriptLine[] {
    const at = e.at;
    if (e.text !== undefined) return [{ at, text: `-- ${e.d === 'c' ? 'the agent' : 'hoop'} sent a line that is not JSON: ${cut(String(e.text))}` }];
    const m = (e.m ?? {}) as { id?: unknown; method?: unknown; params?: Record<string, unknown>; result?: Record<string, unknown>; error?: { code?: unknown; message?: unknown } };
    const key = jsonText(m.id ?? null);
    if (typeof m.method === 'string') {
      if (m.method.startsWith('notifications/')) return m.method === 'notifications/message' ? [{ at, text: `-- ${cut(String(m.params?.data ?? ''))}` }] : [];
      if (e.d === 's') return [{ at, text: `-- the server asks the agent: ${m.method}` }];
      const p = m.params ?? {};
      const named = m.method === 'tools/call' || m.method === 'prompts/get' ? ` ${String(p.name)} ${cut(jsonText(p.arguments ?? {}))}` : typeof p.uri === 'string' ? ` ${p.uri}` : '';
      this.#mcpAsked.set(key, m.method);
      return [{ at, text: `${this.#database}> ${m.method}${named}` }];
    }
    const asked = this.#mcpAsked.get(key);
    this.#mcpAsked.delete(key);
    if (m.error) {
      const refused = m.error.code === -32001;
      return [{ at, text: `${refused ? '-- refused' : `-- error ${String(m.error.code)}`}: ${cut(String(m.error.message))}`, ...(refused ? { denied: true } : {}) }];
    }
    const r = m.result ?? {};
    if (asked === 'tools/call' || asked === 'prompts/get' || asked === 'resources/read') {
      const parts = [...((r.content as unknown[]) ?? []), ...((r.messages as Array<{ content?: unknown }>) ?? []).map((x) => x.content), ...((r.contents as unknown[]) ?? [])];
      const texts = parts.map((c) => {
        const item = (c ?? {}) as { type?: unknown; text?: unknown; mimeType?: unknown };
        return typeof item.text === 'string' ? item.text : `(${String(item.type ?? item.mimeType ?? 'content')})`;
      });
      return [{ at, text: `${r.isError ? '-- the tool failed:\n' : ANSWER}${cut(texts.join('\n'))}` }];
    }
    const list = ['tools', 'resources', 'prompts'].find((k) => Array.isArray(r[k]));
    if (list) return [{ at, text: `-- ${(r[list] as Array<{ name?: unknown; uri?: unknown }>).map((x) => String(x.name ?? x.uri)).join(', ') || `no ${list}`}` }];
    if (asked === 'initialize') {
      const info = (r.serverInfo ?? {}) as { name?: unknown; version?: unknown };
      return [{ at, text: `-- the server is ${String(info.name)} ${String(info.version)} (MCP ${String(r.protocolVersion)})` }];
    }
    return [];
  }

  /** A statement after the prompt: psql's (`conn=> sql`), or the mysql client's (`conn> sql;`). */
  #prompt(sql: string): string {
    return this.#mysql ? `${this.#database}> ${sql}${/;\s*$/.test(sql) ? '' : ';'}` : `${this.#database}=> ${sql}`;
  }
}

/** Bytes as a person reads them. */
const bytes = (n: unknown): string => (typeof n === 'number' ? (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`) : '?');

/** What the policy decided of a command, shell or sftp session, when it was not simply allowed. */
function decisionLines(e: RecordingEvent): TranscriptLine[] {
  const rule = e.rule ? ` (rule "${String(e.rule)}")` : '';
  if (e.decision === 'deny') return [{ at: e.at, text: `-- refused by the policy${rule}`, denied: true }];
  if (e.decision === 'review') return [{ at: e.at, text: `-- held for a reviewer${rule}` }];
  return [];
}

/**
 * An SSH session's events as a shell user would read them: each command (and shell, and sftp
 * session) at a prompt with what the policy decided, each sftp operation, how each channel
 * exited (status, bytes), forwards and refusals. What the terminal showed is `replay`'s.
 */
function sshLines(e: RecordingEvent, connection: string): TranscriptLine[] {
  const at = e.at;
  switch (e.t) {
    case 'ssh-signed-in':
      return [{ at, text: `-- signed in to ${String(e.target)} as ${String(e.user)}` }];
    case 'ssh-exec':
      return [{ at, text: `${connection}$ ${String(e.command)}` }, ...decisionLines(e)];
    case 'ssh-shell':
      return [{ at, text: `${connection}$ (an interactive shell${e.pty ? ', with a terminal' : ''})` }, ...decisionLines(e)];
    case 'ssh-sftp-start':
      return [{ at, text: `${connection}$ (sftp)` }, ...decisionLines(e)];
    case 'ssh-sftp': {
      const what = `${String(e.op)}${e.name !== undefined ? ` ${String(e.name)}` : ''}${e.path !== undefined ? ` ${String(e.path)}` : ''}${e.to !== undefined ? ` -> ${String(e.to)}` : ''}${e.mode !== undefined ? ` (${String(e.mode)})` : ''}`;
      const moved = e.op === 'close' && (e.read !== undefined || e.written !== undefined) ? `: read ${bytes(e.read ?? 0)}, written ${bytes(e.written ?? 0)}` : '';
      if (e.refused) return [{ at, text: `   sftp ${what}: refused (read-only)`, denied: true }];
      return [{ at, text: `   sftp ${what}${moved}${e.failed !== undefined ? `: failed on the target (status ${String(e.failed)})` : ''}` }];
    }
    case 'ssh-exit': {
      const how = e.status !== undefined ? `exit ${String(e.status)}` : `signal ${String(e.signal)}`;
      const b = e.bytes as { out?: number; err?: number; in?: number } | undefined;
      const moved = b ? `; ${bytes(b.out ?? 0)} out, ${bytes(b.err ?? 0)} err, ${bytes(b.in ?? 0)} in` : '';
      // What hoop told the client of a channel it answered itself: a refusal, or what did not start and why.
      const told = typeof e.message === 'string' ? `: ${e.message.replace(/^hoop: /, '')}` : '';
      return [{ at, text: `-- ${e.refused ? 'refused: ' : told ? 'not started: ' : ''}${how}${moved}${told}`, ...(e.refused ? { denied: true } : {}) }];
    }
    case 'ssh-forward':
      return [{ at, text: `-- forward to ${String(e.target)}: ${e.allowed ? 'allowed' : 'refused by the policy (ssh.forwarding)'}`, ...(e.allowed ? {} : { denied: true }) }];
    case 'ssh-refused':
      return [{ at, text: `-- refused: ${String(e.what)}`, denied: true }];
    case 'ssh-upstream-failed':
      return [{ at, text: `-- the target could not be reached: ${String(e.message)}` }];
    case 'ssh-end':
      return [{ at, text: `-- the gateway ended the session: ${String(e.message ?? e.reason)}` }];
    default:
      return [];
  }
}

/** The longest piece of an MCP message a transcript prints. */
const MCP_SHOWN = 4000;

/** `text`, cut to {@link MCP_SHOWN} characters with how much more there was. */
function cut(text: string): string {
  return text.length > MCP_SHOWN ? `${text.slice(0, MCP_SHOWN)}… (${text.length - MCP_SHOWN} more characters)` : text;
}

/** What the gateway did in an MCP session beside its messages. */
function mcpEventLines(e: RecordingEvent): TranscriptLine[] {
  switch (e.t) {
    case 'mcp-server-request-refused':
      return [{ at: e.at, text: `-- the server asked the agent for ${String(e.method)}: refused (mcp.serverRequests)`, denied: true }];
    case 'mcp-upstream-failed':
      return [{ at: e.at, text: `-- the MCP server could not be reached: ${String(e.message)}` }];
    case 'mcp-end':
      return [{ at: e.at, text: `-- the gateway ended the session: ${String(e.message ?? e.reason)}` }];
    default:
      return [];
  }
}
