/**
 * `hoop connect <name>`: a local PostgreSQL port that forwards every client through its own
 * authenticated, audited tunnel to the gateway. Prints how to connect (a psql command, a URI and
 * a PGPASSFILE holding the per-session password) and runs until interrupted.
 *
 * With a policy bundle (`--policy-dir DIR`, or `--policy-repo` / `$HOOP_POLICY_REPO` pulled as
 * `hoop policy pull` does), statements are judged on this machine first, by the same gate the
 * gateway runs: a refused statement never leaves it. The gateway still decides; when the commit
 * its tunnel announces differs from the CLI's, the CLI pulls once (repo) or says so once.
 *
 * @see /work/shared/ARCHITECTURE.md ("Who decides what")
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { Command, Option } from 'commander';
import { isInteractive } from '../auth/login.js';
import { clientTokenProvider } from '../client-config.js';
import { ErrorCode, HoopError } from '../errors.js';
import { whenAborted, type CliIo } from '../io.js';
import { createLogger, levelFromEnv } from '../log.js';
import { getConnection, getWhoAmI } from '../auth/gateway-client.js';
import { configDir } from '../auth/paths.js';
import { loadStatementGate, StatementGate } from '../gateway/postgres-statements.js';
import { accessFor } from '../policy/access.js';
import { StatementJudge } from '../policy/decide.js';
import { loadPolicyDir } from '../policy/load.js';
import { PolicyRepo, cliPolicyWorkDir, looksLikeGitUrl } from '../policy/repo.js';
import type { Policy } from '../policy/schema.js';
import { loadSqlParser } from '../policy/sql/analyze.js';
import type { Logger } from '../log.js';
import { LocalPostgresListener, type ListenerEvent } from '../tunnel/postgres/local-listener.js';
import { removePgpass, writePgpass } from '../tunnel/postgres/pgpass.js';
import { makeScramSecret } from '../tunnel/postgres/scram.js';
import { TunnelTokenRenewal } from '../tunnel/token-renewal.js';
import { openTunnel } from '../tunnel/transport.js';
import { VERSION } from '../version.js';

interface ConnectOptions {
  port?: number;
  socket?: string;
  gateway?: string;
  tokenFile?: string;
  caFile?: string;
  json?: boolean;
  policyDir?: string;
  policyRepo?: string;
  policyRef?: string;
  policyAllowedSigners?: string;
}

/** The commit of a clean git work tree at `dir` (undefined when it is not one, or has changes). */
async function cleanCommit(dir: string): Promise<string | undefined> {
  const run = promisify(execFile);
  try {
    const opts = { cwd: dir, timeout: 10_000, env: { PATH: process.env.PATH ?? '' } };
    const [{ stdout: head }, { stdout: status }] = await Promise.all([run('git', ['rev-parse', 'HEAD'], opts), run('git', ['status', '--porcelain'], opts)]);
    return status.trim() === '' ? head.trim() : undefined;
  } catch {
    return undefined;
  }
}

/** The CLI's policy bundle for early checks, and where it came from. */
interface LocalPolicy {
  policy: Policy;
  /** The bundle's commit; undefined for a working tree with changes. */
  commit: string | undefined;
  /** Set when the bundle was pulled from a config repo (it can be pulled again). */
  repo?: PolicyRepo;
  source: string;
}

async function loadLocalPolicy(io: CliIo, opts: ConnectOptions, log: Logger): Promise<LocalPolicy | undefined> {
  if (opts.policyDir !== undefined && opts.policyRepo !== undefined) throw new HoopError(ErrorCode.USAGE, 'give --policy-dir or --policy-repo, not both');
  if (opts.policyDir !== undefined) {
    const dir = resolve(io.cwd, opts.policyDir);
    const policy = await loadPolicyDir(dir);
    return { policy, commit: policy.commit ?? (await cleanCommit(dir)), source: dir };
  }
  const repo = opts.policyRepo ?? io.env.HOOP_POLICY_REPO?.trim();
  if (!repo) return undefined;
  const isUrl = looksLikeGitUrl(repo);
  const remote = isUrl ? repo : resolve(io.cwd, repo);
  const signers = opts.policyAllowedSigners ?? io.env.HOOP_POLICY_ALLOWED_SIGNERS?.trim();
  const pr = await PolicyRepo.open({
    ...(isUrl ? { url: remote } : { path: remote }),
    ref: opts.policyRef ?? (io.env.HOOP_POLICY_REF?.trim() || 'main'),
    workDir: cliPolicyWorkDir(configDir(io.env, io.cwd), remote),
    ...(signers ? { allowedSignersFile: resolve(io.cwd, signers) } : {}),
    log,
    env: io.env,
    checkSecrets: false,
  });
  return { policy: pr.current(), commit: pr.commit, repo: pr, source: repo };
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new HoopError(ErrorCode.USAGE, `--port must be a number from 0 to 65535, not "${value}"`);
  return n;
}

