/**
 * The connection ids MySQL clients were greeted with, by live session: what a driver's cancel
 * names (`KILL QUERY <id>`, sent on a connection of its own, as MariaDB Connector/J sends it). A
 * client was greeted with the server's own id (a client of the tunnel), the gateway's MySQL
 * port's, or `hoop connect`'s local port's (which says it in its sign-in, ./session-relay.ts); a
 * `KILL` of one is sent to the server as a `KILL` of the server's own id of the one live session of
 * the same owner (../../session/owner.ts) greeted with it, on this gateway process, and of no
 * other: no client reaches another's query, an id greeted twice is refused as ambiguous, and a
 * session on another replica or worker is not found (refused, with why).
 */
import { sameOwner, type SessionOwner } from '../../session/owner.js';

/** One live session as a KILL finds it. */
interface Greeted {
  owner: SessionOwner;
  /** The server's own id of the session's upstream connection. */
  serverId: number;
}

/** See the module documentation. */
export class MysqlClientIds {
  readonly #live = new Map<number, Greeted[]>();

  /** Session of `owner` greeted with `clientId`, at the server `serverId`, is live until the returned function is called. */
  register(clientId: number, owner: SessionOwner, serverId: number): () => void {
    const entry: Greeted = { owner, serverId };
    const list = this.#live.get(clientId) ?? [];
    list.push(entry);
    this.#live.set(clientId, list);
    return () => {
      const now = (this.#live.get(clientId) ?? []).filter((e) => e !== entry);
      if (now.length > 0) this.#live.set(clientId, now);
      else this.#live.delete(clientId);
    };
  }

  /** The server's id of the one live session of `owner` greeted with `clientId`; why not, when there is none or more than one. */
  resolve(clientId: number, owner: SessionOwner): number | { refused: string } {
    const mine = (this.#live.get(clientId) ?? []).filter((e) => sameOwner(e.owner, owner));
    if (mine.length === 1) return mine[0]!.serverId;
    return {
      refused:
        mine.length === 0
          ? `KILL ${clientId}: no session of yours on ${owner.connection} was greeted with that id here (a session on another gateway replica or worker is not reached)`
          : `KILL ${clientId}: more than one session of yours on ${owner.connection} was greeted with that id`,
    };
  }
}
