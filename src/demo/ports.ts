/**
 * The demo's seven ports: the gateway's and `hoop connect`'s (fixed: 8443 and 6432 unless chosen),
 * the gateway's MySQL port (any free one on each start, unless chosen; `hoop connect --direct`
 * prints it), and its targets' and identity provider's (any free port on a first start, then kept,
 * unless chosen). A chosen port is checked before anything starts; a target's kept port is named by the
 * policy repo, so choosing another one for it takes a fresh start.
 */
import { createServer, type AddressInfo } from 'node:net';
import { ErrorCode, HoopError } from '../errors.js';

/** The ports a user may choose, each with its flag and what listens there. */
export const DEMO_PORTS = {
  gateway: { flag: '--gateway-port', env: 'HOOP_DEMO_GATEWAY_PORT', what: 'gateway' },
  local: { flag: '--port', env: 'HOOP_DEMO_PORT', what: 'local port' },
  postgres: { flag: '--postgres-port', env: 'HOOP_DEMO_POSTGRES_PORT', what: 'PostgreSQL' },
  issuer: { flag: '--idp-port', env: 'HOOP_DEMO_IDP_PORT', what: 'identity provider' },
  sshd: { flag: '--ssh-port', env: 'HOOP_DEMO_SSH_PORT', what: 'sshd' },
  mariadb: { flag: '--mysql-port', env: 'HOOP_DEMO_MYSQL_PORT', what: 'MariaDB' },
  gatewayMysql: { flag: '--gateway-mysql-port', env: 'HOOP_DEMO_GATEWAY_MYSQL_PORT', what: "gateway's MySQL port" },
} as const;

/** A name of {@link DEMO_PORTS}. */
export type DemoPortName = keyof typeof DEMO_PORTS;

/** The ports the user chose (the others are the defaults or kept). */
export type ChosenPorts = Partial<Record<DemoPortName, number>>;

/** The ports kept in state.json between starts. */
export interface KeptPorts {
  postgresPort: number;
  issuerPort?: number;
  sshdPort?: number;
  mariadbPort?: number;
  /** The demo's REST API (any free port on a first start, then kept: the policy repo names it). */
  apiPort?: number;
}

/** Listens on 127.0.0.1:`port` (0: any) for a moment: the port it got, or undefined when that port is in use. */
export function tryPort(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(undefined) : reject(err)));
    s.listen(port, '127.0.0.1', () => {
      const got = (s.address() as AddressInfo).port;
      s.close(() => resolve(got));
    });
  });
}

/** A free TCP port on 127.0.0.1, other than `besides`. */
export async function freePort(besides: readonly (number | undefined)[] = []): Promise<number> {
  for (;;) {
    const port = (await tryPort(0))!;
    if (!besides.includes(port)) return port;
  }
}

/** The error of a port in use, naming the flag that picks another. */
export function portHint(name: DemoPortName, port: number): HoopError {
  const { what, flag } = DEMO_PORTS[name];
  return new HoopError(ErrorCode.LISTEN_FAILED, `port ${port} on 127.0.0.1 is in use, so the demo's ${what} cannot listen there`, {
    hint: `stop what uses it, or pick another port with ${flag}`,
  });
}

/** Checks that each chosen port is free and no two are the same, before anything starts. @throws HoopError naming the flag */
export async function checkChosenPorts(chosen: ChosenPorts): Promise<void> {
  const seen = new Map<number, DemoPortName>();
  for (const [name, port] of Object.entries(chosen) as Array<[DemoPortName, number]>) {
    const other = seen.get(port);
    if (other) throw new HoopError(ErrorCode.USAGE, `${DEMO_PORTS[other].flag} and ${DEMO_PORTS[name].flag} both say ${port}`, { hint: 'give each a port of its own' });
    seen.set(port, name);
    if ((await tryPort(port)) === undefined) throw portHint(name, port);
  }
}

/**
 * The target ports of this start: the chosen ones on a first start, else the kept ones (a chosen
 * port that differs from a kept one is refused), any free port for the rest.
 * @throws HoopError USAGE when a kept target port would change
 */
export async function targetPorts(kept: KeptPorts | undefined, chosen: ChosenPorts, dir: string): Promise<KeptPorts> {
  const targets = [
    ['postgres', 'postgresPort'],
    ['sshd', 'sshdPort'],
    ['mariadb', 'mariadbPort'],
  ] as const;
  for (const [name, key] of targets) {
    const was = kept?.[key];
    const want = chosen[name];
    if (was !== undefined && want !== undefined && want !== was)
      throw new HoopError(ErrorCode.USAGE, `the demo in ${dir} keeps its ${DEMO_PORTS[name].what} on port ${was} (its policy repo names it), not ${want}`, {
        hint: `start over with --fresh ${DEMO_PORTS[name].flag} ${want}, or leave ${DEMO_PORTS[name].flag} out`,
      });
  }
  const taken = Object.values(chosen);
  const pick = async (name: 'postgres' | 'sshd' | 'mariadb', was: number | undefined): Promise<number> => {
    const port = chosen[name] ?? was ?? (await freePort(taken));
    taken.push(port);
    return port;
  };
  const postgresPort = await pick('postgres', kept?.postgresPort);
  const sshdPort = await pick('sshd', kept?.sshdPort);
  const mariadbPort = await pick('mariadb', kept?.mariadbPort);
  const issuerPort = chosen.issuer ?? kept?.issuerPort;
  const apiPort = kept?.apiPort ?? (await freePort(taken));
  return { postgresPort, sshdPort, mariadbPort, apiPort, ...(issuerPort !== undefined ? { issuerPort } : {}) };
}
