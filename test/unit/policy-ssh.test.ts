import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { hostKeyFingerprint, sshFingerprint, type SshConnection } from '../../src/config/connection.js';
import { type PolicyInvalidError, loadPolicyDir } from '../../src/policy/load.js';
import { fileTransferOf, sshJudgeFor } from '../../src/policy/ssh.js';
import { newEd25519Key } from '../../src/ssh/common/keys.js';
import { policyRepos } from '../harness/policy.js';

const { repo } = policyRepos('hoop-policy-ssh-');

const key = newEd25519Key('pinned');
const publicLine = key.public.trim().split(/\s+/).slice(0, 2).join(' ');
const parsed = ssh2.utils.parseKey(key.public);
const fingerprint = sshFingerprint((parsed as { getPublicSSH(): Buffer }).getPublicSSH());

describe('pinned host keys', () => {
  it('reads a fingerprint, a public key and a known_hosts line alike', () => {
    expect(fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(hostKeyFingerprint(fingerprint)).toBe(fingerprint);
    expect(hostKeyFingerprint(publicLine)).toBe(fingerprint);
    expect(hostKeyFingerprint(`[bastion.internal]:2222,10.0.0.5 ${publicLine} root@bastion`)).toBe(fingerprint);
  });

  it('refuses what is none of these, and certificate authorities', () => {
    for (const bad of ['', 'SHA256:short', 'ssh-ed25519 not-base64!', 'ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA==', `@cert-authority *.internal ${publicLine}`, 'MD5:aa:bb'])
      expect(hostKeyFingerprint(bad)).toBeUndefined();
  });
});

const connection = (extra: string): string => `version: 1
connections:
  - { name: bastion, type: ssh, host: bastion.internal, user: deploy, hostKeys: ["${publicLine}"]${extra} }
`;

describe('ssh connections in a bundle', () => {
  it('loads one with a key, port 22 by default, host keys as fingerprints', async () => {
    const p = await loadPolicyDir(repo(connection(', privateKey: "${env:BASTION_KEY}"')));
    expect(p.connections[0]).toEqual({
      name: 'bastion',
      type: 'ssh',
      host: 'bastion.internal',
      port: 22,
      user: 'deploy',
      privateKey: { kind: 'env', name: 'BASTION_KEY' },
      hostKeys: [fingerprint],
      allow: { subjects: [], emails: [], groups: [] },
    } satisfies SshConnection);
  });

  it('needs exactly one credential, as a secret reference, and a pinned key', async () => {
    const refused = async (text: string): Promise<string> => {
      try {
        await loadPolicyDir(repo(text));
      } catch (err) {
        return (err as PolicyInvalidError).problems.join('\n');
      }
      throw new Error('expected a refusal');
    };
    expect(await refused(connection(''))).toMatch(/privateKey: .*must name the credential: a privateKey or a password/);
    expect(await refused(connection(', privateKey: "${env:K}", password: "${env:P}"'))).toMatch(/must name the credential/);
    expect(await refused(connection(', privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----"'))).toMatch(/privateKey: must be a secret reference/);
    expect(await refused(connection(', password: "${env:P}", passphrase: "${env:X}"'))).toMatch(/passphrase: is the passphrase of a privateKey/);
    expect(await refused(connection(', password: "${env:P}"').replace(`"${publicLine}"`, '"nope"'))).toMatch(/hostKeys\.0: must be a known_hosts line/);
    expect(await refused(connection(', password: "${env:P}"').replace('type: ssh', 'type: telnet'))).toMatch(/must have a type: postgres, mysql, ssh, mcp or http/);
  });
});

const policy = async (ssh: string) =>
  loadPolicyDir(
    repo(`${connection(', password: "${env:P}"')}ssh:
${ssh}`),
  );

describe('the ssh judge', () => {
  it('decides commands by glob and pattern, the most restrictive rule winning, else the default', async () => {
    const p = await policy(`  default: review
  rules:
    - { name: reads, match: { commands: ["cat /**", "ls **"] }, action: allow }
    - { name: no-rm, match: { patterns: ['\\brm\\s+-[a-z]*r'] }, action: deny, message: no }
    - { name: no-shell, match: { shell: true, groups: [agents] }, action: deny }
`);
    const judge = sshJudgeFor(p, { subject: 'a', groups: ['agents'] }, 'bastion', 'read-write');
    expect(judge.decide({ kind: 'exec', command: 'ls -la /' }, 'bash')).toMatchObject({ action: 'allow', rule: 'reads' });
    expect(judge.decide({ kind: 'exec', command: 'cat /etc/hosts; rm -rf /' }, 'bash')).toMatchObject({ action: 'deny', rule: 'no-rm', message: 'no' });
    expect(judge.decide({ kind: 'exec', command: 'uptime' }, 'bash')).toMatchObject({ action: 'review', reason: 'no ssh rule matches; the default is review' });
    expect(judge.decide({ kind: 'shell' }, 'bash')).toMatchObject({ action: 'deny', rule: 'no-shell' });
    expect(sshJudgeFor(p, { subject: 'b', groups: [] }, 'bastion', 'read-write').decide({ kind: 'shell' }, 'bash')).toMatchObject({ action: 'review' });
  });

  it("reads a rule's lists of connections and subjects as every other rule does: `*` names every one", async () => {
    const p = await policy(`  default: allow
  rules:
    - { name: anyone, match: { subjects: ["*"], connections: ["*"], commands: ["reboot"] }, action: deny }
    - { name: only-a, match: { subjects: [a], commands: ["halt"] }, action: deny }
`);
    const judge = (subject: string) => sshJudgeFor(p, { subject, groups: [] }, 'bastion', 'read-write');
    expect(judge('z').decide({ kind: 'exec', command: 'reboot' }, 'bash')).toMatchObject({ action: 'deny', rule: 'anyone' });
    expect(judge('a').decide({ kind: 'exec', command: 'halt' }, 'bash')).toMatchObject({ action: 'deny', rule: 'only-a' });
    expect(judge('z').decide({ kind: 'exec', command: 'halt' }, 'bash')).toMatchObject({ action: 'allow' });
  });

  it('admits environment variables and forwarding targets by the lists, nothing by default', async () => {
    const p = await policy(`  env: [LANG, "LC_*"]
  forwarding: ["db.internal:5432", "*.cache.internal:*"]
`);
    const judge = sshJudgeFor(p, { subject: 'a', groups: [] }, 'bastion', 'read-write');
    expect(['LANG', 'LC_ALL', 'LD_PRELOAD', 'PATH'].map((v) => judge.env(v, 'C.UTF-8'))).toEqual([true, true, false, false]);
    // A locale only to one whose lines the shells read as hoop does (the sixteenth attack: Big5 made `中\\;` no escape).
    const locales = ['C', 'POSIX', '', 'en_US.UTF-8', 'de_DE.utf8@euro', 'zh_TW.BIG5', 'zh_CN.GBK', 'ja_JP.SJIS', 'zh_CN.GB18030', 'en_US', 'ja_JP.eucJP'];
    expect(locales.map((v) => judge.env('LC_ALL', v))).toEqual([true, true, true, true, true, false, false, false, false, false, false]);
    expect(judge.forward('db.internal', 5432)).toBe(true);
    expect(judge.forward('DB.internal', 5432)).toBe(true);
    expect(judge.forward('db.internal', 5433)).toBe(false);
    expect(judge.forward('a.cache.internal', 6379)).toBe(true);
    expect(judge.forward('cache.internal.evil.com', 6379)).toBe(false);
    const none = sshJudgeFor(await policy('  default: allow\n'), { subject: 'a', groups: [] }, 'bastion', 'read-write');
    expect(none.forward('db.internal', 5432)).toBe(false);
  });

  it('knows the file transfers clients start as commands, and ssh.sftp governs them', async () => {
    const plain = [
      '/usr/lib/openssh/sftp-server',
      'exec sftp-server -l INFO',
      'scp -t -- /tmp/x',
      "scp -r -d -t '/tmp/a b'",
      'scp -f /etc/hosts',
      'rsync --server -vlogDtpre.iLsfxCIvu . /tmp/x',
      'rsync --server --sender -e.LsfxC . /tmp/x',
      'ls -t',
      'cat rsync.conf',
    ];
    expect(plain.map((c) => fileTransferOf(c))).toEqual(['sftp', 'sftp', 'upload', 'upload', 'download', 'upload', 'download', undefined, undefined]);
    // Named some other way: hoop cannot tell what they transfer.
    const other = [
      'sh -c /usr/lib/openssh/sftp-server',
      '/usr/lib/openssh/sftp-server; touch x',
      'env X=1 sftp-server',
      'nice rsync --server . /x',
      'rsync --server --sender . /x && touch y',
      'scp -f $(echo /x)',
      'scp /a /b',
      'grep sftp-server /etc/ssh/sshd_config',
    ];
    expect(other.map((c) => fileTransferOf(c))).toEqual(other.map(() => 'unknown'));
    const who = { subject: 'a', groups: [] };
    const readOnly = sshJudgeFor(await policy('  sftp: read-only\n'), who, 'bastion', 'read-write');
    expect(readOnly.decide({ kind: 'exec', command: 'scp -t /tmp/x' }, 'bash')).toMatchObject({ action: 'deny', rule: 'hoop:ssh-sftp', reason: 'ssh.sftp is read-only' });
    expect(readOnly.decide({ kind: 'exec', command: 'scp -f /tmp/x' }, 'bash')).toMatchObject({ action: 'allow' });
    expect(readOnly.decide({ kind: 'sftp' }, 'bash')).toMatchObject({ action: 'allow' });
    expect(readOnly.decide({ kind: 'exec', command: 'sh -c "sftp-server"' }, 'bash')).toMatchObject({ action: 'deny', rule: 'hoop:ssh-sftp' });
    const none = sshJudgeFor(await policy('  sftp: deny\n'), who, 'bastion', 'read-write');
    for (const command of ['/usr/lib/openssh/sftp-server', 'scp -f /etc/hosts', 'rsync --server --sender . /x', 'exec sh -c "sftp-server"'])
      expect(none.decide({ kind: 'exec', command }, 'bash')).toMatchObject({ action: 'deny', reason: 'ssh.sftp is deny' });
    expect(none.decide({ kind: 'sftp' }, 'bash')).toMatchObject({ action: 'deny' });
    expect(none.decide({ kind: 'exec', command: 'uptime' }, 'bash')).toMatchObject({ action: 'allow' });
    // ssh.sftp, not the default, decides the transfers it knows; a rule can still refuse one.
    const closed = sshJudgeFor(await policy("  default: deny\n  rules:\n    - { name: no-etc, match: { patterns: [' /etc/'] }, action: deny }\n"), who, 'bastion', 'read-write');
    expect(['scp -t /tmp/x', 'scp -f /tmp/x', 'rsync --server . /x', 'scp -f /etc/shadow', 'sh -c "scp -f /x"'].map((command) => closed.decide({ kind: 'exec', command }, 'bash').action)).toEqual([
      'allow',
      'allow',
      'allow',
      'deny',
      'deny',
    ]);
  });

  it("reads an allow rule's glob as its reader does: one argument a word, a * within one path segment, never a .. it does not spell; ** for more", async () => {
    const p = await policy(`  default: deny
  rules:
    - { name: ok-files, match: { commands: ["cat /srv/ok/*", "tail -n * /var/log/*.log", "git log **"] }, action: allow }
    - { name: deploys, match: { commands: ["./deploy.sh *"] }, action: review }
`);
    const judge = sshJudgeFor(p, { subject: 'a', groups: [] }, 'bastion', 'read-write');
    const action = (command: string): string => judge.decide({ kind: 'exec', command }, 'bash').action;
    for (const ok of ['cat /srv/ok/a', 'cat /srv/ok/.env', 'tail -n 20 /var/log/app.log', 'git log', 'git log --oneline -5 main']) expect(action(ok), ok).toBe('allow');
    // Out of the directory, by .., by a deeper path, by a second argument, or by a word the pattern does not have.
    // A glob the target's shell expands can make a `..` (dash expands `.?` to `..`): no star matches it.
    for (const no of [
      'cat /srv/ok/../../etc/shadow',
      'cat /srv/ok/..',
      'cat /srv/ok/x/y',
      'cat /srv/ok/a /etc/shadow',
      'tail -n 20 /var/log/../../etc/shadow.log',
      'cat',
      'cat /srv/ok/.?',
      'cat /srv/ok/[.][.]',
      'tail -n 20 /var/log/*.log',
    ])
      expect(action(no), no).toBe('deny');
    // A review rule matches at least what it says: any arguments after its words.
    expect(action('./deploy.sh v2 --force')).toBe('review');
  });

  it('runs under read-only access only the commands a rule allows, and downloads', async () => {
    const p = await policy(`  rules:
    - { name: reads, match: { commands: ["cat /**"] }, action: allow }
    - { name: deploys, match: { commands: ["./deploy.sh *"] }, action: review }
`);
    const judge = sshJudgeFor(p, { subject: 'a', groups: [] }, 'bastion', 'read-only');
    expect(judge.decide({ kind: 'exec', command: 'touch /tmp/x' }, 'bash')).toMatchObject({ action: 'deny', rule: 'hoop:read-only-access' });
    expect(judge.decide({ kind: 'shell' }, 'bash')).toMatchObject({ action: 'deny', rule: 'hoop:read-only-access' });
    expect(judge.decide({ kind: 'exec', command: 'cat /etc/hosts' }, 'bash')).toMatchObject({ action: 'allow', rule: 'reads' });
    expect(judge.decide({ kind: 'exec', command: './deploy.sh\tv2' }, 'bash')).toMatchObject({ action: 'review', rule: 'deploys' });
    for (const command of ['scp -f /x', 'rsync --server --sender . /x', '/usr/lib/openssh/sftp-server']) expect(judge.decide({ kind: 'exec', command }, 'bash')).toMatchObject({ action: 'allow' });
    expect(judge.decide({ kind: 'exec', command: 'scp -t /x' }, 'bash')).toMatchObject({ action: 'deny', rule: 'hoop:ssh-sftp' });
    expect(sshJudgeFor(p, { subject: 'a', groups: [] }, 'bastion', 'read-write').decide({ kind: 'exec', command: 'touch /tmp/x' }, 'bash')).toMatchObject({ action: 'allow' });
  });

  it('makes sftp read-only under read-only access', async () => {
    const p = await policy('  sftp: allow\n');
    expect(sshJudgeFor(p, { subject: 'a', groups: [] }, 'bastion', 'read-only').sftp).toBe('read-only');
    expect(sshJudgeFor(p, { subject: 'a', groups: [] }, 'bastion', 'read-write').sftp).toBe('allow');
    expect(sshJudgeFor(await policy('  sftp: deny\n'), { subject: 'a', groups: [] }, 'bastion', 'read-only').sftp).toBe('deny');
  });
});

describe('agent and X11 forwarding', () => {
  it('are refused at load when a policy asks for them, saying why; false is accepted', async () => {
    const problems = await policy('  agentForwarding: true\n  x11Forwarding: true\n').then(
      () => '',
      (err: PolicyInvalidError) => err.problems.join('\n'),
    );
    expect(problems).toMatch(/ssh\.agentForwarding: must be false: hoop never forwards the user's SSH agent/);
    expect(problems).toMatch(/ssh\.x11Forwarding: must be false: hoop never forwards X11/);
    await expect(policy('  agentForwarding: false\n  x11Forwarding: false\n')).resolves.toBeDefined();
  });
});

describe('new Ed25519 keys', () => {
  it('always read back (ssh2 alone writes an unreadable one about once in 200)', () => {
    for (let i = 0; i < 1000; i++) expect(ssh2.utils.parseKey(newEd25519Key('t').private)).not.toBeInstanceOf(Error);
  });
});
