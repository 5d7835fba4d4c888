/**
 * The recorder, as a stage (./stages.ts): each line the agent sent, what the masking detectors
 * find in it as keyed hashes (./masking.ts), and each line it received, as the bytes crossed
 * (./records.ts).
 */
import type { MaskingRules } from '../../policy/masking/rules.js';
import type { RecordingStream } from '../../recording/thread.js';
import { redactedLine } from './masking.js';
import { MCP_FROM_AGENT, MCP_TO_AGENT, recordLine } from './records.js';
import type { McpStage } from './stages.js';

/** See the module documentation. */
export class McpRecorder implements McpStage {
  readonly #stream: RecordingStream;
  readonly #rules: MaskingRules | undefined;
  readonly #key: Buffer | undefined;

  constructor(stream: RecordingStream, rules: MaskingRules | undefined, key: Buffer | undefined) {
    this.#stream = stream;
    this.#rules = rules;
    this.#key = key;
  }

  agentLine(text: string): void {
    recordLine(this.#stream, MCP_FROM_AGENT, redactedLine(text, this.#rules, this.#key));
  }

  sent(line: string): void {
    recordLine(this.#stream, MCP_TO_AGENT, line);
  }
}
