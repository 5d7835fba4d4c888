/**
 * `hoop connect` of an SSH connection: a local port on 127.0.0.1 whose every client goes through
 * its own tunnel to the gateway, an ssh_config (with its known hosts and key) that names it, the
 * CLI's own record of each session when the connection keeps one, and how to use it, printed;
 * it runs until interrupted.
 *
 * @see ../ssh/local/port.ts
 */
import type { ConnectionInfo } from '../api/answers.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import type { ConnectSshJson } from '../connect-json.js';
import { ErrorCode, HoopError } from '../errors.js';
import { whenAborted, type CliIo } from '../io.js';
import type { Logger } from '../log.js';
import { openSshPort } from '../ssh/local/port.js';
import { shellQuote } from '../text-format.js';
import { CommandRecords, sshRecordHook } from './client-records.js';

/** What {@link serveSsh} takes of `hoop connect`'s options. */
export interface SshPortOptions {
  port?: number;
  socket?: string;
  json?: boolean;
}

/** `hoop connect` of an SSH connection: the local port, the generated ssh_config, and how to use it. */
export async function serveSsh(io: CliIo, opts: SshPortOptions, provider: ResolvedTokenProvider, name: string, info: ConnectionInfo, log: Logger, say: (line: string) => void): Promise<void> {
  if (opts.socket) throw new HoopError(ErrorCode.USAGE, `"${name}" is an ssh connection: it is served on a TCP port of 127.0.0.1, not a unix socket (drop --socket)`);
  const records = new CommandRecords(io, provider, log);
  records.resume();
  const record = info.clientRecords ? sshRecordHook(records, { connection: name, gateway: provider.gateway, say }) : undefined;
  const port = await openSshPort({
    env: io.env,
    provider,
    name,
    hostKeys: info.hostKeys ?? [],
    ...(info.user ? { user: info.user } : {}),
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    log,
    say,
    ...(record ? { record } : {}),
  }).catch(async (err: unknown) => {
    await records.finish(say);
    throw err;
  });
  try {
    const ssh = `ssh -F ${shellQuote(port.configFile)}`;
    if (opts.json) {
      const details: ConnectSshJson = {
        connection: name,
        host: port.host,
        port: port.port,
        sshConfig: port.configFile,
        ...(port.includeFile ? { sshInclude: port.includeFile } : {}),
        knownHosts: port.knownHostsFile,
        identityFile: port.keyFile,
        command: `${ssh} ${name}`,
      };
      io.stdout.write(`${JSON.stringify(details)}\n`);
    } else {
      io.stdout.write(
        [
          `Connected to "${name}" (ssh) through ${provider.gateway}.`,
          `Listening on ${port.host}:${port.port}; the ssh config is ${port.configFile}.`,
          '',
          'Connect with:',
          `  ${ssh} ${name}`,
          `  scp -F ${shellQuote(port.configFile)} FILE ${name}:PATH      sftp -F ${shellQuote(port.configFile)} ${name}`,
          `  rsync -e ${shellQuote(ssh)} DIR ${name}:PATH      GIT_SSH_COMMAND=${shellQuote(ssh)} git clone ${name}:REPO`,
          '',
          port.includeFile
            ? `or put this line at the top of ~/.ssh/config once (it includes every hoop connect you run), then use plain \`ssh ${name}\`:`
            : `or put this line at the top of ~/.ssh/config, then use plain \`ssh ${name}\`:`,
          `  Include ${port.includeFile ?? port.configFile}`,
          'Press Ctrl-C to stop.',
          '',
        ].join('\n'),
      );
    }
    await whenAborted(io.signal);
  } finally {
    await port.close();
    await records.finish(say);
  }
}
