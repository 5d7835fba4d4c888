/**
 * OpenSSH signatures made by hoop verify with `ssh-keygen -Y verify`, and ones made by
 * `ssh-keygen -Y sign` verify with hoop; a wrong namespace, key, message or armour is refused.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSigningKey, parseSshPublicKey, sshFingerprint, sshPublicKeyLine, sshSign, sshVerify } from '../../src/recording/sshsig.js';

const dir = mkdtempSync(join(tmpdir(), 'hoop-sshsig-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('OpenSSH signatures', () => {
  const { privateKey } = generateSigningKey();
  const message = Buffer.from('3f2a...  events-000001.jsonl.gz\n');

  it('ssh-keygen -Y verify accepts what hoop signs, in its namespace only', () => {
    writeFileSync(join(dir, 'msg'), message);
    writeFileSync(join(dir, 'msg.sig'), sshSign(privateKey, 'hoop-recording', message));
    writeFileSync(join(dir, 'allowed_signers'), `gateway@hoop ${sshPublicKeyLine(privateKey)}\n`);
    const out = execFileSync('ssh-keygen', ['-Y', 'verify', '-f', join(dir, 'allowed_signers'), '-I', 'gateway@hoop', '-n', 'hoop-recording', '-s', join(dir, 'msg.sig')], {
      input: message,
    }).toString();
    expect(out).toContain('Good "hoop-recording" signature for gateway@hoop with ED25519 key');
    expect(out).toContain(sshFingerprint(privateKey));
    expect(() =>
      execFileSync('ssh-keygen', ['-Y', 'verify', '-f', join(dir, 'allowed_signers'), '-I', 'gateway@hoop', '-n', 'git', '-s', join(dir, 'msg.sig')], { input: message, stdio: 'pipe' }),
    ).toThrow();
    expect(() =>
      execFileSync('ssh-keygen', ['-Y', 'verify', '-f', join(dir, 'allowed_signers'), '-I', 'gateway@hoop', '-n', 'hoop-recording', '-s', join(dir, 'msg.sig')], {
        input: Buffer.concat([message, Buffer.from('x')]),
        stdio: 'pipe',
      }),
    ).toThrow();
  });

  it('hoop verifies what ssh-keygen -Y sign made', () => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'k', '-f', join(dir, 'k')]);
    writeFileSync(join(dir, 'm2'), message);
    execFileSync('ssh-keygen', ['-Y', 'sign', '-f', join(dir, 'k'), '-n', 'hoop-recording', join(dir, 'm2')], { stdio: 'pipe' });
    const key = parseSshPublicKey(readFileSync(join(dir, 'k.pub'), 'utf8'));
    const check = sshVerify(readFileSync(join(dir, 'm2.sig'), 'utf8'), 'hoop-recording', message, [key]);
    expect(check.fingerprint).toBe(
      execFileSync('ssh-keygen', ['-l', '-f', join(dir, 'k.pub')])
        .toString()
        .split(' ')[1],
    );
  });

  it('refuses another namespace, an untrusted key, a changed message and a damaged armour, saying which', () => {
    const sig = sshSign(privateKey, 'hoop-recording', message);
    const other = generateSigningKey().privateKey;
    expect(sshVerify(sig, 'hoop-recording', message, [other, privateKey]).fingerprint).toBe(sshFingerprint(privateKey));
    expect(() => sshVerify(sig, 'git', message, [privateKey])).toThrow('the signature is for namespace "hoop-recording", not "git"');
    expect(() => sshVerify(sig, 'hoop-recording', message, [other])).toThrow(`signed by ${sshFingerprint(privateKey)}, which is not a trusted key`);
    expect(() => sshVerify(sig, 'hoop-recording', Buffer.from('another manifest'), [privateKey])).toThrow('does not match the signed file');
    const lines = sig.split('\n');
    lines[2] = `${lines[2]!.slice(0, 10)}${lines[2]![10] === 'A' ? 'B' : 'A'}${lines[2]!.slice(11)}`; // one character of the key or signature
    expect(() => sshVerify(lines.join('\n'), 'hoop-recording', message, [privateKey])).toThrow();
    expect(() => sshVerify('hello', 'hoop-recording', message, [privateKey])).toThrow('not an SSH signature');
  });
});
