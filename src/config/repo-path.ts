/**
 * Where a policy repo is: a git URL fetched over the network, or a local repository read in place,
 * decided once here for the backend that reads it and for the check of who may write it
 * (./trusted-paths.ts), so that no spelling is read from one directory and checked at another.
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** True when `text` is written as a git URL (scheme or scp-like `user@host:path`) rather than a local path. */
export function looksLikeGitUrl(text: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(text) || (/^[^/\\:]+@[^/\\:]+:/.test(text) && !isAbsolute(text));
}

/**
 * The local repository a remote names: a path (relative to the work directory, where git runs) or a
 * `file://` URL of any case (percent-decoded, as git does); undefined for any other URL.
 */
export function localRepoPath(remote: string, workDir: string): string | undefined {
  if (/^file:\/\//i.test(remote)) {
    try {
      return fileURLToPath(remote);
    } catch {
      const rest = remote.slice('file://'.length);
      let path = rest;
      try {
        path = decodeURIComponent(rest);
      } catch {
        // git leaves a bad escape as it is
      }
      return path.startsWith('/') ? resolve(path) : undefined;
    }
  }
  return looksLikeGitUrl(remote) ? undefined : resolve(workDir, remote);
}
