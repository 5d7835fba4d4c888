/**
 * A small PostgreSQL client for the demo, over the protocol code hoop already has: connect
 * (SCRAM-SHA-256, TLS as libpq's sslmode) with {@link connectUpstreamPostgres}, then simple
 * queries with {@link roundTrip}. Used to play the scripted agent through `hoop connect`'s
 * local port.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
 */
import { connectUpstreamPostgres, type UpstreamPostgresOptions } from '../postgres/gateway/upstream.js';
import { query, terminate } from '../postgres/wire/messages.js';
import { roundTrip, type RoundTrip } from '../postgres/wire/client.js';

/** How long one statement may take. */
const STATEMENT_TIMEOUT_MS = 30_000;

/** An open session. */
export interface SqlSession {
  /** Runs `sql` (a simple Query: several statements allowed) and resolves what the server answered, errors included. */
  run(sql: string): Promise<RoundTrip>;
  close(): void;
}

/** Opens a session (`tls` as libpq's sslmode; `ca` for verify-full). */
export async function openSqlSession(target: Omit<UpstreamPostgresOptions, 'params'>): Promise<SqlSession> {
  const connection = await connectUpstreamPostgres({ ...target, params: [['application_name', 'hoop demo']] });
  let chain: Promise<unknown> = Promise.resolve();
  return {
    run(sql) {
      const next = chain.then(() => roundTrip(connection, query(sql), STATEMENT_TIMEOUT_MS));
      chain = next.catch(() => undefined);
      return next;
    },
    close() {
      if (!connection.socket.destroyed) connection.socket.end(terminate());
    },
  };
}
