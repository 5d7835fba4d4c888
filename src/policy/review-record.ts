/**
 * A review as the gateway keeps it and its API answers it: a statement held for review, or a
 * request for temporary access (src/gateway/reviews/reviews.ts), read by the CLI's `hoop review` and
 * `hoop request`.
 *
 * @see docs/internals.md (§3.6, §4.4)
 */
import * as z from 'zod';
import { recordObject, storedTime } from '../stored-record.js';
import { VIAS } from './principal.js';

/** Where a review stands, each state. */
export const REVIEW_STATES = ['pending', 'approved', 'denied', 'expired', 'withdrawn'] as const;

/** Where a review stands. */
export type ReviewState = (typeof REVIEW_STATES)[number];

const person = {
  subject: z.string(),
  issuer: z.string(),
  email: z.string().optional(),
};

/** Someone, as a review names them. */
export const reviewPersonSchema = recordObject(person);
export type ReviewPerson = z.infer<typeof reviewPersonSchema>;

/** One reviewer's decision. */
export const reviewDecisionSchema = recordObject({
  ...person,
  decision: z.enum(['approve', 'deny']),
  reason: z.string().optional(),
  at: storedTime,
});
export type ReviewDecision = z.infer<typeof reviewDecisionSchema>;

/**
 * A review as the API answers it and the gateway keeps it (the history file, `hoop.reviews`): read
 * back with this schema (../stored-record.ts).
 */
export const reviewSchema = recordObject({
  id: z.string().min(1),
  state: z.enum(REVIEW_STATES),
  /** What waits: a statement of a session, or a request for temporary access (`hoop request`). */
  kind: z.enum(['statement', 'access']),
  /** The session of a statement (empty for an access request). */
  session: z.string(),
  run: z.string().optional(),
  /** How the session that raised it came, and its agent (an agent's run). */
  via: z.enum(VIAS).optional(),
  agent: z.string().optional(),
  /** What the client last said its session was for (an MCP call's `intent`), in its words: a claim, not a fact. */
  intent: z.string().optional(),
  /** What the person said the agent's run is for (`hoop run --prompt`), in their words: a claim, not a fact. */
  prompt: z.string().optional(),
  connection: z.string(),
  requester: recordObject({ ...person, groups: z.array(z.string()) }),
  sql: z.string(),
  params: z.array(z.string().nullable()).optional(),
  /** What exactly would run (the held message's bytes and the SQL texts judged for it, SHA-256). */
  digest: z.string().optional(),
  rule: z.string().optional(),
  message: z.string().optional(),
  reason: z.string(),
  /** The settings it is decided under (without the notification targets). */
  groups: z.array(z.string()),
  approvals: z.number().int().min(1),
  selfApprove: z.boolean(),
  windowMs: z.number().min(0),
  decisions: z.array(reviewDecisionSchema),
  createdAt: storedTime,
  expiresAt: storedTime,
  decidedAt: storedTime.optional(),
  /** Why it was withdrawn or expired without a decision, in words. */
  closedBecause: z.string().optional(),
  /** Raised by a client that does not wait: it outlives its session (see the module documentation). */
  detached: z.boolean().optional(),
  /** An approved detached review, once a later session ran its statement: that session, and when. */
  usedBy: z.string().optional(),
  usedAt: storedTime.optional(),
  /** An approved held statement, once the gateway holding it claimed the approval to run it (a shared store's take-over expires one never claimed). */
  ranAt: storedTime.optional(),
  /**
   * An access request: the mode and how long (from its approval), the requester's reason, and once
   * approved until when the grant holds. `rule` is the requestable access rule it opens.
   */
  access: recordObject({ mode: z.enum(['read-only', 'read-write']), seconds: z.number().int().min(1), reason: z.string(), until: storedTime.optional() }).optional(),
});
export type Review = z.infer<typeof reviewSchema>;
