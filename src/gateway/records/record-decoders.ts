/** The decoders of the records each protocol's recordings keep (format 3, src/recording/record-chunks.ts), by the protocol a recording names. */
import * as mcp from '../../mcp/gateway/records.js';
import * as mysql from '../../mysql/pipeline/records.js';
import * as postgres from '../../postgres/pipeline/recording/encoder.js';
import type { RecordEncoderModule } from '../../recording/thread.js';
import * as ssh from '../../ssh/common/recorder.js';

export const RECORD_DECODERS: Readonly<Record<string, RecordEncoderModule>> = { postgres, ssh, mysql, mcp };
