/**
 * What the HTTP bench's policy judges and masks by (./http-lane.ts's gateway, ./http-relay-cost.ts's
 * relay): rules that judge every request (none matches the bench's), two masking detectors.
 */
export const HTTP_BENCH_RULES = `masking:
  detectors:
    - { detector: payment-card, strategy: last4 }
    - { detector: email, strategy: redact }
http:
  rules:
    - { name: no-admin, match: { paths: ["/admin/**"] }, action: deny }
    - { name: refunds-reviewed, match: { methods: [POST], paths: ["/refunds"] }, action: review }
`;
