/**
 * The decoders of the records each lane's recordings keep (format 3, src/recording/record-chunks.ts),
 * by the protocol a recording names (an engine's `recordProtocol`): one entry per lane, read by the
 * gateway and by the CLI alike.
 */
import * as http from '../http/pipeline/records.js';
import * as mcp from '../mcp/pipeline/records.js';
import * as mysql from '../mysql/pipeline/records.js';
import * as postgres from '../postgres/pipeline/recording/encoder.js';
import type { RecordEncoderModule } from '../recording/thread.js';
import * as ssh from '../ssh/common/recorder.js';

export const RECORD_DECODERS: Readonly<Record<string, RecordEncoderModule>> = { postgres, ssh, mysql, mcp, http };
