/**
 * `scp` of BENCH_SCP_MB (default 100) MB of random bytes up and down, to an sshd of its own
 * (src/demo/sshd.ts): straight to it; through an OpenSSH bastion (`ProxyJump`, the same sshd as its
 * own bastion: what hoop replaces); and through hoop (`hoop connect`'s ssh config), with the session
 * recorded or not, and recorded without the CLI's own record (HOOP_CLIENT_RECORD=off). The median of
 * BENCH_SCP_RUNS (default 3) runs each.
 *
 * Layer: uses ./processes.ts, ./measure.ts (the median), ./relays.ts (the ssh options) and
 * ./hoop-paths.ts (the gateway); ./pg-path.ts runs it.
 *
 * @see https://man.openbsd.org/ssh_config#ProxyJump
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Sshd } from '../src/demo/sshd.js';
import { startBenchConnect, startBenchGateway } from './hoop-paths.js';
import { median } from './measure.js';
import { onCleanup, runToEnd, tempDir } from './processes.js';
import { opensshOptions } from './relays.js';
import { SCP_MB, SCP_RUNS } from './settings.js';

/** One row of the scp table: the median throughput each way, in MB/s (MiB of payload per second). */
export interface ScpRow {
  label: string;
  upMBps: number;
  downMBps: number;
}

/** The label of the OpenSSH bastion's row, which the others are compared with. */
export const SCP_BASTION_LABEL = 'ssh -J (OpenSSH bastion)';

/** How scp reaches the server: the options before the file names, and the `host:` prefix of the remote one. */
interface ScpRoute {
  options: string[];
  host: string;
}

/**
 * An ssh config for the bastion row: `bench-target` is the sshd, reached with `ProxyJump` through
 * `bench-bastion`, the same sshd. A config file (not `-J` with `-F /dev/null`) because ssh hands the
 * jump's own ssh the `-F` file alone: the key and host-key options must be in it to reach the bastion.
 */
function bastionConfig(sshd: Sshd, dir: string): string {
  const file = join(dir, 'bastion_config');
  const host = (name: string): string[] => [`Host ${name}`, '  HostName 127.0.0.1', `  Port ${sshd.port}`, `  User ${sshd.user}`];
  const lines = [
    ...host('bench-bastion'),
    ...host('bench-target'),
    '  ProxyJump bench-bastion',
    'Host *',
    `  IdentityFile ${sshd.clientKeyFile}`,
    '  IdentitiesOnly yes',
    '  BatchMode yes',
    '  UserKnownHostsFile /dev/null',
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking no',
    '  LogLevel ERROR',
    '',
  ];
  writeFileSync(file, lines.join('\n'), { mode: 0o600 });
  return file;
}

/** Measures every row; see the module documentation. */
export async function measureScp(log: (s: string) => void): Promise<ScpRow[]> {
  const { startSshd } = await import('../src/demo/sshd.js');
  const sshd = await startSshd();
  const stopSshd = onCleanup('sshd', () => sshd.stop());
  try {
    const { dir } = tempDir('hoop-bench-scp-');
    const file = join(dir, 'payload.bin');
    writeFileSync(file, Buffer.concat(Array.from({ length: SCP_MB }, () => randomBytes(1024 * 1024))));
    const rows: ScpRow[] = [];
    const measureRow = async (label: string, route: ScpRoute): Promise<void> => {
      const row = await timeRoute(label, route, { file, dir, remoteDir: sshd.dir });
      rows.push(row);
      log(`[scp] ${label}: up ${row.upMBps.toFixed(0)} MB/s, down ${row.downMBps.toFixed(0)} MB/s`);
    };
    await measureRow('direct', { options: [...opensshOptions(sshd.clientKeyFile), '-P', String(sshd.port)], host: '127.0.0.1' });
    await measureRow(SCP_BASTION_LABEL, { options: ['-F', bastionConfig(sshd, dir)], host: 'bench-target' });
    for (const recording of [false, true]) {
      const gw = await startBenchGateway([
        `recording: { enabled: ${recording} }`,
        'connections:',
        `  - { name: bastion, type: ssh, host: 127.0.0.1, port: ${sshd.port}, user: ${sshd.user}, privateKey: "\${file:${sshd.clientKeyFile}}", hostKeys: [${JSON.stringify(sshd.hostKey)}], allow: { subjects: ["*"] } }`,
      ]);
      try {
        // Recorded, the CLI keeps its own record too (it ends SSH at its port); HOOP_CLIENT_RECORD=off shows what that costs.
        for (const cliRecord of recording ? [true, false] : [false]) {
          const client = await startBenchConnect<{ sshConfig: string }>(gw, 'bastion', cliRecord ? {} : { HOOP_CLIENT_RECORD: 'off' });
          try {
            const label = recording ? `hoop, recording on${cliRecord ? ' (+ CLI record)' : ', HOOP_CLIENT_RECORD=off'}` : 'hoop, recording off';
            await measureRow(label, { options: ['-F', client.info.sshConfig], host: 'bastion' });
          } finally {
            await client.stop();
          }
        }
      } finally {
        await gw.stop();
      }
    }
    return rows;
  } finally {
    await stopSshd();
  }
}

/** The median of BENCH_SCP_RUNS copies of `file` up and back down along `route`. */
async function timeRoute(label: string, route: ScpRoute, at: { file: string; dir: string; remoteDir: string }): Promise<ScpRow> {
  const seconds = async (args: string[]): Promise<number> => {
    const t = process.hrtime.bigint();
    await runToEnd('scp', ['-q', '-o', 'BatchMode=yes', ...route.options, ...args], { timeoutMs: 600_000 });
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  const ups: number[] = [];
  const downs: number[] = [];
  for (let i = 0; i < SCP_RUNS; i++) {
    const remote = `${route.host}:${join(at.remoteDir, `payload-${i}.bin`)}`;
    ups.push(await seconds([at.file, remote]));
    downs.push(await seconds([remote, join(at.dir, `back-${i}.bin`)]));
  }
  return { label, upMBps: SCP_MB / median(ups), downMBps: SCP_MB / median(downs) };
}
