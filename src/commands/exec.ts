/**
 * `hoop exec <connection> (-c SQL | -f FILE | stdin) [--json | --csv]`: statements through the
 * gateway, under its policy and recording, without a local port: one tunnel, one session, the
 * results printed as psql prints them (an aligned table, `--csv` as `psql --csv`, or `--json`: one
 * JSON object per row). Results stream: a table is laid out from its first
 * {@link TABLE_LAYOUT_ROWS} rows, and every row after them is printed as it comes, so a result of
 * any size runs in bounded memory, and a slow reader of the output holds the rows back at the
 * gateway.
 *
 * Exit codes (stable, for scripts and agents): 0 every statement ran; 1 the database reported an
 * error; 3 the policy (or a reviewer) refused a statement; 4 a statement needs a reviewer's
 * approval (not decided in time, or `--no-wait`: its review id is printed on stdout); and hoop's
 * own codes for the rest (64 usage, 69 gateway unreachable, 77 not signed in or not allowed).
 *
 * A statement held for review makes exec wait, saying where the review stands. With `--no-wait`
 * it exits at once; the review stays open at the gateway, and once it is approved the same
 * statement, sent again by the same identity, runs once.
 *
 * @see https://www.postgresql.org/docs/current/app-psql.html
 */
import { text } from 'node:stream/consumers';
import type { Writable } from 'node:stream';
import { Command, Option } from 'commander';
import { commandTokenProvider } from '../client/client-config.js';
import { CommandRecords } from '../client/client-records.js';
import { CommandExit, ErrorCode, HoopError } from '../errors.js';
import { readNamedFile } from '../tree-file.js';
import { treePlaces } from '../agent/sandbox.js';
import type { CliIo } from '../io.js';
import { createLogger, levelFromEnv } from '../log.js';
import type { PgErrorFields } from '../postgres/wire/messages.js';
import { jsonValue } from '../postgres/wire/json-values.js';
import { columnWidths, csvField, NUMERIC_TYPES, rowCount, serverMessageLines, tableHeader, tableRow } from '../ui/psql-format.js';
import type { RowDescriptionField } from '../postgres/wire/rows.js';
import type { ResultHandler } from '../postgres/wire/client.js';
import { openGatewaySql, refusalOf } from '../client/gateway-sql.js';
import { reviewStatusLine } from '../ui/review-lines.js';

/** `hoop exec`'s exit codes beyond hoop's own (see the module documentation). */
export const ExecExit = {
  /** The database reported an error. */
  STATEMENT_FAILED: 1,
  /** The policy refused a statement. */
  REFUSED: 3,
  /** A statement needs a reviewer's approval. */
  REVIEW: 4,
} as const;

/** Rows a table is laid out from; later rows keep those widths (psql's FETCH_COUNT does the same). */
export const TABLE_LAYOUT_ROWS = 1000;

type Format = 'table' | 'csv' | 'json';

interface ExecOptions {
  command?: string[];
  file?: string;
  json?: boolean;
  csv?: boolean;
  gateway?: string;
  tokenFile?: string;
  caFile?: string;
  /** False with `--no-wait`. */
  wait: boolean;
}

/** The reader of the output went away (`hoop exec … | head`): exit as a Unix tool killed by SIGPIPE does, 128 + 13. */
const OUTPUT_CLOSED = 141;

