/** The ssh judge of alice's sessions on a bastion connection, under a policy's `ssh` section written in a directory of its own. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicyDir } from '../../src/policy/load.js';
import { type SshJudge, sshJudgeFor } from '../../src/policy/ssh.js';

/** The judge of alice's sessions under `ssh` (a policy's ssh section, indented), its bundle written in `dir`. */
export async function sshJudgeIn(dir: string, ssh: string, mode: 'read-only' | 'read-write' = 'read-write'): Promise<SshJudge> {
  writeFileSync(
    join(dir, 'hoop.yaml'),
    `version: 1
connections:
  - { name: bastion, type: ssh, host: bastion.internal, user: deploy, password: "\${env:P}", hostKeys: ["SHA256:${'A'.repeat(43)}"] }
ssh:
${ssh}`,
  );
  return sshJudgeFor(await loadPolicyDir(dir), { subject: 'alice', groups: [] }, 'bastion', mode);
}
