/**
 * Where the CLI finds its gateway, token and trusted CA. Until `hoop login` keeps tokens in the
 * keychain, the token comes from `HOOP_TOKEN` or `--token-file`.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ErrorCode, HoopError, describeError } from './errors.js';

/** The token and CA the CLI uses to reach the gateway. */
export interface ClientCredentials {
  token: string;
  ca?: Buffer;
}

/** The gateway URL from `HOOP_GATEWAY`, or a usage error saying how to set it. */
export function gatewayFromEnv(env: NodeJS.ProcessEnv): string {
  const url = env.HOOP_GATEWAY?.trim();
  if (!url) {
    throw new HoopError(ErrorCode.USAGE, 'no gateway given', { hint: 'pass --gateway https://gateway.example.com or set HOOP_GATEWAY' });
  }
  return url;
}

async function readNamed(file: string, what: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new HoopError(ErrorCode.USAGE, `cannot read the ${what} file ${file}: ${describeError(err)}`, { hint: `check ${flag}` });
  }
}

/** Reads the token (`--token-file` or `HOOP_TOKEN`) and the CA (`--ca-file` or `HOOP_CA_FILE`). */
export async function loadClientCredentials(options: { env: NodeJS.ProcessEnv; cwd: string; tokenFile?: string | undefined; caFile?: string | undefined }): Promise<ClientCredentials> {
  const { env, cwd } = options;
  let token: string | undefined;
  if (options.tokenFile) token = (await readNamed(resolve(cwd, options.tokenFile), 'token', '--token-file')).toString('utf8').trim();
  else token = env.HOOP_TOKEN?.trim();
  if (!token) {
    throw new HoopError(ErrorCode.NOT_LOGGED_IN, 'no token to present to the gateway', {
      hint: 'set HOOP_TOKEN or pass --token-file with an OIDC token the gateway trusts',
    });
  }
  const caFile = options.caFile ?? env.HOOP_CA_FILE;
  const ca = caFile ? await readNamed(resolve(cwd, caFile), 'CA', '--ca-file / HOOP_CA_FILE') : undefined;
  return { token, ...(ca ? { ca } : {}) };
}