/** Prints results in `format` to `out` (see the module documentation). */
class ResultPrinter implements ResultHandler {
  readonly #out: Writable;
  readonly #err: Writable;
  readonly #format: Format;
  /** Why the output can take no more (a closed pipe), and the write waiting for it to drain. */
  #broken: Error | undefined;
  #waiting: (() => void) | undefined;
  readonly #onError = (err: Error): void => {
    this.#broken = err;
    this.#waiting?.();
  };
  #fields: RowDescriptionField[] = [];
  /** The table's first rows, held to lay it out; undefined once laid out. */
  #held: Array<Array<string | null>> | undefined;
  #widths: number[] = [];
  #right: boolean[] = [];
  #rows = 0;
  /** The statement being printed returns rows (it sent a RowDescription, even of no columns). */
  #result = false;

  constructor(out: Writable, err: Writable, format: Format) {
    this.#out = out;
    this.#err = err;
    this.#format = format;
    // Kept to the end of the process: a closed pipe is reported after the writes that found it.
    out.on('error', this.#onError);
  }

  /** Writes `s`; a Promise while the output is full, so reading waits (back-pressure reaches the gateway). */
  #write(s: string): Promise<void> | undefined {
    this.#check();
    if (this.#out.write(s)) return undefined;
    return new Promise<void>((resolve) => {
      this.#waiting = resolve;
      this.#out.once('drain', resolve);
    }).then(() => {
      this.#waiting = undefined;
      this.#check();
    });
  }

  #check(): void {
    if (!this.#broken) return;
    if ((this.#broken as NodeJS.ErrnoException).code === 'EPIPE') throw new CommandExit(OUTPUT_CLOSED);
    throw new HoopError(ErrorCode.INTERNAL, `cannot write the results: ${this.#broken.message}`, { hint: 'check where the output goes (a full disk, a closed terminal)', exitCode: 74 });
  }

  columns(fields: RowDescriptionField[]): Promise<void> | undefined {
    this.#fields = fields;
    this.#rows = 0;
    this.#result = true;
    if (this.#format === 'table') {
      this.#held = [];
      this.#right = fields.map((f) => NUMERIC_TYPES.has(f.typeOid));
      return undefined;
    }
    if (this.#format === 'csv') return this.#write(`${fields.map((f) => csvField(f.name)).join(',')}\n`);
    return undefined;
  }

  row(values: Array<string | null>): Promise<void> | undefined {
    this.#rows++;
    switch (this.#format) {
      case 'table':
        if (this.#held) {
          this.#held.push(values);
          return this.#held.length >= TABLE_LAYOUT_ROWS ? this.#layOut() : undefined;
        }
        return this.#write(
          tableRow(values, this.#widths, this.#right)
            .map((l) => `${l}\n`)
            .join(''),
        );
      case 'csv':
        return this.#write(`${values.map(csvField).join(',')}\n`);
      case 'json':
        return this.#write(`${JSON.stringify(Object.fromEntries(values.map((v, i) => [this.#fields[i]?.name ?? `?column${i}?`, jsonValue(v, this.#fields[i]?.typeOid ?? 0)])))}\n`);
    }
  }

  async complete(tag: string): Promise<void> {
    if (this.#format !== 'table') return;
    if (this.#held) await this.#layOut();
    // psql prints a result's rows and count, and the tag of a statement that returns none.
    if (this.#result) await this.#write(`${rowCount(this.#rows)}\n\n`);
    else await this.#write(`${tag}\n`);
    this.#result = false;
    this.#fields = [];
    this.#widths = [];
  }

  notice(fields: PgErrorFields): void {
    this.#err.write(`${serverMessageLines(fields).join('\n')}\n`);
  }

  /** Prints the held rows under a header laid out from them. */
  #layOut(): Promise<void> | undefined {
    const rows = this.#held!;
    this.#held = undefined;
    const names = this.#fields.map((f) => f.name);
    this.#widths = columnWidths(names, rows);
    return this.#write(`${[...tableHeader(names, this.#widths), ...rows.flatMap((r) => tableRow(r, this.#widths, this.#right))].join('\n')}\n`);
  }
}

/** The exit code for the error that stopped the statements. */
function exitFor(f: PgErrorFields): number {
  const refusal = refusalOf(f);
  return refusal === 'denied' ? ExecExit.REFUSED : refusal === 'review' ? ExecExit.REVIEW : ExecExit.STATEMENT_FAILED;
}

/** Builds the `exec` command. */
export function execCommand(io: CliIo): Command {
  return new Command('exec')
    .description('run SQL through the gateway (its policy, masking and recording) and print the results as psql does; exit 0 ok, 1 SQL error, 3 refused, 4 needs approval')
    .argument('<connection>', 'connection name, as `hoop connections` lists it')
    .addOption(new Option('-c, --command <sql>', 'run these statements (repeat for several, each its own query)').argParser((v: string, all: string[] = []) => [...all, v]))
    .option('-f, --file <file>', 'run the statements in this file')
    .addOption(new Option('--json', 'print each row as one JSON object per line').conflicts('csv'))
    .option('--csv', 'print CSV as psql --csv does (a header line per result)')
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current `hoop login` profile)')
    .option('--token-file <file>', 'read the bearer token from this file (default: $HOOP_TOKEN, else the login)')
    .option('--ca-file <file>', "trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile's)")
    .option('--no-wait', 'a statement held for review: print the review id and exit 4 instead of waiting; send it again once approved')
    .action(async (name: string, opts: ExecOptions) => {
      if (opts.command?.length && opts.file !== undefined) throw new HoopError(ErrorCode.USAGE, 'give -c SQL or -f FILE, not both');
      let statements: string[];
      if (opts.command?.length) statements = opts.command;
      else if (opts.file !== undefined) statements = [await readNamedFile(opts.file, treePlaces(io.env, io.cwd))];
      else statements = io.stdin && !(io.stdin as { isTTY?: boolean }).isTTY ? [await text(io.stdin)] : [];
      if (statements.every((sql) => sql.trim() === '')) throw new HoopError(ErrorCode.USAGE, 'no statements: give -c SQL, -f FILE, or pipe them in', { hint: `hoop exec ${name} -c 'select 1'` });
      const format: Format = opts.json ? 'json' : opts.csv ? 'csv' : 'table';

      const provider = await commandTokenProvider(io, opts);
      const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'exec' } });
      const say = (line: string): void => void io.stderr.write(`hoop: ${line}\n`);
      // Its own record of the session, and what an earlier hoop (one killed, say) left in this machine's spool, go up as it ends.
      const records = new CommandRecords(io, provider, log);
      records.resume();
      try {
        // A statement held for review: exec waits, saying where its review stands (or, with --no-wait, leaves it to the reviewers).
        const sql = await openGatewaySql({ provider, name, application: 'hoop exec', log, say, records, onReview: (r) => say(reviewStatusLine(r)), ...(opts.wait ? {} : { detachReviews: true }) });
        try {
          const printer = new ResultPrinter(io.stdout, io.stderr, format);
          for (const statement of statements) {
            const failure = await sql.run(statement, printer);
            if (failure && 'held' in failure) {
              const id = failure.held.id;
              io.stdout.write(`${id}\n`);
              say(`${reviewStatusLine(failure.held)}. It did not run: once it is approved (\`hoop review show ${id} --wait\`), send the same statement again, and the approval lets it run once`);
              throw new CommandExit(ExecExit.REVIEW);
            }
            if (failure) {
              io.stderr.write(`${serverMessageLines(failure).join('\n')}\n`);
              throw new CommandExit(exitFor(failure));
            }
          }
        } finally {
          sql.close();
        }
      } finally {
        await records.finish(say);
        provider.close();
      }
    });
}
