/**
 * The gateway's StrictModes: a data directory, what it keeps there, its policy checkout and its TLS
 * files that another user could replace stop the start, named with the fix; its own pass.
 */
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { resolveSecret } from '../../src/config/secrets.js';
import { AuditStream } from '../../src/gateway/audit/audit.js';
import { silentLogger } from '../../src/log.js';
import { checkTrustedFile, checkTrustedPaths, keepOthersFromWriting, trustedPathsOf } from '../../src/config/trusted-paths.js';
import { isMainThread } from 'node:worker_threads';
import { loadGatewayConfig } from '../../src/gateway/config/config.js';
import { thrown } from '../harness/thrown.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-trusted-'));
let made = 0;

/** A gateway's files as `hoop gateway init` leaves them: a 0700 data directory with recordings and keys, a policy checkout, TLS files. */
function gatewayFiles(): { dataDir: string; policy: { workDir: string }; tls: { certFile: string; keyFile: string } } {
  const root = join(base, `g${made++}`);
  const dataDir = join(root, 'data');
  for (const d of [dataDir, join(dataDir, 'recordings'), join(dataDir, 'keys'), join(root, 'policy')]) mkdirSync(d, { recursive: true, mode: 0o700 });
  writeFileSync(join(root, 'cert.pem'), 'cert', { mode: 0o644 });
  writeFileSync(join(root, 'key.pem'), 'key', { mode: 0o600 });
  return { dataDir, policy: { workDir: join(root, 'policy') }, tls: { certFile: join(root, 'cert.pem'), keyFile: join(root, 'key.pem') } };
}

/** A policy repo read in place (a path), root's or the gateway user's, 0755, with a file and a loose object, and the gateway's files naming it. */
function repoIn(): { c: ReturnType<typeof gatewayFiles> & { policy: { workDir: string; repo: string } }; repo: string } {
  const c = gatewayFiles();
  const repo = join(base, `repo${made++}`);
  mkdirSync(join(repo, '.git', 'objects', 'ab'), { recursive: true, mode: 0o755 });
  mkdirSync(join(repo, '.git', 'refs'), { mode: 0o755 });
  mkdirSync(join(repo, 'sub'), { mode: 0o755 });
  writeFileSync(join(repo, 'hoop.yaml'), 'version: 1\n', { mode: 0o644 });
  writeFileSync(join(repo, '.git', 'objects', 'ab', 'cd'), 'x', { mode: 0o444 });
  return { c: { ...c, policy: { ...c.policy, repo } }, repo };
}

const refusal = (c: ReturnType<typeof gatewayFiles> & { policy: { repo?: string } }): string => {
  const err = thrown(() => checkTrustedPaths(trustedPathsOf(c))) as HoopError | undefined;
  return err ? `${err.message} (${err.hint})` : 'started';
};

