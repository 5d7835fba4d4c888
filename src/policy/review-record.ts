/**
 * A review as the gateway keeps it and its API answers it: a statement held for review, or a
 * request for temporary access (src/gateway/reviews/reviews.ts), read by the CLI's `hoop review` and
 * `hoop request`.
 *
 * @see docs/architecture.md (§3.6, §4.4)
 */
import type { Via } from './principal.js';

/** Where a review stands. */
export type ReviewState = 'pending' | 'approved' | 'denied' | 'expired' | 'withdrawn';

/** Someone, as a review names them. */
export interface ReviewPerson {
  subject: string;
  issuer: string;
  email?: string;
}

/** One reviewer's decision. */
export interface ReviewDecision extends ReviewPerson {
  decision: 'approve' | 'deny';
  reason?: string;
  at: string;
}

/** A review as the API answers it and the history file keeps it. */
export interface Review {
  id: string;
  state: ReviewState;
  /** What waits: a statement of a session, or a request for temporary access (`hoop request`). */
  kind: 'statement' | 'access';
  /** The session of a statement (empty for an access request). */
  session: string;
  run?: string;
  /** How the session that raised it came, and its agent (an agent's run). */
  via?: Via;
  agent?: string;
  /** What the client last said its session was for (an MCP call's `intent`), in its words: a claim, not a fact. */
  intent?: string;
  /** What the person said the agent's run is for (`hoop run --prompt`), in their words: a claim, not a fact. */
  prompt?: string;
  connection: string;
  requester: ReviewPerson & { groups: string[] };
  sql: string;
  params?: Array<string | null>;
  /** What exactly would run (the held message's bytes and the SQL texts judged for it, SHA-256). */
  digest?: string;
  rule?: string;
  message?: string;
  reason: string;
  /** The settings it is decided under (without the notification targets). */
  groups: string[];
  approvals: number;
  selfApprove: boolean;
  windowMs: number;
  decisions: ReviewDecision[];
  createdAt: string;
  expiresAt: string;
  decidedAt?: string;
  /** Why it was withdrawn or expired without a decision, in words. */
  closedBecause?: string;
  /** Raised by a client that does not wait: it outlives its session (see the module documentation). */
  detached?: boolean;
  /** An approved detached review, once a later session ran its statement: that session, and when. */
  usedBy?: string;
  usedAt?: string;
  /**
   * An access request: the mode and how long (from its approval), the requester's reason, and once
   * approved until when the grant holds. `rule` is the requestable access rule it opens.
   */
  access?: { mode: 'read-only' | 'read-write'; seconds: number; reason: string; until?: string };
}
