/**
 * Every TCP socket hoop opens or accepts has Nagle's algorithm off (TCP_NODELAY). Session bytes
 * go both ways in small writes (a PostgreSQL ReadyForQuery, an SSH window adjustment, a
 * keystroke): held for the ACK of the write before, they stall the other side. The local SSH
 * port once accepted with Nagle on, and `scp` up through it ran at 40 MB/s where it runs at
 * 140 without (`npm run bench`).
 *
 * The check reads the source: each `createServer`/`connect` of `node:net` (outside the demo's
 * own helpers, which carry no session) asks for `noDelay: true`, or its module turns it on with
 * `setNoDelay(true)`, or it is one of the few listed below with the reason; each ssh2 client
 * turns it on (ssh2 leaves it on).
 *
 * @see https://man7.org/linux/man-pages/man7/tcp.7.html (TCP_NODELAY)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');

/** Calls that carry no session's bytes over TCP, and why. */
const EXEMPT: Record<string, string> = {
  'agent/port-bridge.ts:createServer': 'a Unix socket (no Nagle there)',
  'agent/sandbox-init.ts:connect': 'a Unix socket (no Nagle there)',
  'auth/loopback-redirect.ts:createServer': "node:http's, for the browser's one redirect",
  'client/policy-lab.ts:createServer': 'finds a free port, or makes a loopback pair handed to TunnelChannel, which turns Nagle off',
  'client/policy-lab.ts:connect': 'handed to TunnelChannel, which turns Nagle off',
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The text of the call starting at `at` (its opening parenthesis at `open`), up to its closing one. */
function callText(text: string, open: number): string {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return text.slice(open, i + 1);
  }
  return text.slice(open);
}

describe('TCP sockets have Nagle off', () => {
  const files = sources(SRC).filter((f) => !relative(SRC, f).startsWith('demo/'));

  it('every TCP server and client outside the demo turns Nagle off', () => {
    const problems: string[] = [];
    let checked = 0;
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const rel = relative(SRC, file);
      const moduleSets = /setNoDelay\(true\)/.test(text);
      if (/from 'node:net'/.test(text)) {
        for (const m of text.matchAll(/\b(?:net\.)?(createServer|connect|createConnection)\(/g)) {
          const name = m[1]!;
          const bare = !m[0].startsWith('net.');
          // A bare name counts only when it is node:net's (not http's createServer, or a pool's connect).
          if (bare && (text[m.index! - 1] === '.' || !new RegExp(`import \\{[^}]*\\b${name}\\b[^}]*\\} from 'node:net'`).test(text))) continue;
          const call = callText(text, m.index! + m[0].length - 1);
          checked++;
          if (/noDelay:\s*true/.test(call) || moduleSets || EXEMPT[`${rel}:${name}`]) continue;
          problems.push(`${rel}:${text.slice(0, m.index).split('\n').length}: ${name}${call.slice(0, 60)}`);
        }
      }
      // The CLI's own ssh2 client (ssh/local/) speaks over a tunnel stream, a runbook's run (gateway/api/runbook-ssh.ts) over an in-memory channel: not TCP.
      if (/new ssh2\.Client\(/.test(text) && !moduleSets && !rel.startsWith('ssh/local/') && rel !== 'gateway/api/runbook-ssh.ts') problems.push(`${rel}: an ssh2 client without setNoDelay(true)`);
    }
    expect(problems).toEqual([]);
    // The scan sees the servers and clients it is about (the gateway's front door, the local PostgreSQL and SSH ports, upstreams, bridges).
    expect(checked).toBeGreaterThanOrEqual(8);
  });
});
