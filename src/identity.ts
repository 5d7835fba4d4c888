/**
 * Who is calling, as the gateway verified it: from a token of a trusted issuer
 * (src/gateway/identity/verify-token.ts), or from a run credential it issued itself (src/gateway/runs/runs.ts),
 * which names the person the run acts for and the run.
 */
import * as z from 'zod';
import { recordObject } from './stored-record.js';

/** Who is calling, as the gateway verified it. */
export interface Identity {
  /** The subject claim, or for a workload the subject its matching rule gives. */
  subject: string;
  issuer: string;
  /** `user` for people, `workload` for CI jobs and services (from the issuer's configuration). */
  kind: 'user' | 'workload';
  /** Absent when the token has none, or says `email_verified: false`. */
  email?: string;
  groups: string[];
  expiresAt: Date;
  /** Every claim of the verified token (none for a run credential). */
  claims: Record<string, unknown>;
  /** Set when the caller holds a run credential: the agent's run, acting for the person above. */
  run?: RunGrant;
}

/** What a run credential grants, as the gateway issued it (never as a client says); kept with a run's direct credentials and read back with this schema. */
export const runGrantSchema = recordObject({
  /** The run's id (`run-…`), the gateway's. */
  id: z.string().min(1),
  agent: z.string(),
  via: z.enum(['run', 'mcp']),
  /** Whether the run's command was contained (`isolation` other than `none` when the run began). */
  isolated: z.boolean(),
  /** The connections the run may use, and no others. */
  connections: z.array(z.string()),
  /** What its person said the run is for, in their words. */
  prompt: z.string().optional(),
});
export type RunGrant = z.infer<typeof runGrantSchema>;
