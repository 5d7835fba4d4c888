/**
 * A real nginx (Debian's) on a free port of 127.0.0.1, serving HTTPS with a test certificate: the
 * files of `www` under `/v2/` to a caller with the API key a test gives (`X-Api-Key`), and
 * `/v2/echo`, which answers the key it was sent (an upstream that echoes its credential). Started
 * in the foreground with its configuration and temporary files in `dir`, resolved once it listens.
 *
 * @see https://nginx.org/en/docs/
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IssuedCert } from './certs.js';
import { untilListening } from './listen.js';
import { freePort } from './postgres.js';

/** A running nginx: its port, its process, and what it said. */
export interface Nginx {
  port: number;
  process: ChildProcess;
  log(): string;
}

/** Starts nginx in `dir` with `files` (name → contents) under `/v2/`, for callers with `key`. */
export async function startNginx(dir: string, cert: IssuedCert, key: string, files: Record<string, string>): Promise<Nginx> {
  const port = await freePort();
  const www = join(dir, 'www');
  await mkdir(www, { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(www, name), text);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, 'tmp', t)};`).join('\n');
  const conf = join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log stderr notice;
events { worker_connections 256; }
http {
  access_log off;
${temp}
  default_type application/json;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${cert.certFile};
    ssl_certificate_key ${cert.keyFile};
    location = /v2/echo { return 200 '{"key":"$http_x_api_key"}'; }
    location /v2/ {
      if ($http_x_api_key != "${key}") { return 401 '{"error":"no key"}'; }
      alias ${www}/;
    }
  }
}
`,
  );
  let log = '';
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await untilListening(port, child, 'nginx', () => log);
  return { port, process: child, log: () => log };
}
