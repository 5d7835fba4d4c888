/**
 * What `hoop connect --json` prints: one line a script (or the demo) reads to reach the local port.
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
