/**
 * The JSON bodies the gateway API takes, one schema each, shared by both ends: the CLI types what
 * it sends with them, the gateway checks what it receives with them and answers the first problem
 * (400, its message naming the field). What only the gateway can judge (whether an agent's name
 * is well-formed once normalised, whether a device key's proof holds, whether a rule admits the
 * ask) it checks after.
 *
 * @see https://zod.dev/api (schemas)
 * @see https://www.rfc-editor.org/rfc/rfc8259 (JSON)
 */
import { ErrorCode, HoopError } from '../errors.js';
import * as z from 'zod';

/** Most connections one run may name. */
export const MAX_RUN_CONNECTIONS = 64;
/** Longest reason a reviewer or a requester gives. */
export const MAX_REASON_CHARS = 1_000;
/** Longest command line a run reports. */
export const MAX_RUN_COMMAND_CHARS = 4_096;
/** Longest prompt a run says it was given (what an automated reviewer reads). */
export const MAX_RUN_PROMPT_CHARS = 16_384;

const object = <T extends z.ZodRawShape>(fields: string, shape: T) => z.object(shape, { error: `the request body must be a JSON object ${fields}` });

/** Messages of `POST /v1/runs`, one per field (every check of a field says the same). */
export const RUN_ASK_MESSAGES = {
  connections: `connections must list the run's connections (0 to ${MAX_RUN_CONNECTIONS} names; none: the run reaches only the runbooks its agent may run)`,
  agent: 'agent must be a name such as claude or ci-deploy',
  via: 'via must be run or mcp',
  isolation: 'isolation must say how the command is contained (bwrap, …) or none',
  command: `command must be a text of at most ${MAX_RUN_COMMAND_CHARS} characters`,
  prompt: `prompt must be a text of at most ${MAX_RUN_PROMPT_CHARS} characters`,
  apply: 'apply must be gate (the command writes a layer of its own, applied through the gate) or live (it writes the tree itself)',
};

/** `POST /v1/runs`: what a person asks for when a run begins. */
export const runAskBody = object('{ connections, agent, via, isolation }', {
  connections: z
    .array(z.string(RUN_ASK_MESSAGES.connections).min(1, RUN_ASK_MESSAGES.connections).max(128, RUN_ASK_MESSAGES.connections), RUN_ASK_MESSAGES.connections)
    .max(MAX_RUN_CONNECTIONS, RUN_ASK_MESSAGES.connections),
  agent: z.string(RUN_ASK_MESSAGES.agent).optional(),
  via: z.enum(['run', 'mcp'], RUN_ASK_MESSAGES.via).optional(),
  isolation: z.string(RUN_ASK_MESSAGES.isolation).regex(/^[a-z][a-z0-9-]{0,31}$/, RUN_ASK_MESSAGES.isolation),
  command: z.string(RUN_ASK_MESSAGES.command).max(MAX_RUN_COMMAND_CHARS, RUN_ASK_MESSAGES.command).optional(),
  prompt: z.string(RUN_ASK_MESSAGES.prompt).max(MAX_RUN_PROMPT_CHARS, RUN_ASK_MESSAGES.prompt).optional(),
  /** How its command's changes reach the tree it works in (its hoop's word, as `isolation` is); absent: a run with no command (`hoop mcp`). */
  apply: z.enum(['gate', 'live'], RUN_ASK_MESSAGES.apply).optional(),
});
export type RunAskBody = z.infer<typeof runAskBody>;

/** `POST /v1/runs/{id}/heartbeat`: the person's current token, so the run lives no longer than their sign-in. */
export const runHeartbeatBody = object('{ personToken? }', { personToken: z.unknown().optional() });
export type RunHeartbeatBody = { personToken?: string };

/** Most refused connections one `POST /v1/runs/{id}/egress` reports. */
export const MAX_EGRESS_REPORTS = 100;

/** `POST /v1/runs/{id}/egress`: connections the run's command asked for and its hoop refused (not in `runs.egress`). */
export const runEgressBody = object('{ refused: [{ host, port, at }] }', {
  refused: z
    .array(
      z.strictObject({
        host: z.string().min(1).max(255),
        port: z.number().int().min(0).max(65_535),
        at: z.iso.datetime(),
      }),
    )
    .min(1)
    .max(MAX_EGRESS_REPORTS),
});
export type RunEgressBody = z.infer<typeof runEgressBody>;

