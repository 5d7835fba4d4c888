/**
 * A run's evidence as `hoop sessions` reads it: its id's form, its own record (signed by the CLI
 * that ran it) as lines before and after its sessions, and the sessions the gateway lists for it.
 */
import { realClock } from '../clock.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listSessions } from '../api-client/sessions.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { shellQuote } from '../text-format.js';
import type { TranscriptLine } from '../ui/transcript.js';
import { commandTokenProvider, type GatewayFlags } from './client-config.js';
import { readEvents, verifiedClientRecord } from './recordings-fetch.js';

/** A run's id, as `hoop run` gives its command (`HOOP_RUN_ID`). */
export const RUN_ID = /^run-[A-Za-z0-9_-]{16,64}$/;

/**
 * The run's own record (signed by the CLI that ran it), as lines before and after its sessions:
 * who ran what, where, with which prompt; then where it connected and was refused, and how the command ended. Nothing when no record of the
 * run was uploaded; an error when one was and does not verify.
 */
export async function runRecordLines(io: CliIo, flags: GatewayFlags, runId: string): Promise<{ head: TranscriptLine[]; tail: TranscriptLine[] }> {
  const provider = await commandTokenProvider(io, flags);
  const dir = await mkdtemp(join(tmpdir(), 'hoop-run-'));
  try {
    const { check, info } = await verifiedClientRecord({ endpoint: { gateway: provider.gateway, ca: provider.ca }, token: (await provider.current()).token }, 'runs', runId, dir);
    if (!check) return { head: [], tail: [] };
    if (!check.ok)
      throw new HoopError(ErrorCode.RECORDING_INVALID, `the record of run ${runId} does not verify: ${check.problems.join('; ')}`, { hint: 'it was altered or damaged after the CLI signed it' });
    const head: TranscriptLine[] = [];
    const tail: TranscriptLine[] = [];
    const quoted = (v: unknown): string => JSON.stringify(String(v ?? ''));
    const sessions: string[] = [];
    /** Connections through the egress proxy, by destination: refused, and let through. */
    const egress = { refused: new Map<string, number>(), allowed: new Map<string, number>() };
    const egressLines = (at: number): TranscriptLine[] =>
      (['refused', 'allowed'] as const)
        .filter((k) => egress[k].size > 0)
        .map((k) => ({
          at,
          text: `-- the run's command ${k === 'refused' ? 'was refused connections to' : 'connected through its egress proxy to'} ${[...egress[k]].map(([to, n]) => `${to} (${n})`).join(', ')}`,
        }));
    for await (const e of readEvents(dir, check.manifest!)) {
      if (e.t === 'start') {
        const command = Array.isArray(e.command) ? (e.command as unknown[]).map((a) => shellQuote(String(a))).join(' ') : '';
        // Who: the identity that uploaded it (the gateway authenticated it), not what the record says.
        head.push({ at: e.at, text: `-- run ${runId} by ${info?.subject ?? '?'} on ${String(e.host ?? '?')} (signed by its CLI, ${check.signer}): ${quoted(command)} in ${quoted(e.cwd)}` });
        if (typeof e.agent === 'string')
          head.push({ at: e.at, text: `-- the agent: ${e.agent}, ${e.isolation === 'none' ? 'not contained (isolation: none)' : `contained (${String(e.isolation)})`}` });
        if (typeof e.prompt === 'string') head.push({ at: e.at, text: `-- the run's prompt: ${quoted(e.prompt)}` });
      } else if (e.t === 'session') {
        sessions.push(String(e.id));
      } else if (e.t === 'egress') {
        const to = `${String(e.host)}:${String(e.port)}`;
        const seen = e.allowed === true ? egress.allowed : egress.refused;
        seen.set(to, (seen.get(to) ?? 0) + 1);
      } else if (e.t === 'change') {
        if (typeof e.refused === 'string' && e.within === undefined) tail.push({ at: e.at, text: `-- the gate refused the command's change to ${quoted(e.path)}: ${e.refused}` });
      } else if (e.t === 'gate') {
        const applied = ['added', 'changed', 'removed'].filter((k) => Number(e[k]) > 0).map((k) => `${String(e[k])} ${k}`);
        const refused = Number(e.refused) > 0 ? `; ${String(e.refused)} refused` : '';
        const conflicts = Number(e.conflicts) > 0 ? `; ${String(e.conflicts)} not applied (its person changed the same paths), kept` : '';
        tail.push({
          at: e.at,
          text:
            e.outcome === 'kept'
              ? `-- the run's ${String(e.changes)} change(s) were kept, not applied${refused}`
              : `-- the run's changes went through the gate: ${applied.join(', ') || 'none applied'}${refused}${conflicts}`,
        });
      } else if (e.t === 'swept') {
        const what = `${quoted(e.path)}, which the command made and git or hoop would act on`;
        tail.push({ at: e.at, text: e.to ? `-- hoop moved ${what}, to ${quoted(e.to)}` : `-- hoop could not move ${what} (${String(e.error)})` });
      } else if (e.t === 'end') {
        if (sessions.length > 0) tail.push({ at: e.at, text: `-- the run's tunnels carried ${sessions.length} session(s): ${sessions.join(', ')}` });
        tail.push(...egressLines(e.at));
        egress.refused.clear();
        egress.allowed.clear();
        tail.push({
          at: e.at,
          text: `-- the run's command exited with ${String(e.exitCode)}${typeof e.signal === 'string' ? ` (${e.signal})` : ''}${typeof e.reason === 'string' ? `: ${e.reason}` : ''} after ${((Number(e.durationMs) || 0) / 1000).toFixed(1)} s`,
        });
      }
    }
    tail.push(...egressLines(realClock.now()));
    if (check.truncated) tail.push({ at: realClock.now(), text: "-- the run's record ends here: its CLI was stopped before the command ended" });
    return { head, tail };
  } finally {
    provider.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The sessions of run `runId` the caller may see, the first first. */
export async function sessionsOfRun(io: CliIo, flags: GatewayFlags, runId: string): Promise<string[]> {
  const provider = await commandTokenProvider(io, flags);
  try {
    const { sessions } = await listSessions({ gateway: provider.gateway, ca: provider.ca }, (await provider.current()).token, { run: runId });
    if (sessions.length === 0)
      throw new HoopError(ErrorCode.SESSION_UNKNOWN, `no sessions of run ${runId} that you may see`, {
        hint: '`hoop sessions ls --run ID` lists them; the id is the HOOP_RUN_ID hoop run gave its command',
      });
    return sessions.sort((a, b) => a.startedAt.localeCompare(b.startedAt)).map((s) => s.id);
  } finally {
    provider.close();
  }
}
