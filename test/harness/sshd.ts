/** SSH connections of a policy, to an sshd a test started (src/demo/sshd.ts). */
import type { Sshd } from '../../src/demo/sshd.js';

/** What a connection entry may take other than `sshd`'s own: another user, key, port or pinned host key. */
export interface SshConnectionOptions {
  user?: string;
  keyFile?: string;
  port?: number;
  hostKey?: string;
}

/** One `connections:` entry, as an indented YAML flow line, for SSH connection `name` to `sshd` on loopback. */
export function sshConnectionYaml(name: string, sshd: Pick<Sshd, 'port' | 'user' | 'hostKey' | 'clientKeyFile'>, o: SshConnectionOptions = {}): string {
  const key = `\${file:${o.keyFile ?? sshd.clientKeyFile}}`;
  return `  - { name: ${name}, type: ssh, host: 127.0.0.1, port: ${o.port ?? sshd.port}, user: ${o.user ?? sshd.user}, privateKey: "${key}", hostKeys: ["${o.hostKey ?? sshd.hostKey}"] }`;
}
