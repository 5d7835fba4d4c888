/**
 * Driving one direction of the PostgreSQL relay (src/postgres/pipeline/relay.ts) by hand: a stream
 * cut into chunks at chosen points goes through a path's pump step, and what it hands on comes
 * back as one Buffer (with the writes it was split into).
 */
import type { ResultMasker } from '../../src/postgres/pipeline/masking/result-masker.js';
import { ByteRun } from '../../src/byte-run.js';
import { MessageReader } from '../../src/postgres/wire/reader.js';
import { BackendPath } from '../../src/postgres/pipeline/relay.js';
import type { Decision, Stage } from '../../src/postgres/pipeline/stages.js';
import { decodeFrontend, type FrontendMessage } from '../../src/postgres/wire/frontend-messages.js';
import type { PumpOutput, PumpStep } from '../../src/tunnel/pump.js';

/** A {@link PumpOutput} that keeps every write. */
export function collectingOutput(): PumpOutput & { writes: Buffer[] } {
  const writes: Buffer[] = [];
  const out = {
    run: new ByteRun(),
    writes,
    flush() {
      writes.push(...out.run.take());
    },
  };
  return out;
}

/** Runs `stream`, cut at `cuts`, through `step`; resolves what it handed on. */
export async function through(step: PumpStep, stream: Buffer, cuts: number[] = []): Promise<Buffer> {
  const out = collectingOutput();
  let at = 0;
  for (const c of [...cuts, stream.length]) {
    await step(stream.subarray(at, c), out);
    out.flush();
    at = c;
  }
  return Buffer.concat(out.writes);
}

/** A whole frontend message (type, length, body), decoded as the relay decodes it. */
export function decoded(raw: Buffer): FrontendMessage {
  return decodeFrontend({ type: raw[0]!, body: raw.subarray(5), raw });
}

/** The bytes a stage sends upstream for a message: itself, or its replacements. */
export function sentBytes(out: Decision | FrontendMessage | readonly FrontendMessage[] | Promise<unknown>): Buffer[] {
  if (out instanceof Promise) throw new Error('the gate held the message for a review');
  const messages = 'send' in out ? out.send : Array.isArray(out) ? (out as readonly FrontendMessage[]) : [out as FrontendMessage];
  return messages.map((m) => m.msg!.raw);
}

/** A bare {@link ResultMasker} as a path's masking stage (no size limit). */
export function maskingStageOf(masker: ResultMasker): Stage {
  return {
    upstream: (m) => masker.frontend(m),
    wants: (type) => !((type === 0x44 || type === 0x64) && masker.passes(type)),
    backend: (_bytes, msg) => masker.backend(msg),
  };
}

/** Runs server bytes through a backend path with `masker`, whole or cut at `cuts`. */
export function throughMasker(masker: ResultMasker, stream: Buffer, cuts: number[] = []): Promise<Buffer> {
  return through(new BackendPath({ reader: new MessageReader({ side: 'backend' }), masking: maskingStageOf(masker) }).step, stream, cuts);
}
