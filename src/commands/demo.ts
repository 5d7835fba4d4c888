/**
 * `hoop demo`: starts the whole product on this machine (see src/demo/demo.ts), says how to use
 * it, and runs until Ctrl-C. `--json` says it in one JSON line; `--script` plays an agent's
 * session through it (src/demo/play-script.ts), prints the transcript and exits (0 only if every
 * outcome was as expected).
 */
import { Command, InvalidArgumentError } from 'commander';
import { dirname, resolve } from 'node:path';
import { stateDir } from '../auth/paths.js';
import { startDemo, type RunningDemo } from '../demo/demo.js';
import { playDemoScript } from '../demo/play-script.js';
import { DEMO_API_CONNECTION, DEMO_CONNECTION, DEMO_FILES_CONNECTION, DEMO_MYSQL_CONNECTION, DEMO_SSH_CONNECTION } from '../demo/sample.js';
import { DEMO_PORTS, type ChosenPorts, type DemoPortName } from '../demo/ports.js';
import { ErrorCode, HoopError } from '../errors.js';
import { whenAborted, type CliIo, type RunCli } from '../io.js';

interface DemoFlags {
  dir?: string;
  fresh?: boolean;
  json?: boolean;
  script?: boolean;
  gatewayPort?: number;
  port?: number;
  postgresPort?: number;
  idpPort?: number;
  sshPort?: number;
  mysqlPort?: number;
  gatewayMysqlPort?: number;
}

/** The flag of each port, as commander names it in {@link DemoFlags}. */
const FLAG_OF: Record<DemoPortName, keyof DemoFlags> = {
  gateway: 'gatewayPort',
  local: 'port',
  postgres: 'postgresPort',
  issuer: 'idpPort',
  sshd: 'sshPort',
  mariadb: 'mysqlPort',
  gatewayMysql: 'gatewayMysqlPort',
};

/** The ports chosen by flag, else by their environment variable. @throws HoopError USAGE naming a variable that is no port */
function chosenPorts(flags: DemoFlags, env: NodeJS.ProcessEnv): ChosenPorts {
  const chosen: ChosenPorts = {};
  for (const [name, { env: variable, flag }] of Object.entries(DEMO_PORTS) as Array<[DemoPortName, (typeof DEMO_PORTS)[DemoPortName]]>) {
    const given = flags[FLAG_OF[name]] as number | undefined;
    const value = env[variable];
    if (given !== undefined) chosen[name] = given;
    else if (value !== undefined && value !== '') {
      try {
        chosen[name] = port(value);
      } catch {
        throw new HoopError(ErrorCode.USAGE, `${variable}=${JSON.stringify(value)} is not a port number (1-65535)`, { hint: `unset it, or give ${flag}` });
      }
    }
  }
  return chosen;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number (1-65535)');
  return n;
}

/** What to do next, for a person at a terminal. */
function banner(demo: RunningDemo): string {
  const env = demo.envFile;
  return `
hoop demo is running (PostgreSQL ${demo.postgres.version} from ${demo.postgres.source === 'npm' ? 'npm' : 'this machine'}, a gateway on ${demo.gatewayUrl}, signed in as "demo").

Connect any PostgreSQL client to ${DEMO_CONNECTION} through hoop:
  ${demo.psql}

Or, in another terminal, take the demo's environment (hoop, psql and drivers then need no options):
  source ${env}
  psql

Try:
  select name, email, card_number, ssn from customers limit 5;   -- masked by the gateway
  drop table orders;                                              -- denied by a rule
  do $$ begin execute 'drop table orders'; end $$;                -- denied: hoop cannot read inside (so are new functions)
  delete from orders;                                             -- held until a reviewer decides (psql waits; Ctrl-C withdraws it)
  select count(*) from orders;                                    -- still 60

And with the CLI (after \`source ${env}\`):
  hoop whoami
  hoop connections
  hoop policy check --as analyst --group analysts --connection ${DEMO_CONNECTION} "update orders set status = 'paid'"
  hoop policy test                        # the config repo's own test cases
${
  demo.connections.includes(DEMO_SSH_CONNECTION)
    ? `
And SSH, to the demo's own sshd (the gateway alone holds its key; a command line running \`rm -rf\` is refused; an interactive shell is one decision, its lines are not judged):
  hoop connect ${DEMO_SSH_CONNECTION}                  # prints its ssh -F line; or:
  hoop run --connect ${DEMO_SSH_CONNECTION} -- sh -c 'ssh -F "$HOOP_SSH_CONFIG" ${DEMO_SSH_CONNECTION}'
  hoop sessions replay last               # plays the SSH session as the terminal showed it
`
    : `
No SSH target: OpenSSH's server is not installed (Debian, Ubuntu: sudo apt-get install openssh-server).
`
}${
  demo.connections.includes(DEMO_MYSQL_CONNECTION)
    ? `
And MySQL: the same shop on the demo's MariaDB, under the same policy:
  hoop exec ${DEMO_MYSQL_CONNECTION} -c "select name, email, card_number from customers limit 3"   # masked
  hoop exec ${DEMO_MYSQL_CONNECTION} -c "drop table orders"                                         # denied
  hoop connect ${DEMO_MYSQL_CONNECTION}                # a local port for mysql or mariadb (prints its line)
`
    : `
No MySQL target: MariaDB's server is not installed (Debian, Ubuntu: sudo apt-get install mariadb-server; then hoop demo --fresh).
`
}${
  demo.connections.includes(DEMO_FILES_CONNECTION)
    ? `
And an MCP server: the reference filesystem server over ${demo.dir}/files, its tools for agents through hoop
(reads allowed, changes held for a reviewer):
  hoop mcp config --client claude-code --write   # .mcp.json: hoop's own tools, and ${DEMO_FILES_CONNECTION}
  hoop sessions ls --tool write_file             # who changed the files, or tried to
`
    : ''
}${
  demo.connections.includes(DEMO_API_CONNECTION)
    ? `
And an HTTP API: the shop's REST API, whose token only the gateway holds (answers masked, refunds held for a reviewer):
  hoop exec ${DEMO_API_CONNECTION} GET /customers/1                          # emails, card numbers and SSNs masked
  hoop exec ${DEMO_API_CONNECTION} POST /refunds --json '{"order": 7, "amount": 12.5}'   # held until a reviewer decides
  hoop connect ${DEMO_API_CONNECTION}                  # a local port for curl or any client (prints its base URL)
`
    : ''
}
The policy is a git repository: ${demo.env.HOOP_POLICY_REPO}
  edit hoop.yaml there and commit; the gateway picks the commit up within 5 seconds.

Everything lives in ${demo.dir}${
    demo.postgres.dataDir.startsWith(`${demo.dir}/`)
      ? ''
      : `, but PostgreSQL's files: the postgres OS user cannot reach that directory, so they are in ${dirname(demo.postgres.dataDir)} (removed with --fresh, or once ${demo.dir} is gone)`
  }. Ctrl-C stops it; \`hoop demo\` again starts it as it was (--fresh starts over).
`;
}

