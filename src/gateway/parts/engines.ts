/**
 * The gateway's protocol engines, one per connection type, behind the session contract
 * (src/session/engine.ts): a session is served by the engine its connection's type names, and
 * recorded with that engine's encoder.
 */
import type { ConnectionConfig } from '../../config/connection.js';
import { resolveSecret } from '../../config/secrets.js';
import { HttpEngine } from '../../http/gateway/engine.js';
import { McpEngine } from '../../mcp/gateway/engine.js';
import { MysqlEngine, type MysqlEngineOptions } from '../../mysql/gateway/engine.js';
import { PostgresEngine, type PostgresEngineOptions } from '../../postgres/gateway/engine.js';
import type { Engine } from '../../session/engine.js';
import { SshEngine, type SshEngineOptions } from '../../ssh/gateway/engine.js';
import { gatewaySshHostKey } from '../../ssh/gateway/host-key.js';
import type { GatewayParts } from './parts.js';

/** An engine for each connection type. */
export type EngineRegistry = { readonly [T in ConnectionConfig['type']]: Engine<Extract<ConnectionConfig, { type: T }>> };

/** The engine of `connection`'s type. */
export function engineFor<C extends ConnectionConfig>(engines: EngineRegistry, connection: C): Engine<C> {
  // TypeScript cannot follow a union through an indexed access: the registry's type pairs each type with its engine.
  return engines[connection.type] as unknown as Engine<C>;
}

/** Starts the engines; the SSH one with the gateway's host key, published to the other replicas (which `hoop connect` pins). */
export async function startEngines(
  parts: GatewayParts,
  overrides: {
    postgres?: Partial<PostgresEngineOptions> | undefined;
    ssh?: Pick<SshEngineOptions, 'handshakeTimeoutMs' | 'upstreamTimeoutMs'> | undefined;
    mysql?: Pick<MysqlEngineOptions, 'handshakeTimeoutMs' | 'upstreamTimeoutMs'> | undefined;
  },
): Promise<{ engines: EngineRegistry; sshHostKey: string }> {
  const { config, env, replica, cancels } = parts;
  const secret = (ref: Parameters<typeof resolveSecret>[0]): Promise<string> => resolveSecret(ref, env);
  const hostKey = await gatewaySshHostKey(config.dataDir);
  await replica?.publishSshHostKey(hostKey.public);
  return {
    engines: {
      postgres: new PostgresEngine({ cancels, resolveSecret: secret, ...config.postgres, ...overrides.postgres }),
      ssh: new SshEngine({ hostKey: hostKey.private, resolveSecret: secret, ...overrides.ssh }),
      mysql: new MysqlEngine({ resolveSecret: secret, ...overrides.mysql }),
      mcp: new McpEngine({ resolveSecret: secret, workDir: config.dataDir }),
      http: new HttpEngine({ resolveSecret: secret }),
    },
    sshHostKey: hostKey.public,
  };
}
