/**
 * The recorder, as a stage (./stages.ts): each line the agent sent, what the masking detectors
 * find in it as keyed hashes (./masking.ts), and each line it received, as the bytes crossed
 * (./records.ts).
 */
import { AHEAD_CHARS, type MaskingRules } from '../../policy/masking/rules.js';
import type { RecordingStream } from '../../recording/thread.js';
import { redactedLineAhead } from './line-ahead.js';
import { redactedLine } from '../../policy/masking/json-values.js';
import { MCP_FROM_AGENT, MCP_TO_AGENT, recordLine } from './records.js';
import type { McpStage } from './stages.js';

/** A name per recorder, for the worker to take each session's long lines in turn with others'. */
let recorders = 0;

/** See the module documentation. */
export class McpRecorder implements McpStage {
  readonly #stream: RecordingStream;
  readonly #rules: MaskingRules | undefined;
  readonly #key: Buffer | undefined;
  /** Whose long lines these are, for the worker's turns. */
  readonly #owner = `mcp-record-${++recorders}`;

  constructor(stream: RecordingStream, rules: MaskingRules | undefined, key: Buffer | undefined) {
    this.#stream = stream;
    this.#rules = rules;
    this.#key = key;
  }

  agentLine(text: string): void | Promise<void> {
    const detectors = this.#rules?.detectors;
    // A long line is read by the detectors in the worker: the relay takes no more of the agent's lines meanwhile.
    if (text.length >= AHEAD_CHARS && detectors?.length) return redactedLineAhead({ text, detectors, key: this.#key }, this.#owner).then((line) => recordLine(this.#stream, MCP_FROM_AGENT, line));
    recordLine(this.#stream, MCP_FROM_AGENT, redactedLine(text, this.#rules, this.#key));
  }

  sent(line: string): void {
    recordLine(this.#stream, MCP_TO_AGENT, line);
  }
}
