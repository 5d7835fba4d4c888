/** Who is calling, as the gateway verified it from a token (see src/gateway/verify-token.ts). */
export interface Identity {
  /** The subject claim, or for a workload the subject its matching rule gives. */
  subject: string;
  issuer: string;
  /** `user` for people, `workload` for CI jobs and services (from the issuer's configuration). */
  kind: 'user' | 'workload';
  /** Absent when the token has none, or says `email_verified: false`. */
  email?: string;
  groups: string[];
  expiresAt: Date;
  /** Every claim of the verified token. */
  claims: Record<string, unknown>;
}
