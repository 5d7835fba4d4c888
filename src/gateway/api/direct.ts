/**
 * Direct credentials at the API (../credentials/direct-credentials.ts): `POST /v1/connections/{name}/direct`
 * mints one for the caller on a PostgreSQL, MySQL or HTTP connection they may use directly (a person: `via:
 * direct`; a run's credential: the run's own way in, on its connections); `POST
 * /v1/direct/{id}/renew` extends one with its person's fresh credential; `DELETE /v1/direct/{id}`
 * revokes one, and its sessions end.
 */
import { directBody } from '../../api/bodies.js';
import type { DirectCredentialView } from '../../api/answers.js';
import type { Identity } from '../../identity.js';
import { directPrincipal } from '../../policy/principal.js';
import type { Callers } from '../sessions/callers.js';
import { directSeconds } from '../credentials/direct-credentials.js';
import { HttpError } from '../http/http-error.js';
import { checkBody } from '../http/respond.js';
import type { GatewayParts } from '../parts/parts.js';
import { runForbidden } from '../runs/runs.js';
import { directHttpPath } from '../../http/gateway/direct-front.js';

/** The direct-credential endpoints. */
export function directApi(parts: GatewayParts, callers: Callers) {
  const { policySource, reviews, directs, config } = parts;
  return {
    /** `POST /v1/connections/{name}/direct` */
    async mint(identity: Identity, name: string, body: unknown): Promise<DirectCredentialView> {
      const { seconds } = checkBody(directBody, body ?? {});
      if (!config.tls) throw new HttpError(400, 'this gateway serves plain HTTP (a development gateway): direct connections need its TLS', { hint: 'use hoop connect' });
      // Who may use the connection this way: the access rules as they read a direct session.
      const found = policySource
        ? policySource.lookup(identity, name, reviews.grantsOf(identity), undefined, directPrincipal(identity))
        : { connection: callers.lookup(identity, name), grant: undefined };
      const { connection } = found;
      if (connection.type === 'ssh' || connection.type === 'mcp')
        throw new HttpError(400, `"${name}" is an ${connection.type} connection: direct connections are PostgreSQL's, MySQL's and HTTP's`, {
          hint: connection.type === 'mcp' ? `hoop mcp --connection ${name}` : `hoop connect ${name}`,
        });
      const mysqlPort = config.mysqlListen?.port;
      if (connection.type === 'mysql' && !mysqlPort) {
        throw new HttpError(400, `"${name}" is a MySQL connection and this gateway has no MySQL port`, { hint: `hoop connect ${name}; or the gateway's operator sets mysqlListen` });
      }
      const minted = await directs.mint(identity, name, directSeconds(seconds), connection.type);
      // An HTTP client's base path at the gateway's port; a database client's database when it names none: the first the access allows.
      if (connection.type === 'http') return { ...minted, database: '', httpPath: directHttpPath(minted.user, minted.password) };
      return { ...minted, database: found.grant?.databaseAccess?.databases[0] ?? connection.database, ...(connection.type === 'mysql' ? { mysqlPort } : {}) };
    },
    /** `POST /v1/direct/{id}/renew`: a person's own, with their current credential. */
    async renew(identity: Identity, id: string, body: unknown): Promise<{ id: string; expiresAt: string }> {
      if (identity.run) throw runForbidden('direct');
      const { seconds } = checkBody(directBody, body ?? {});
      const record = await directs.renew(identity, id, directSeconds(seconds));
      return { id, expiresAt: record.expiresAt };
    },
    /** `DELETE /v1/direct/{id}` */
    async revoke(identity: Identity, id: string): Promise<{ id: string; revoked: true }> {
      await directs.revoke(identity, id);
      return { id, revoked: true };
    },
  };
}
