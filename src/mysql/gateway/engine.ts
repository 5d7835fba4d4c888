/**
 * The gateway side of MySQL and MariaDB sessions: the tunnel carries the MySQL protocol from
 * `hoop connect`'s local port (which signed its client in with the per-session password); the
 * gateway greets it in the server's name, signs in with the credential only it holds, and relays
 * each command (./session-relay.ts), recording every packet as it crossed
 * (src/mysql/pipeline/records.ts).
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html
 * @see https://github.com/gravitational/teleport/tree/master/lib/srv/db/mysql (a MySQL proxy that signs in for its clients)
 */
import type { MysqlConnection } from '../../config/connection.js';
import type { Engine, SessionOutcome, TunnelSession } from '../../session/engine.js';
import type { Greeting } from '../wire/handshake.js';
import type { SignedInAtPort } from './capabilities.js';
import { MysqlClientIds } from './client-ids.js';
import { MysqlRelationsByConnection } from './relations.js';
import { type MysqlEngineOptions, MysqlSessionRelay } from './session-relay.js';

export type { MysqlEngineOptions } from './session-relay.js';

/** The gateway side of MySQL sessions; see the module documentation. */
export class MysqlEngine implements Engine<MysqlConnection> {
  readonly recordProtocol = 'mysql';
  readonly #o: MysqlEngineOptions;

  /** The greeting of the server reached last: the gateway's MySQL port greets its clients in its name. */
  lastGreeting: Greeting | undefined;

  constructor(o: MysqlEngineOptions) {
    this.#o = {
      clientIds: new MysqlClientIds(),
      relations: new MysqlRelationsByConnection(),
      ...o,
      greeted: (g) => {
        this.lastGreeting = g;
        o.greeted?.(g);
      },
    };
  }

  serve(session: TunnelSession<MysqlConnection>): Promise<SessionOutcome> {
    return new MysqlSessionRelay(session, this.#o).start();
  }

  /** Serves a client that signed in at the gateway's MySQL port (./direct-front.ts): it answered that port's greeting already. */
  serveSignedIn(session: TunnelSession<MysqlConnection>, answered: SignedInAtPort): Promise<SessionOutcome> {
    return new MysqlSessionRelay(session, this.#o, answered).start();
  }
}
