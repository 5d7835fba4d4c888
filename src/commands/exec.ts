/**
 * `hoop exec <connection> (-c SQL | -f FILE | stdin) [--json | --csv]`: statements through the
 * gateway, under its policy and recording, without a local port: one tunnel, one session, the
 * results printed as psql prints them (an aligned table, `--csv` as `psql --csv`, or `--json`: one
 * JSON object per row). Results stream: a table is laid out from its first 1000 rows, and every
 * row after them is printed as it comes, so a result of any size runs in bounded memory, and a slow
 * reader of the output holds the rows back at the gateway (../ui/result-printer.ts). What it does
 * is src/client/exec-statements.ts.
 *
 * On an http connection it makes one request as curl does: `hoop exec api GET /orders -H 'Accept:
 * text/csv'`, `hoop exec api POST /refunds --json '{"order": 7}'` (src/client/exec-http.ts): the
 * answer's body on stdout; exit 0 for 2xx and 3xx, 1 for the API's error, 3 and 4 as for SQL.
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
import { Command, Option } from 'commander';
import { treePlaces } from '../agent/sandbox.js';
import { execHttp } from '../client/exec-http.js';
import { execStatements } from '../client/exec-statements.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { readNamedFile } from '../tree-file.js';
import type { ResultFormat } from '../ui/result-printer.js';

interface ExecOptions {
  command?: string[];
  file?: string;
  /** True (rows as JSON), or an HTTP request's JSON body. */
  json?: boolean | string;
  header?: string[];
  data?: string;
  include?: boolean;
  csv?: boolean;
  gateway?: string;
  tokenFile?: string;
  caFile?: string;
  /** False with `--no-wait`. */
  wait: boolean;
}

/** Builds the `exec` command. */
export function execCommand(io: CliIo): Command {
  return new Command('exec')
    .description(
      'run SQL through the gateway (its policy, masking and recording) and print the results as psql does, or make one request on an http connection (METHOD PATH); exit 0 ok, 1 SQL or API error, 3 refused, 4 needs approval',
    )
    .argument('<connection>', 'connection name, as `hoop connections` lists it')
    .argument('[request...]', 'an http connection: METHOD PATH, as curl takes them (GET /orders?status=open)')
    .addOption(new Option('-c, --command <sql>', 'run these statements (repeat for several, each its own query)').argParser((v: string, all: string[] = []) => [...all, v]))
    .option('-f, --file <file>', 'run the statements in this file')
    .addOption(new Option('--json [data]', 'print each row as one JSON object per line; on an http connection, send DATA as a JSON body').conflicts('csv'))
    .addOption(new Option('-H, --header <field>', 'http: add a field, "Name: value" (repeat for several)').argParser((v: string, all: string[] = []) => [...all, v]))
    .option('-d, --data <data>', 'http: send this body')
    .option('-i, --include', "http: print the answer's status line and fields before its body")
    .option('--csv', 'print CSV as psql --csv does (a header line per result)')
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current `hoop login` profile)')
    .option('--token-file <file>', 'read the bearer token from this file (default: $HOOP_TOKEN, else the login)')
    .option('--ca-file <file>', "trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile's)")
    .option('--no-wait', 'a statement held for review: print the review id and exit 4 instead of waiting; send it again once approved')
    .action(async (name: string, request: string[], opts: ExecOptions) => {
      if (request.length > 0) {
        if (request.length !== 2) throw new HoopError(ErrorCode.USAGE, 'give the request as METHOD PATH', { hint: `hoop exec ${name} GET /path` });
        if (opts.command?.length || opts.file !== undefined || opts.csv) throw new HoopError(ErrorCode.USAGE, '-c, -f and --csv are for SQL; METHOD PATH is an http request');
        const [method, path] = request as [string, string];
        return execHttp(
          io,
          name,
          {
            method,
            path,
            headers: opts.header ?? [],
            ...(opts.data !== undefined ? { data: opts.data } : {}),
            ...(typeof opts.json === 'string' ? { json: opts.json } : {}),
            ...(opts.include ? { include: true } : {}),
          },
          opts,
        );
      }
      if (opts.header?.length || opts.data !== undefined || opts.include || typeof opts.json === 'string')
        throw new HoopError(ErrorCode.USAGE, '-H, -d, -i and --json DATA go with an http request', { hint: `hoop exec ${name} POST /path --json '{"a": 1}'` });
      if (opts.command?.length && opts.file !== undefined) throw new HoopError(ErrorCode.USAGE, 'give -c SQL or -f FILE, not both');
      let statements: string[];
      if (opts.command?.length) statements = opts.command;
      else if (opts.file !== undefined) statements = [await readNamedFile(opts.file, treePlaces(io.env, io.cwd))];
      else statements = io.stdin && !(io.stdin as { isTTY?: boolean }).isTTY ? [await text(io.stdin)] : [];
      if (statements.every((sql) => sql.trim() === '')) throw new HoopError(ErrorCode.USAGE, 'no statements: give -c SQL, -f FILE, or pipe them in', { hint: `hoop exec ${name} -c 'select 1'` });
      const format: ResultFormat = opts.json ? 'json' : opts.csv ? 'csv' : 'table';
      await execStatements(io, name, statements, format, opts);
    });
}
