/**
 * The cross-check of the gateway's and the CLI's records of an SSH session (src/recording/cross-check.ts):
 * commands, shells and sftp sessions in order; the gateway's decisions and the exit statuses the client
 * got; sftp operations as sets per channel, a read-only refusal matching the failure the client saw.
 */
import { describe, expect, it } from 'vitest';
import { crossCheck } from '../../src/recording/cross-check.js';
import type { RecordingEvent } from '../../src/recording/event-line.js';

const at = 1;
async function* events(list: Array<Record<string, unknown>>): AsyncGenerator<RecordingEvent> {
  for (const e of list) yield { at, ...e } as RecordingEvent;
}
const check = (gateway: Array<Record<string, unknown>>, client: Array<Record<string, unknown>>) =>
  crossCheck((side) => events(side === 'gateway' ? gateway : client), { gateway: false, client: false });

const gatewayRecord = [
  { t: 'start', side: 'gateway' },
  { t: 'ssh-exec', ch: 1, command: 'uname -a', decision: 'allow' },
  { t: 'ssh-exit', ch: 1, status: 0 },
  { t: 'ssh-exec', ch: 2, command: 'rm -rf /srv', decision: 'deny', rule: 'no-rm' },
  { t: 'ssh-exit', ch: 2, status: 126, refused: true },
  { t: 'ssh-sftp-start', ch: 3, decision: 'allow' },
  { t: 'ssh-sftp', ch: 3, op: 'open', path: '/srv/a', mode: 'write', refused: true },
  { t: 'ssh-sftp', ch: 3, op: 'open', path: '/srv/b', mode: 'read' },
  { t: 'ssh-sftp', ch: 3, op: 'close', path: '/srv/b', mode: 'read', read: 10, written: 0 },
  { t: 'ssh-exit', ch: 3, status: 0 },
];
const clientRecord = [
  { t: 'start', side: 'client' },
  { t: 'ssh-exec', ch: 1, command: 'uname -a' },
  { t: 'ssh-decision', ch: 1, kind: 'exec', command: 'uname -a', decision: 'allow' },
  { t: 'ssh-exit', ch: 1, status: 0 },
  { t: 'ssh-exec', ch: 2, command: 'rm -rf /srv' },
  { t: 'ssh-decision', ch: 2, kind: 'exec', command: 'rm -rf /srv', decision: 'deny', rule: 'no-rm' },
  { t: 'ssh-exit', ch: 2, status: 126 },
  { t: 'ssh-sftp-start', ch: 3 },
  { t: 'ssh-decision', ch: 3, kind: 'sftp', decision: 'allow' },
  { t: 'ssh-sftp', ch: 3, op: 'open', path: '/srv/b', mode: 'read' },
  { t: 'ssh-sftp', ch: 3, op: 'open', path: '/srv/a', mode: 'write', failed: 3 },
  { t: 'ssh-sftp', ch: 3, op: 'close', path: '/srv/b', mode: 'read', read: 10, written: 0 },
  { t: 'ssh-exit', ch: 3, status: 0 },
];

describe('cross-check of SSH records', () => {
  it('agrees when both tell the same session (a refused open is the failure the client saw; sftp order may differ)', async () => {
    expect(await check(gatewayRecord, clientRecord)).toMatchObject({ agree: true, statements: 3, outcomes: 6, sftp: 3, differences: [] });
  });

  it('finds a command the gateway left out of its record', async () => {
    const r = await check(
      gatewayRecord.filter((e) => e.ch !== 2),
      clientRecord.filter((e) => e.ch !== 2 && e.command !== 'rm -rf /srv'),
    );
    expect(r.agree).toBe(true);
    const hidden = await check(
      gatewayRecord.filter((e) => e.ch !== 2),
      clientRecord,
    );
    expect(hidden.agree).toBe(false);
    expect(hidden.differences).toEqual(['SSH statement and outcome "ssh-exec rm -rf /srv | decision deny | exit 126" is in the CLI\'s record only']);
  });

  it('finds an exit status or a decision told differently', async () => {
    const status = await check(
      gatewayRecord.map((e) => (e.ch === 1 && e.t === 'ssh-exit' ? { ...e, status: 1 } : e)),
      clientRecord,
    );
    expect(status.agree).toBe(false);
    expect(status.differences).toEqual([
      'SSH statement and outcome "ssh-exec uname -a | decision allow | exit 1" is in the gateway\'s record only',
      'SSH statement and outcome "ssh-exec uname -a | decision allow | exit 0" is in the CLI\'s record only',
    ]);
    const decision = await check(
      gatewayRecord.map((e) => (e.ch === 2 && e.t === 'ssh-exec' ? { ...e, decision: 'allow' } : e)),
      clientRecord,
    );
    expect(decision.agree).toBe(false);
    expect(decision.differences.join('\n')).toContain('rm -rf /srv | decision allow | exit 126');
  });

  it('numbers channels and orders them as each end saw them: channels numbered and interleaved otherwise still agree', async () => {
    const renumbered = clientRecord.map((e) => (e.ch === 1 ? { ...e, ch: 7 } : e));
    expect(await check(gatewayRecord, renumbered)).toMatchObject({ agree: true });
    // ControlMaster: the second command reached the gateway first.
    const [start, ...rest] = gatewayRecord;
    const reordered = [start!, ...rest.filter((e) => e.ch === 2), ...rest.filter((e) => e.ch !== 2)];
    expect(await check(reordered, clientRecord)).toMatchObject({ agree: true, statements: 3 });
  });

  it("with a record cut short, its commands must be among the other's", async () => {
    const cut = (gateway: Array<Record<string, unknown>>, client: Array<Record<string, unknown>>) =>
      crossCheck((side) => events(side === 'gateway' ? gateway : client), { gateway: false, client: true });
    expect(await cut(gatewayRecord, clientRecord.slice(0, 5))).toMatchObject({ agree: true, statements: 2 });
    const made = await cut(gatewayRecord, [...clientRecord.slice(0, 2), { t: 'ssh-exec', ch: 9, command: 'reboot' }]);
    expect(made.agree).toBe(false);
    expect(made.differences).toEqual(['SSH statement "ssh-exec reboot" is in the CLI\'s record only']);
  });

  it('finds a decision the gateway told for no statement the client sent', async () => {
    const r = await check(gatewayRecord, [...clientRecord.slice(0, -1), { t: 'ssh-decision', unmatched: true, kind: 'exec', command: 'id', decision: 'allow' }, clientRecord.at(-1)!]);
    expect(r.agree).toBe(false);
    expect(r.differences).toEqual(['SSH statement and outcome "(no statement) exec id | decision allow" is in the CLI\'s record only']);
  });

  it('finds an sftp operation in one record only', async () => {
    const r = await check(gatewayRecord, [...clientRecord.slice(0, -1), { t: 'ssh-sftp', ch: 3, op: 'remove', path: '/srv/c' }, clientRecord.at(-1)!]);
    expect(r.agree).toBe(false);
    expect(r.differences).toEqual(['sftp operation "remove /srv/c" is in the CLI\'s record only']);
  });
});