/** Single-quotes `s` for a POSIX shell. */
function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Builds the `connect` command. */
export function connectCommand(io: CliIo): Command {
  return new Command('connect')
    .description('open a local PostgreSQL port that tunnels to a connection of the gateway')
    .argument('<name>', 'connection name, as the gateway lists it')
    .addOption(new Option('-p, --port <port>', 'local TCP port on 127.0.0.1 (default: any free port)').argParser(parsePort))
    .option('--socket <dir>', 'listen on a unix socket in this directory instead of TCP')
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current `hoop login` profile)')
    .option('--token-file <file>', 'read the bearer token from this file; it is not renewed (default: $HOOP_TOKEN, else the login)')
    .option('--ca-file <file>', 'trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile\'s)')
    .option('--json', 'print the connection details as one JSON line (including the local password) and nothing else on stdout')
    .option('--policy-dir <dir>', 'judge statements here first with the policy bundle in this checked-out config repo (the gateway still decides)')
    .option('--policy-repo <url>', 'the same with a config repo pulled as `hoop policy pull` does (default: $HOOP_POLICY_REPO)')
    .option('--policy-ref <ref>', 'branch, tag or commit of --policy-repo (default: $HOOP_POLICY_REF, else main)')
    .option('--policy-allowed-signers <file>', 'accept only policy commits signed by these SSH keys (default: $HOOP_POLICY_ALLOWED_SIGNERS)')
    .action(async (name: string, opts: ConnectOptions) => {
      const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'connect' } });
      const provider = await clientTokenProvider({
        env: io.env,
        cwd: io.cwd,
        gateway: opts.gateway,
        tokenFile: opts.tokenFile,
        caFile: opts.caFile,
        isTTY: isInteractive(io.stdin as { isTTY?: boolean } | undefined, io.env),
      });
      const gateway = provider.gateway;
      const ca = provider.ca;
      let info;
      try {
        info = await getConnection({ gateway, ca }, (await provider.current()).token, name);
      } catch (err) {
        provider.close();
        throw err;
      }
      if (info.type !== 'postgres') {
        provider.close();
        throw new HoopError(ErrorCode.USAGE, `"${name}" is a ${info.type} connection; hoop connect serves postgres connections`);
      }

      const password = randomBytes(24).toString('base64url');
      const say = (line: string): void => void io.stderr.write(`hoop: ${line}\n`);

      // Early checks: the same gate as the gateway's, on the CLI's copy of the policy.
      let local: LocalPolicy | undefined;
      let makeJudge: (() => StatementJudge | undefined) | undefined;
      let commitChecked = false;
      try {
        local = await loadLocalPolicy(io, opts, log);
        if (local) {
          await Promise.all([loadSqlParser(), loadStatementGate()]);
          const me = await getWhoAmI({ gateway, ca }, (await provider.current()).token);
          const who = { subject: me.subject, groups: me.groups, ...(me.email !== undefined ? { email: me.email.toLowerCase() } : {}) };
          makeJudge = () => {
            const grant = accessFor(local!.policy, who, name);
            return grant ? new StatementJudge(local!.policy, who, name, grant.mode) : undefined;
          };
          if (!makeJudge()) say(`the policy of ${local.source} grants ${me.subject} no access to "${name}"; statements are judged by the gateway only`);
        }
      } catch (err) {
        provider.close();
        throw err;
      }
      /** Once, on the first tunnel: align with the gateway's commit, or say that early checks use another. */
      const checkCommit = async (gatewayCommit: string | undefined): Promise<void> => {
        if (!local || commitChecked || gatewayCommit === local.commit) return;
        commitChecked = true;
        if (local.repo && gatewayCommit !== undefined) {
          const result = await local.repo.refresh().catch(() => undefined);
          if (result && local.repo.commit === gatewayCommit) {
            local.policy = local.repo.current();
            local.commit = local.repo.commit;
            return;
          }
        }
        const ours = local.commit ? `commit ${local.commit}` : `the working tree of ${local.source}`;
        const theirs = gatewayCommit ? `commit ${gatewayCommit}` : 'no policy commit';
        say(`early statement checks use ${ours} while the gateway uses ${theirs}; the gateway still decides`);
      };

      const renewal = new TunnelTokenRenewal(provider, log, say);
      const onEvent = (e: ListenerEvent): void => {
        if (e.kind === 'tunnel-failed') say(`${e.error.message}${e.error.hint ? ` (${e.error.hint})` : ''}`);
        else if (e.kind === 'auth-failed') say('a local client gave the wrong password and was refused');
        else if (e.kind === 'protocol-error') say(`a local client broke the protocol and was disconnected: ${e.message}`);
        else if (e.kind === 'client-closed' && e.message) say(`session ${e.session} closed: ${e.message}`);
        else if (e.kind === 'client-connected') log.info('client.connected', { session: e.session, user: e.user, database: e.database });
      };
      const listener = new LocalPostgresListener({
        secret: makeScramSecret(password),
        ...(opts.port !== undefined ? { port: opts.port } : {}),
        ...(opts.socket ? { socketDir: opts.socket, socketPort: opts.port || 5432 } : {}),
        log,
        onEvent,
        openTunnel: async (sessionId) => {
          const { token } = await provider.current();
          const opened = await openTunnel({ gateway, connection: name, token, sessionId, clientVersion: VERSION, ...(ca ? { ca } : {}) });
          renewal.track(opened.channel, token);
          if (local && !commitChecked) await checkCommit(opened.policyCommit);
          return opened;
        },
        ...(makeJudge
          ? {
              statementGate: (session: string) => {
                const judge = makeJudge!();
                return judge
                  ? new StatementGate(judge, { onRefusal: (r) => log.info('statement.refused', { session, rule: r.rule, action: r.action, message: r.message }) })
                  : undefined;
              },
            }
          : {}),
      });
      const stopProvider = (): void => {
        renewal.close();
        provider.close();
      };
      let address;
      try {
        address = await listener.listen();
      } catch (err) {
        stopProvider();
        throw err;
      }
      const pgpassFile = await writePgpass({ env: io.env, name, host: address.socketPath ? '*' : address.host, port: address.port, password });
      try {
        const user = 'hoop';
        const host = address.host;
        const uri = `postgresql://${user}@${address.socketPath ? `/${encodeURIComponent(info.database)}?host=${encodeURIComponent(host)}&port=${address.port}` : `${host}:${address.port}/${encodeURIComponent(info.database)}?sslmode=disable`}`;
        if (opts.json) {
          io.stdout.write(`${JSON.stringify({ connection: name, host, port: address.port, user, database: info.database, password, pgpassFile, uri })}\n`);
        } else {
          const conninfo = `host=${host} port=${address.port} user=${user} dbname=${info.database}${address.socketPath ? '' : ' sslmode=disable'}`;
          io.stdout.write(
            [
              `Connected to "${name}" through ${gateway}.`,
              `Listening on ${address.socketPath ?? `${host}:${address.port}`}; the password is in ${pgpassFile}.`,
              '',
              'Connect with:',
              `  PGPASSFILE=${shellQuote(pgpassFile)} psql ${shellQuote(conninfo)}`,
              '',
              `or export PGPASSFILE=${shellQuote(pgpassFile)} and use ${uri}`,
              'Press Ctrl-C to stop.',
              '',
            ].join('\n'),
          );
        }
        await whenAborted(io.signal);
      } finally {
        stopProvider();
        await listener.close();
        await removePgpass(pgpassFile);
      }
    });
}
