/**
 * The gateway's MySQL port (`mysqlListen`), where MySQL clients sign in with direct credentials
 * (../../mysql/gateway/direct-front.ts): a MySQL server speaks first, so these clients cannot share
 * the main port, whose routing waits for the client's first bytes (./front-door.ts). Each
 * connection is guarded as the main port's (its deadline, its source address's count), and one
 * from a listed load balancer must begin with a PROXY protocol v2 header (./balancers.ts).
 *
 * @see https://goteleport.com/docs/reference/config/ (Teleport's proxy has a MySQL listener of its own too, `mysql_listen_addr`)
 */
import * as net from 'node:net';
import { describeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { survive } from './survive.js';
import { type Balancers, receiveProxyHeader } from './balancers.js';
import type { ConnectionGuard } from './connection-guard.js';
import { peerOf } from './peer-address.js';

/** Options of {@link openMysqlDoor}. */
export interface MysqlDoorOptions {
  guard: ConnectionGuard;
  balancers?: Balancers;
  /** A MySQL client, its address known: greet it and sign it in. */
  serve: (raw: net.Socket) => void;
  log: Logger;
}

/** The server of the gateway's MySQL port (not yet listening). */
export function openMysqlDoor(o: MysqlDoorOptions): net.Server {
  const serve = (raw: net.Socket): void => {
    raw.on('error', (err) => o.log.debug('mysql-door.error', { error: describeError(err) }));
    if (!o.balancers?.has(peerOf(raw).address)) {
      if (o.guard.arrived(raw)) o.serve(raw);
      return;
    }
    o.guard.started(raw);
    receiveProxyHeader(raw, o.log, () => {
      if (o.guard.arrived(raw)) o.serve(raw.resume());
    });
  };
  return net.createServer(
    { noDelay: true },
    survive(o.log, 'mysql-door', serve, (raw) => raw.destroy()),
  );
}
