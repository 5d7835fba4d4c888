/**
 * Opens a URL in the user's browser without a shell: `$BROWSER` (one executable), `open` on
 * macOS, `rundll32 url.dll,FileProtocolHandler` on Windows (`start` is a cmd.exe builtin and
 * would need a shell), `xdg-open` elsewhere. The URL is one argv element, never parsed by a shell.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-4.1 (native apps use the system browser)
 * @see https://specifications.freedesktop.org/desktop-entry-spec/latest/ (xdg-open)
 */
import { spawn as nodeSpawn, type SpawnOptions, type ChildProcess } from 'node:child_process';

/** A program and its arguments. @see https://nodejs.org/api/child_process.html#child_processspawncommand-args-options */
export interface BrowserCommand {
  file: string;
  args: string[];
}

/**
 * The command that opens `url` on `platform`, honouring `$BROWSER` (a single executable path or
 * name; `%s` placeholders and lists are not supported).
 * @see https://nodejs.org/api/process.html#processplatform
 */
export function browserCommand(url: string, platform: NodeJS.Platform, env: NodeJS.ProcessEnv): BrowserCommand {
  const chosen = env.BROWSER?.trim();
  if (chosen && !chosen.includes(':') && !/\s/.test(chosen)) return { file: chosen, args: [url] };
  if (platform === 'darwin') return { file: 'open', args: [url] };
  if (platform === 'win32') return { file: 'rundll32', args: ['url.dll,FileProtocolHandler', url] };
  return { file: 'xdg-open', args: [url] };
}

/** Options of {@link openBrowser}. @see https://nodejs.org/api/child_process.html */
export interface OpenBrowserOptions {
  env: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  spawn?: (file: string, args: string[], options: SpawnOptions) => ChildProcess;
}

/**
 * Starts the browser on `url` (http or https only). Resolves true once the opener started,
 * false when it could not (no opener installed, no display); never rejects.
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-4.1
 */
export function openBrowser(url: string, options: OpenBrowserOptions): Promise<boolean> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return Promise.resolve(false);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return Promise.resolve(false);
  const { file, args } = browserCommand(parsed.href, options.platform ?? process.platform, options.env);
  const spawn = options.spawn ?? nodeSpawn;
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(file, args, { stdio: 'ignore', detached: true, shell: false, env: options.env, windowsHide: true });
    } catch {
      resolve(false);
      return;
    }
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
}
