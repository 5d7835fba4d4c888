/**
 * Records as the gateway keeps them (reviews, alerts, runs, direct credentials, CLIs' record
 * states, session summaries), each well-formed, for tests that write a store's files or rows
 * themselves; and a logger whose lines a test reads.
 */
import type { RaisedAlert } from '../../src/api/answers.js';
import type { DirectRecord } from '../../src/gateway/credentials/direct-credentials.js';
import type { ClientRecordState } from '../../src/gateway/records/client-records.js';
import type { SessionSummary } from '../../src/api/answers.js';
import type { RunRecord } from '../../src/gateway/runs/runs.js';
import { createLogger, type Logger } from '../../src/log.js';
import type { Review } from '../../src/policy/review-record.js';

const AT = '2026-11-25T10:00:00.000Z';
/** A time well ahead of any test's clock. */
const LATER = '2999-01-01T00:00:00.000Z';
const owner = { issuer: 'https://idp', subject: 'alice', kind: 'user' as const, groups: ['dev'] };

export const storedReview = (id: string): Review => ({
  id,
  state: 'pending',
  kind: 'statement',
  session: 'session-1234',
  connection: 'app',
  requester: { subject: 'alice', issuer: 'https://idp', groups: ['dev'] },
  sql: 'delete from t',
  digest: 'ab'.repeat(32),
  reason: 'rule "r" holds it',
  groups: ['dba'],
  approvals: 1,
  selfApprove: false,
  windowMs: 0,
  decisions: [],
  createdAt: AT,
  expiresAt: LATER,
});

export const storedAlert = (id: string): RaisedAlert => ({
  id,
  rule: 'refusals',
  event: 'refused',
  per: 'identity',
  subject: 'mallory',
  issuer: 'https://idp',
  count: 3,
  withinMs: 60_000,
  evidence: [{ at: AT, session: 'session-1234', reason: 'no' }],
  raisedAt: AT,
  suspend: true,
  clearedBy: ['sec'],
  state: 'open',
});

export const storedRun = (id: string, hex: string): RunRecord => ({
  id,
  agent: 'claude',
  via: 'run',
  isolation: 'none',
  connections: ['app'],
  createdAt: AT,
  expiresAt: LATER,
  heartbeatAt: LATER,
  heartbeatTimeoutMs: 60_000,
  ownerExpiresAt: LATER,
  owner,
  tokenHash: hex.repeat(64),
  controlHash: hex.repeat(32).concat('0'.repeat(32)),
});

export const storedDirect = (id: string): DirectRecord => ({
  id,
  connection: 'app',
  owner,
  createdAt: AT,
  expiresAt: LATER,
  scram: { salt: 'c2FsdA==', iterations: 4096, storedKey: 'a2V5', serverKey: 'a2V5' },
});

export const storedClientState = (kind: ClientRecordState['kind'], id: string): ClientRecordState => ({
  kind,
  id,
  issuer: 'https://idp',
  subject: 'alice',
  state: 'uploading',
  pending: 10,
  bytes: 10,
  updatedAt: AT,
});

export const storedSummary = (id: string): SessionSummary => ({
  id,
  subject: 'alice',
  issuer: 'https://idp',
  groups: [],
  kind: 'user',
  connection: 'app',
  type: 'postgres',
  remote: '127.0.0.1:5000',
  startedAt: AT,
  endedAt: AT,
  reason: 'client-terminated',
  statements: 1,
  refused: 0,
  tables: [],
  written: [],
  tablesComplete: true,
  maskedColumns: [],
  recording: 'complete',
  bytesFromClient: 0,
  bytesToClient: 0,
});

/** A logger at `warn` whose lines land in `lines`, parsed. */
export function loggedLines(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: createLogger({ level: 'warn', sink: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } }) };
}