describe("the gateway's files, checked as sshd's StrictModes checks", () => {
  it('pass as init leaves them, and a data directory not made yet', () => {
    expect(refusal(gatewayFiles())).toBe('started');
    expect(refusal({ ...gatewayFiles(), dataDir: join(base, 'not-yet', 'data') })).toBe('started');
  });

  it('refuse a data directory, its recordings or keys, or the policy checkout that is a link, naming it and the fix', () => {
    for (const kept of ['', 'recordings', 'keys']) {
      const c = gatewayFiles();
      const at = kept ? join(c.dataDir, kept) : c.dataDir;
      const elsewhere = join(base, `elsewhere${made++}`);
      mkdirSync(elsewhere, { mode: 0o700 });
      if (kept) {
        rmSync(at, { recursive: true });
        symlinkSync(elsewhere, at);
        expect(refusal(c)).toBe(
          `the gateway will not trust ${at}: it is a symbolic link (another user who can change it points the gateway at their files) (make ${at} the gateway's own (or point the configuration at the link's target))`,
        );
      } else {
        const link = join(base, `link${made++}`);
        symlinkSync(elsewhere, link);
        expect(refusal({ ...c, dataDir: link })).toContain(`will not trust ${link}: it is a symbolic link`);
      }
    }
  });

  it('refuse what others may write (mode 0777, a group-writable key), and a directory above it others may write', () => {
    const open = gatewayFiles();
    chmodSync(open.dataDir, 0o777);
    expect(refusal(open)).toBe(`the gateway will not trust ${open.dataDir}: other users may write to it (mode 777) (chmod go-w ${open.dataDir})`);
    const keys = gatewayFiles();
    chmodSync(join(keys.dataDir, 'keys'), 0o770);
    expect(refusal(keys)).toContain(`will not trust ${join(keys.dataDir, 'keys')}: other users may write to it (mode 770`);
    const key = gatewayFiles();
    chmodSync(key.tls.keyFile, 0o660);
    expect(refusal(key)).toContain(`will not trust ${key.tls.keyFile}: other users may write to it`);
    const parent = gatewayFiles();
    const above = join(parent.dataDir, '..');
    chmodSync(above, 0o777);
    expect(refusal(parent)).toMatch(/other users may write to a directory above .*data \(mode 777\)/);
    // The attack's ACL: a named user's write shows only as the group's bits (the mask), whatever the group: no group write passes.
    const acl = gatewayFiles();
    writeFileSync(join(acl.dataDir, 'keys', 'recording-ed25519.pem'), 'key', { mode: 0o600 });
    chmodSync(join(acl.dataDir, 'keys', 'recording-ed25519.pem'), 0o620);
    expect(refusal(acl)).toContain('other users may write to it (mode 620; a group write bit is also what an ACL granting another user shows)');
    // A signing key others may read, a key of two names, a FIFO where a file is kept, a TLS key everyone may read.
    const readable = gatewayFiles();
    writeFileSync(join(readable.dataDir, 'keys', 'recording-ed25519.pem'), 'key', { mode: 0o644 });
    expect(refusal(readable)).toContain('other users may read or write this private key (mode 644');
    const linked = gatewayFiles();
    writeFileSync(join(linked.dataDir, 'keys', 'recording-ed25519.pem'), 'key', { mode: 0o600 });
    linkSync(join(linked.dataDir, 'keys', 'recording-ed25519.pem'), join(linked.dataDir, 'copy.pem'));
    expect(refusal(linked)).toContain('it has 2 names');
    const fifo = gatewayFiles();
    execFileSync('mkfifo', ['-m', '600', join(fifo.dataDir, 'keys', 'recording-ed25519.pem')]);
    expect(refusal(fifo)).toContain('it is neither a file nor a directory');
    const tls = gatewayFiles();
    chmodSync(tls.tls.keyFile, 0o644);
    expect(refusal(tls)).toContain(`will not trust ${tls.tls.keyFile}: other users may read or write this private key (mode 644) (chmod o-rwx ${tls.tls.keyFile})`);
  });

  it.runIf(isMainThread)('make what the gateway writes writable by no other user, whatever umask it started with (a user-private-group 002)', () => {
    const old = process.umask(0o002);
    try {
      keepOthersFromWriting();
      const files = gatewayFiles();
      writeFileSync(join(files.dataDir, 'recordings', 'r.json'), '{}');
      mkdirSync(join(files.dataDir, 'recordings', 'r'));
      expect(() => checkTrustedPaths(trustedPathsOf(files))).not.toThrow();
    } finally {
      process.umask(old);
    }
  });

  it('refuse a data directory to be made where others may write, a link above a path in such a directory, a TLS file linked from one', () => {
    const open = join(base, `open${made++}`);
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(refusal({ ...gatewayFiles(), dataDir: join(open, 'data') })).toContain(
      `${join(open, 'data')}: it does not exist yet, and other users may write to the directory it would be made in (${open}, mode 777): one of them could make it first`,
    );
    // Under root's sticky /tmp too (the thirteenth attack: another user made it between the check and the gateway's mkdir); the gateway makes its data directory before it checks.
    const sticky = join(base, `sticky${made++}`);
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    expect(refusal({ ...gatewayFiles(), dataDir: join(sticky, 'data') })).toContain('one of them could make it first');
    const c = gatewayFiles();
    symlinkSync(join(c.dataDir, '..'), join(open, 'link'));
    expect(refusal({ ...c, dataDir: join(open, 'link', 'data') })).toMatch(/other users may write to a directory above .*link\/data \(mode 777\)/);
    const tls = gatewayFiles();
    symlinkSync(tls.tls.keyFile, join(open, 'key.pem'));
    expect(refusal({ ...tls, tls: { ...tls.tls, keyFile: join(open, 'key.pem') } })).toMatch(/other users may write to a directory above .*open\d+\/key.pem \(mode 777\)/);
  });

  it("refuse what lies deeper that is a link or that others may write: a journal's file, a recording's, git's configuration in the checkout (the seventh attack)", () => {
    const writable = (p: string) => {
      writeFileSync(p, '');
      chmodSync(p, 0o666);
    };
    for (const [dir, at, make] of [
      ['journal', 'j-1', writable],
      ['journal', 'j-2', (p: string) => symlinkSync(join(base, 'nothing'), p)],
      ['recordings/s1', 'SHA256SUMS', writable],
      ['recordings/s1', 'events-000001.jsonl.gz', (p: string) => symlinkSync(join(base, 'nothing'), p)],
      ['policy:mirror.git', 'config', writable],
      ['policy:.git/hooks', 'post-merge', writable],
      // git does not hash a loose object again as it reads it: another writer of objects/ca swapped a signed commit's blob (the fourteenth attack).
      [
        'policy:mirror.git/objects',
        'ca',
        (p: string) => {
          mkdirSync(p);
          chmodSync(p, 0o777);
        },
      ],
      ['policy:mirror.git/objects/ca', '5d8f64', writable],
    ] as const) {
      const c = gatewayFiles();
      const parent = dir.startsWith('policy:') ? join(c.policy.workDir, dir.slice(7)) : join(c.dataDir, dir);
      mkdirSync(parent, { recursive: true, mode: 0o700 });
      make(join(parent, at));
      expect(refusal(c), `${dir}/${at}`).toMatch(new RegExp(`will not trust ${join(parent, at).replaceAll('.', '\\.')}: (it is a symbolic link|other users may write to it)`));
    }
    // git's objects, and the checkout's own files, pass as git leaves them.
    const c = gatewayFiles();
    mkdirSync(join(c.policy.workDir, '.git', 'objects', 'ab'), { recursive: true, mode: 0o755 });
    writeFileSync(join(c.policy.workDir, '.git', 'objects', 'ab', 'cdef'), 'x', { mode: 0o444 });
    writeFileSync(join(c.policy.workDir, '.git', 'config'), '[core]\n', { mode: 0o644 });
    writeFileSync(join(c.policy.workDir, 'hoop.yaml'), 'version: 1\n', { mode: 0o644 });
    expect(refusal(c)).toBe('started');
  });

  it("refuse a policy repo read in place (a path) that another user could write: any file or directory in it, or the repo itself being another user's (the fourteenth attack)", () => {
    const repoOf = repoIn;
    const ok = repoOf();
    expect(refusal(ok.c)).toBe('started');
    expect(refusal({ ...ok.c, policy: { ...ok.c.policy, repo: `file://${ok.repo}` } })).toBe('started');
    for (const at of ['hoop.yaml', '.git/objects/ab', '.git/objects/ab/cd', '']) {
      const { c, repo } = repoOf();
      chmodSync(join(repo, at), at.endsWith('cd') || at.endsWith('.yaml') ? 0o666 : 0o777);
      expect(refusal(c), at).toMatch(
        at === '' ? /will not trust .*repo\d+: other users may write to it/ : new RegExp(`will not trust ${join(repo, at).replaceAll('.', '\\.')}: other users may write to it`),
      );
    }
    if (process.getuid?.() === 0) {
      const { c, repo } = repoOf();
      chownSync(join(repo, 'hoop.yaml'), 1001, 1001);
      expect(refusal(c)).toMatch(/hoop\.yaml: it belongs to another user \(uid 1001\)/);
    }
    // A policy repo reached by URL is the git server's to keep.
    expect(refusal({ ...gatewayFiles(), policy: { workDir: join(base, `w${made++}`), repo: 'https://git.example.com/acme/policy.git' } })).toBe('started');
    // Every spelling the backend reads in place is the directory checked (the fifteenth attack: FILE:// was read by isomorphic-git and checked by nothing).
    const open = repoOf();
    chmodSync(open.repo, 0o777);
    const escaped = open.repo.replace(/o/g, '%6f');
    for (const spelling of [open.repo, `file://${open.repo}`, `FILE://${open.repo}`, `File://${escaped}`, `file://${escaped}`, relative(open.c.policy.workDir, open.repo)])
      expect(refusal({ ...open.c, policy: { ...open.c.policy, repo: spelling } }), spelling).toMatch(/will not trust .*repo\d+: other users may write to it/);
    for (const nowhere of ['file://host/srv/policy', 'FILE://other.example/x'])
      expect(refusal({ ...open.c, policy: { ...open.c.policy, repo: nowhere } }), nowhere).toMatch(/names no local directory/);
  });

  it('refuse a symbolic link in a policy repo read in place that leads outside it, as written or as it resolves, naming the link and its target (the sixteenth attack)', () => {
    const { c, repo } = repoIn();
    symlinkSync('hoop.yaml', join(repo, 'also.yaml'));
    symlinkSync('../objects', join(repo, '.git', 'refs', 'up'));
    expect(refusal(c)).toBe('started');
    const mine = join(base, `mine${made++}`);
    mkdirSync(mine, { mode: 0o700 });
    for (const [at, target] of [
      // Even to a directory of the gateway's own: what git reads must be in the repo, which is what is checked.
      ['.git/objects/ab', mine],
      ['policy', mine],
      // Named inside, resolving outside: `self/..` leads up from the repo.
      ['sub', 'self/../elsewhere'],
    ] as const) {
      const { c, repo: r } = repoIn();
      symlinkSync(r, join(r, 'self'));
      rmSync(join(r, at), { recursive: true, force: true });
      symlinkSync(target, join(r, at));
      const to = target === mine ? mine : join(r, '..', 'elsewhere');
      expect(refusal(c), at).toBe(
        `the gateway will not trust ${join(r, at)}: it is a symbolic link to ${to}, outside the repository ${r}, and git reads through it (replace ${join(r, at)} with what it points to, inside the repository)`,
      );
    }
  });

  it.runIf(process.getuid?.() === 0)(
    "refuse a policy repo read in place whose .git, objects or refs lead into another user's directory: a link, a gitdir: file, commondir, alternates (as root: the sixteenth attack)",
    () => {
      const theirs = (): string => {
        const dir = join(base, `theirs${made++}`);
        mkdirSync(join(dir, '.git', 'objects'), { recursive: true, mode: 0o755 });
        mkdirSync(join(dir, '.git', 'refs'), { mode: 0o755 });
        writeFileSync(join(dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
        for (const p of ['', '.git', '.git/objects', '.git/refs', '.git/HEAD']) chownSync(join(dir, p), 1001, 1001);
        return dir;
      };
      // The report's form: a root-owned repo directory whose .git is a link into the other user's repository.
      const link = repoIn();
      const other = theirs();
      rmSync(join(link.repo, '.git'), { recursive: true });
      symlinkSync(join(other, '.git'), join(link.repo, '.git'));
      expect(refusal(link.c)).toContain(`will not trust ${join(link.repo, '.git')}: it is a symbolic link to ${join(other, '.git')}, outside the repository ${link.repo}`);
      for (const [file, text] of [
        ['.git', (o: string) => `gitdir: ${join(o, '.git')}\n`],
        ['.git/commondir', (o: string) => `${join(o, '.git')}\n`],
        ['.git/objects/info/alternates', (o: string) => `# borrowed\n${join(o, '.git', 'objects')}\n`],
      ] as const) {
        const { c, repo } = repoIn();
        const o = theirs();
        if (file === '.git') rmSync(join(repo, '.git'), { recursive: true });
        mkdirSync(dirname(join(repo, file)), { recursive: true });
        writeFileSync(join(repo, file), text(o));
        expect(refusal(c), file).toMatch(/: it belongs to another user \(uid 1001\)/);
        expect(refusal(c), file).toContain(`will not trust ${o}`);
        expect(refusal(c), file).toContain(`(git reads refs or objects there: ${join(repo, file)} names it)`);
      }
      // A place git reads outside the repo that is checked as the repo is (root's, no other writer) passes; one not there is refused.
      const ok = repoIn();
      const borrowed = repoIn();
      mkdirSync(join(ok.repo, '.git', 'objects', 'info'));
      writeFileSync(join(ok.repo, '.git', 'objects', 'info', 'alternates'), `${join(borrowed.repo, '.git', 'objects')}\n`);
      expect(refusal(ok.c)).toBe('started');
      chmodSync(join(borrowed.repo, '.git', 'objects', 'ab'), 0o777);
      expect(refusal(ok.c)).toContain(`will not trust ${join(borrowed.repo, '.git', 'objects', 'ab')}: other users may write to it`);
      const missing = repoIn();
      mkdirSync(join(missing.repo, '.git', 'objects', 'info'));
      writeFileSync(join(missing.repo, '.git', 'objects', 'info', 'alternates'), `${join(base, 'not-made')}\n`);
      expect(refusal(missing.c)).toContain(`will not trust ${join(missing.repo, '.git', 'objects', 'info', 'alternates')}: it names ${join(base, 'not-made')}, which does not exist`);
    },
  );

  it('refuse what the data directory or its keys hold that is a link or that others may write (the journal, the reviews file, a key)', () => {
    for (const [at, make] of [
      ['journal', (p: string) => symlinkSync(base, p)],
      ['reviews.jsonl', (p: string) => symlinkSync(join(base, 'nothing'), p)],
      [
        'sessions.jsonl',
        (p: string) => {
          writeFileSync(p, '');
          chmodSync(p, 0o666);
        },
      ],
      [join('keys', 'retired-1.pem'), (p: string) => symlinkSync(join(base, 'nothing'), p)],
    ] as const) {
      const c = gatewayFiles();
      make(join(c.dataDir, at));
      expect(refusal(c), at).toMatch(new RegExp(`will not trust ${join(c.dataDir, at).replaceAll('.', '\\.')}: (it is a symbolic link|other users may write to it)`));
    }
  });

  it("refuse an SSH host key or a TLS key others may read or that has a second name, in the data directory and in a worker's (the thirteenth attack)", () => {
    const c = gatewayFiles();
    const hostKey = join(c.dataDir, 'ssh_host_ed25519_key');
    writeFileSync(hostKey, 'k', { mode: 0o644 });
    expect(refusal(c)).toContain(`${hostKey}: other users may read or write this private key (mode 644`);
    chmodSync(hostKey, 0o600);
    linkSync(hostKey, join(dirname(c.dataDir), 'another-name'));
    expect(refusal(c)).toContain(`${hostKey}: it has 2 names`);
    const w = gatewayFiles();
    mkdirSync(join(w.dataDir, 'workers', '0'), { recursive: true, mode: 0o700 });
    writeFileSync(join(w.dataDir, 'workers', '0', 'ssh_host_ed25519_key'), 'k', { mode: 0o644 });
    expect((thrown(() => checkTrustedPaths(trustedPathsOf(w, 1))) as Error | undefined)?.message).toContain('other users may read or write this private key');
    const t = gatewayFiles();
    chmodSync(t.tls.keyFile, 0o640);
    expect(refusal(t)).toBe('started');
    linkSync(t.tls.keyFile, join(dirname(t.dataDir), 'key-copy.pem'));
    expect(refusal(t)).toContain(`${t.tls.keyFile}: it has 2 names`);
  });

  it("refuse what a worker's directory holds that is a link (the primary copies the SSH host key there), a data directory to be made under a link into a directory others may write, and a configuration or secret file others may write", async () => {
    const w = gatewayFiles();
    mkdirSync(join(w.dataDir, 'workers', '0'), { recursive: true, mode: 0o700 });
    symlinkSync(join(base, 'loot'), join(w.dataDir, 'workers', '0', 'ssh_host_ed25519_key'));
    expect((thrown(() => checkTrustedPaths(trustedPathsOf(w, 2))) as Error | undefined)?.message).toContain(
      `will not trust ${join(w.dataDir, 'workers', '0', 'ssh_host_ed25519_key')}: it is a symbolic link`,
    );
    const open = join(base, `open${made++}`);
    mkdirSync(join(open, 'inner'), { recursive: true });
    chmodSync(open, 0o777);
    const link = join(base, `to-inner${made++}`);
    symlinkSync(join(open, 'inner'), link);
    expect(refusal({ ...gatewayFiles(), dataDir: join(link, 'data') })).toMatch(/other users may write to a directory above .* \(mode 777\)/);
    const config = join(base, `gateway${made++}.yaml`);
    writeFileSync(config, 'version: 1\n');
    chmodSync(config, 0o666);
    expect((thrown(() => checkTrustedFile(config)) as Error | undefined)?.message).toContain(`will not trust ${config}: other users may write to it (mode 666)`);
    await expect(loadGatewayConfig(config)).rejects.toThrow(`will not trust ${config}`);
    await expect(resolveSecret({ kind: 'file', path: config })).rejects.toThrow(`will not trust ${config}`);
    const audit = gatewayFiles();
    expect(thrown(() => checkTrustedPaths(trustedPathsOf({ ...audit, audit: { file: config } })))).toBeDefined();
  });

  it('refuse a secret file another user may read (as a private key), naming the fix; its group may read it (a Kubernetes fsGroup), and a link to it is read as its target', async () => {
    const secret = join(base, `db${made++}.pass`);
    writeFileSync(secret, 'hunter2\n', { mode: 0o644 });
    chmodSync(secret, 0o644);
    const refused = (await resolveSecret({ kind: 'file', path: secret }).catch((e: HoopError) => e)) as HoopError;
    expect(refused.message).toBe(`the gateway will not trust ${secret}: other users may read this secret (mode 644)`);
    expect(refused.hint).toContain(`chmod o-rwx ${secret}`);
    expect(refused.hint).toContain('defaultMode: 0440');
    chmodSync(secret, 0o440);
    expect(await resolveSecret({ kind: 'file', path: secret })).toBe('hunter2');
    // Kubernetes mounts each key as a link through ..data: the file read (its target) is the one checked.
    const mount = join(base, `mount${made++}`);
    mkdirSync(join(mount, '..2026_11_30'), { recursive: true, mode: 0o755 });
    writeFileSync(join(mount, '..2026_11_30', 'password'), 'k8s\n', { mode: 0o644 });
    chmodSync(join(mount, '..2026_11_30', 'password'), 0o644);
    symlinkSync('..2026_11_30', join(mount, '..data'));
    symlinkSync('..data/password', join(mount, 'password'));
    await expect(resolveSecret({ kind: 'file', path: join(mount, 'password') })).rejects.toThrow('other users may read this secret (mode 644)');
    chmodSync(join(mount, '..2026_11_30', 'password'), 0o440);
    expect(await resolveSecret({ kind: 'file', path: join(mount, 'password') })).toBe('k8s');
    // A FIFO at a secret's path is refused, not waited on (a helper's attack: the open blocked for its writer).
    const fifo = join(base, `fifo${made++}`);
    execFileSync('mkfifo', ['-m', '600', fifo]);
    await expect(resolveSecret({ kind: 'file', path: fifo })).rejects.toThrow('it is neither a file nor a directory');
    // A configuration file is not a secret: others may read it.
    const config = join(base, `readable${made++}.yaml`);
    writeFileSync(config, 'version: 1\n', { mode: 0o644 });
    expect(() => checkTrustedFile(config)).not.toThrow();
  });

  it('refuse an audit file not made yet where another user could make it first (a sticky /tmp too), and one that is a link (the tenth attack)', async () => {
    const c = gatewayFiles();
    const auditRefusal = (file: string): string | undefined => (thrown(() => checkTrustedPaths(trustedPathsOf({ ...c, audit: { file } }))) as Error | undefined)?.message;
    const open = join(base, `open${made++}`);
    mkdirSync(open);
    chmodSync(open, 0o1777);
    expect(auditRefusal(join(open, 'audit.jsonl'))).toContain(`will not trust ${join(open, 'audit.jsonl')}: other users may write to the directory it will be made in`);
    const own = join(base, `own${made++}`);
    mkdirSync(own, { mode: 0o700 });
    expect(auditRefusal(join(own, 'mine.jsonl'))).toBeUndefined();
    const linked = join(own, 'audit.jsonl');
    symlinkSync(join(c.dataDir, 'journal-of-the-gateway'), linked);
    expect(auditRefusal(linked)).toContain(`will not trust ${linked}: it is a symbolic link`);
    // A link put in its place after the start: the stream does not write through it.
    const target = join(own, 'target');
    writeFileSync(target, 'kept\n', { mode: 0o600 });
    const later = join(own, 'later.jsonl');
    symlinkSync(target, later);
    const stream = new AuditStream({ file: later, flushMs: 60_000, batchSize: 10, maxQueue: 100 }, silentLogger);
    stream.emit('test.event', {});
    await stream.flush();
    await stream.close();
    expect(readFileSync(target, 'utf8')).toBe('kept\n');
  });

  it.runIf(process.getuid?.() === 0)("refuse a data directory or recordings another user owns (as root: the review's swapped key)", () => {
    const theirs = gatewayFiles();
    chownSync(join(theirs.dataDir, 'recordings'), 1001, 1001);
    expect(refusal(theirs)).toContain(`will not trust ${join(theirs.dataDir, 'recordings')}: it belongs to another user (uid 1001)`);
    const key = gatewayFiles();
    writeFileSync(join(key.dataDir, 'keys', 'signing.pem'), 'theirs', { mode: 0o600 });
    chownSync(join(key.dataDir, 'keys', 'signing.pem'), 1001, 1001);
    expect(refusal(key)).toContain(`will not trust ${join(key.dataDir, 'keys', 'signing.pem')}: it belongs to another user (uid 1001)`);
    const cert = gatewayFiles();
    chownSync(cert.tls.certFile, 1001, 1001);
    expect(refusal(cert)).toContain(`will not trust ${cert.tls.certFile}: it belongs to another user (uid 1001)`);
  });
  it.runIf(process.getuid?.() === 0)('read a secret file as the file checked: another user swapping it in and out of their directory never has their value taken (the fifteenth attack)', async () => {
    const dir = join(base, `race${made++}`);
    mkdirSync(dir, { mode: 0o755 });
    chownSync(dir, 1001, 1001);
    // The other user writes their value, moves it into place and takes it away, as fast as they can.
    const racer = spawn('sh', ['-c', 'while :; do echo theirs > .n; mv -f .n key; rm -f key; done'], { cwd: dir, uid: 1001, gid: 1001, stdio: 'ignore' });
    const outcomes = new Map<string, number>();
    try {
      for (let i = 0; i < 8_000; i++) {
        const outcome = await resolveSecret({ kind: 'file', path: join(dir, 'key') }).then(
          (value) => `taken: ${value}`,
          (err: HoopError) => (/will not trust/.test(err.message) ? 'refused' : 'missing or gone'),
        );
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    } finally {
      racer.kill();
    }
    expect([...outcomes.keys()].filter((k) => k.startsWith('taken'))).toEqual([]);
    expect(outcomes.get('refused')).toBeGreaterThan(0); // the race was on
  });
});

describe('paths the file system cannot walk (the sixteenth attack: each was "unexpected error", exit 70)', () => {
  it('refuses each as the configuration mistake it is (CONFIG_INVALID, naming the path), whatever its shape', () => {
    const root = mkdtempSync(join(tmpdir(), 'hoop-trust-shapes-'));
    try {
      const file = join(root, 'afile');
      writeFileSync(file, 'x');
      symlinkSync(join(root, 'nowhere'), join(root, 'dangling'));
      symlinkSync(join(root, 'loop-b'), join(root, 'loop-a'));
      symlinkSync(join(root, 'loop-a'), join(root, 'loop-b'));
      const data = join(root, 'data');
      mkdirSync(data, { mode: 0o700 });
      const shapes = [join(root, 'missing'), file, join(file, 'below'), join(root, 'dangling'), join(root, 'loop-a'), join(root, 'loop-a', 'x')];
      for (const shape of shapes) {
        for (const c of [
          { dataDir: data, policy: { workDir: join(data, 'policy'), repo: shape } },
          { dataDir: join(shape, 'data') },
          { dataDir: data, policy: { workDir: join(shape, 'w') } },
          { dataDir: data, audit: { file: join(shape, 'audit.jsonl') } },
          { dataDir: data, tls: { certFile: shape } },
        ]) {
          const err = thrown(() => checkTrustedPaths(trustedPathsOf(c)));
          if (err === undefined) continue;
          expect(err, `${JSON.stringify(c)}: ${String(err)}`).toBeInstanceOf(HoopError);
          expect((err as HoopError).code).toBe(ErrorCode.CONFIG_INVALID);
        }
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
