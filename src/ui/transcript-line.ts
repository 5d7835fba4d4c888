/** One piece of a transcript (./transcript.ts): what to print, and when (ms since the epoch). */
export interface TranscriptLine {
  at: number;
  text: string;
  /** The statement was refused by the policy. */
  denied?: boolean;
}
