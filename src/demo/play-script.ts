/**
 * `hoop demo --script`: the scripted agent's session (./script.ts) played through a running demo,
 * with what it checks along the way done by the demo's own commands: the recording verified, an
 * agent under `hoop run`, the reviewer's decisions, the person's own session, the alerts, SSH.
 */
import type { RoundTrip } from '../postgres/wire/client.js';
import type { RunningDemo } from './demo.js';
import { runDemoScript } from './script.js';

/** Plays the script through `demo`; resolves its transcript and whether every outcome was as the demo policy says. */
export async function playDemoScript(demo: RunningDemo): Promise<{ transcript: string[]; ok: boolean }> {
  const before = await demo.recordedSessions();
  const session = await demo.openSession();
  try {
    const personRun = async (sql: string): Promise<RoundTrip> => {
      const own = await demo.openSession();
      try {
        return await own.run(sql);
      } finally {
        own.close();
      }
    };
    return await runDemoScript(session, {
      recording: () => demo.verifyLastSession(before),
      runAgent: (prompt, sql) => demo.runAgent(prompt, sql),
      review: (decision, reason, id) => demo.review(decision, reason, id),
      agentWrite: (sql) => demo.runAgentWrite(sql),
      personRun,
      alerts: () => demo.alerts(),
      ...(demo.runSsh ? { runSsh: demo.runSsh } : {}),
      ...(demo.reviewedAgent ? { reviewedAgent: demo.reviewedAgent } : {}),
      runbook: (argv) => demo.runbook(argv),
      runbookAgent: (tool, args) => demo.runbookAgent(tool, args),
    });
  } finally {
    session.close();
  }
}