const REQUEST = {
  connection: 'connection must be a connection name',
  mode: 'mode must be read-only or read-write',
  seconds: 'seconds must be a whole number of seconds, at least 1',
  reason: `reason must say why, in at most ${MAX_REASON_CHARS} characters`,
};

/** `POST /v1/requests`: temporary access asked for under a requestable access rule. */
export const accessRequestBody = object('{ connection, mode?, seconds, reason }', {
  connection: z.string(REQUEST.connection).min(1, REQUEST.connection),
  mode: z.enum(['read-only', 'read-write'], REQUEST.mode).default('read-only'),
  seconds: z.number(REQUEST.seconds).int(REQUEST.seconds).min(1, REQUEST.seconds),
  reason: z
    .string(REQUEST.reason)
    .max(MAX_REASON_CHARS, REQUEST.reason)
    .refine((r) => r.trim() !== '', REQUEST.reason)
    .transform((r) => r.trim()),
});
export type AccessRequestBody = z.input<typeof accessRequestBody>;

const DECISION_REASON = `reason must be a text of at most ${MAX_REASON_CHARS} characters`;

/** `POST /v1/reviews/{id}/approve|deny`: the reviewer's reason (a denial needs one; the gateway says so). Absent, null or `{}` for none. */
export const reviewDecisionBody = object('{ "reason": "…" }', {
  reason: z.string(DECISION_REASON).max(MAX_REASON_CHARS, DECISION_REASON).optional(),
}).nullish();
export type ReviewDecisionBody = NonNullable<z.infer<typeof reviewDecisionBody>>;

const CLEAR_REASON = `reason must say why the alert is cleared, in at most ${MAX_REASON_CHARS} characters`;

/** `POST /v1/alerts/{id}/clear`: why (it is on the record). */
export const alertClearBody = object('{ "reason": "…" }', {
  reason: z
    .string(CLEAR_REASON)
    .max(MAX_REASON_CHARS, CLEAR_REASON)
    .refine((r) => r.trim() !== '', CLEAR_REASON)
    .transform((r) => r.trim()),
});
export type AlertClearBody = z.input<typeof alertClearBody>;

/** `POST /v1/devices`: the public half of a device key, its name, and the proof that the caller holds the private half (each checked by the gateway, which alone knows the token the proof is bound to). */
export const deviceRegistrationBody = object('{ publicKey, name, proof }', {
  publicKey: z.unknown().optional(),
  name: z.unknown().optional(),
  proof: z.unknown().optional(),
  ephemeral: z.boolean('ephemeral must be true or false').optional(),
});
export type DeviceRegistrationBody = { publicKey: string; name: string; proof: string; ephemeral?: boolean };

/** A body that does not fit its schema: the first problem, in the schema's words, and the field it is about (none: the body itself). */
export class BodyProblem extends HoopError {
  constructor(
    message: string,
    readonly field: string | undefined,
  ) {
    super(ErrorCode.USAGE, message);
  }
}

/** `body` checked against `schema`: the value, or a {@link BodyProblem} saying the first issue. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  throw new BodyProblem(issue.message, issue.path.length > 0 ? String(issue.path[0]) : undefined);
}

const CANCEL = 'processId and secretKey must be the whole numbers (0 to 4294967295) of the BackendKeyData the session was given';
const uint32 = z.number(CANCEL).int(CANCEL).min(0, CANCEL).max(0xffffffff, CANCEL);

/**
 * `POST /v1/connections/{name}/cancel`: a PostgreSQL CancelRequest's key, as the session's
 * BackendKeyData gave it (what `hoop connect` sends for a client's Ctrl-C, with no session of its own).
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 */
export const cancelBody = object('{ processId, secretKey }', { processId: uint32, secretKey: uint32 });
export type CancelBody = z.infer<typeof cancelBody>;

const SECONDS = { error: 'seconds must be a whole number of seconds' };
/** `POST /v1/connections/{name}/direct` and `POST /v1/direct/{id}/renew`: how long the credential lives from now (the gateway bounds it). */
export const directBody = object('{ seconds? }', { seconds: z.number(SECONDS).int(SECONDS).optional() });
export type DirectBody = z.infer<typeof directBody>;
