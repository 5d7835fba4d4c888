/**
 * What `hoop connect --json` prints: one line a script (or the demo) reads to reach the local port
 * (a PostgreSQL, MySQL or SSH connection's).
 */

/** The one line `hoop connect --json` prints. */
export interface ConnectJson {
  connection: string;
  host: string;
  port: number;
  user: string;
  database: string;
  /** The local port's password for this run (also in `pgpassFile`). */
  password: string;
  pgpassFile: string;
  /** `verify-full` and the certificate of the local port's TLS (absent on a unix socket). */
  sslmode?: string;
  sslrootcert?: string;
  uri: string;
}

/** The one line `hoop connect --json` prints for an SSH connection. */
export interface ConnectSshJson {
  connection: string;
  host: string;
  port: number;
  /** `ssh -F <sshConfig> <connection>`. */
  sshConfig: string;
  /** The user's ssh_config that includes every running connection's, at a path that stays put: `Include` it from ~/.ssh/config once. */
  sshInclude?: string;
  knownHosts: string;
  identityFile: string;
  command: string;
}

/** The one line `hoop connect --json` prints for a MySQL connection. */
export interface ConnectMysqlJson {
  connection: string;
  host: string;
  port: number;
  user: string;
  database: string;
  /** The local port's password for this run (also in `optionFile`). */
  password: string;
  /** An option file for `mysql --defaults-extra-file=`: user, password, host, port, the certificate. */
  optionFile: string;
  /** The certificate of the local port's TLS. */
  sslCa: string;
  uri: string;
}

/** The one line `hoop connect --json` prints for an HTTP connection. */
export interface ConnectHttpJson {
  connection: string;
  host: string;
  port: number;
  /** The base URL: every request's path goes under it (it holds the port's per-run path, which other local processes lack). */
  url: string;
}
