/** A gateway configured for a bucket, where the AWS SDK (a peer hoop does not install) is missing: it says what to install. */
import { describe, expect, it } from 'vitest';
import { isHoopError, ErrorCode } from '../../src/errors.js';
import { loadSdk } from '../../src/gateway/records/recordings-bucket.js';

describe('the AWS SDK for a bucket', () => {
  it('is loaded when installed, and when missing refuses with what to install', async () => {
    expect(typeof (await loadSdk()).S3Client).toBe('function');
    const missing = await loadSdk(() => Promise.reject(Object.assign(new Error("Cannot find package '@aws-sdk/client-s3'"), { code: 'ERR_MODULE_NOT_FOUND' }))).catch((e: unknown) => e);
    expect(isHoopError(missing, ErrorCode.CONFIG_INVALID)).toBe(true);
    expect((missing as Error).message).toContain('store.recordings needs the AWS SDK for S3 (@aws-sdk/client-s3)');
    expect((missing as { hint: string }).hint).toContain('npm install -g @aws-sdk/client-s3');
    // Any other failure is not taken for a missing SDK.
    const broken = new Error('syntax error in the SDK');
    await expect(loadSdk(() => Promise.reject(broken))).rejects.toBe(broken);
  });
});