/** Builds the `demo` command. */
export function demoCommand(io: CliIo, cli: RunCli): Command {
  return new Command('demo')
    .description('run the whole of hoop on this machine: a database, an identity provider, a gateway with a policy repo, and a connection, as the demo user')
    .option('--dir <dir>', 'where the demo keeps its state (default: $XDG_STATE_HOME/hoop/demo or ~/.local/state/hoop/demo)')
    .option('--fresh', 'wipe the directory and start over')
    .option('--json', 'print one JSON line once ready (dir, gateway, env, psql, connections), then run until stopped')
    .option('--script', 'play a scripted agent session through the demo, print the transcript, stop, and exit 0 only if every outcome was as expected')
    .option('--gateway-port <port>', "the gateway's port on 127.0.0.1 (default: $HOOP_DEMO_GATEWAY_PORT, else 8443)", port)
    .option('--port <port>', 'the local port of the demo connection (default: $HOOP_DEMO_PORT, else 6432)', port)
    .option('--postgres-port <port>', "PostgreSQL's port (default: $HOOP_DEMO_POSTGRES_PORT, else a free one, kept)", port)
    .option('--idp-port <port>', "the identity provider's port (default: $HOOP_DEMO_IDP_PORT, else a free one, kept)", port)
    .option('--ssh-port <port>', "the SSH target's port (default: $HOOP_DEMO_SSH_PORT, else a free one, kept)", port)
    .option('--mysql-port <port>', "MariaDB's port (default: $HOOP_DEMO_MYSQL_PORT, else a free one, kept)", port)
    .option('--gateway-mysql-port <port>', "the gateway's MySQL port, for hoop connect demo-mysql --direct (default: $HOOP_DEMO_GATEWAY_MYSQL_PORT, else a free one)", port)
    .action(async (flags: DemoFlags) => {
      const say = (line: string): void => void io.stderr.write(`hoop demo: ${line}\n`);
      const dir = resolve(io.cwd, flags.dir ?? `${stateDir(io.env)}/demo`);
      const demo = await startDemo({ dir, fresh: flags.fresh === true, ports: chosenPorts(flags, io.env), env: io.env, say, cli });
      try {
        if (flags.script) {
          const { transcript, ok } = await playDemoScript(demo);
          io.stdout.write(`${transcript.join('\n')}\n`);
          if (!ok)
            throw new HoopError(ErrorCode.INTERNAL, 'the scripted session did not go as the demo policy says it should (see FAIL above)', {
              hint: `the gateway's log is in ${demo.dir}/gateway.log`,
              exitCode: 1,
            });
          return;
        }
        if (flags.json) {
          io.stdout.write(
            `${JSON.stringify({
              dir: demo.dir,
              gateway: demo.gatewayUrl,
              envFile: demo.envFile,
              env: demo.env,
              psql: demo.psql,
              connections: demo.connections,
              connection: demo.connection,
              postgres: demo.postgres,
            })}\n`,
          );
        } else io.stdout.write(banner(demo));
        const orphaned = io.whenOrphaned?.().then(() => say('the process that started the demo is gone'));
        await Promise.race([whenAborted(io.signal), ...(orphaned ? [orphaned] : [])]);
        say('stopping');
      } finally {
        await demo.stop();
      }
    });
}
