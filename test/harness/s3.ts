/**
 * A real S3-compatible HTTP server for tests: s3rver (the S3 REST API over its own files), run in
 * this process on a loopback port, that can be stopped and started again on the same port and
 * files (as a bucket that goes away and comes back). Its credentials are s3rver's: S3RVER/S3RVER;
 * clients use path-style addressing.
 *
 * @see https://github.com/jamhall/s3rver
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './postgres.js';

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (options: { address: string; port: number; silent: boolean; directory: string; configureBuckets?: Array<{ name: string }> }) => S3rverInstance;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

/** s3rver accepts these (and signs its answers with them). */
export const S3_ACCESS_KEY = 'S3RVER';
export const S3_SECRET_KEY = 'S3RVER';

/** A running (or stopped) test bucket server. */
export interface TestS3 {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  bucket: string;
  /** A client of it (path-style). */
  client: S3Client;
  /** Stops answering (connections are refused) until {@link start}. */
  stop(): Promise<void>;
  /** Answers again, with the objects it held. */
  start(): Promise<void>;
  /** Every key under `prefix`, sorted. */
  keys(prefix?: string): Promise<string[]>;
  /** The bytes of the object at `key`. */
  object(key: string): Promise<Buffer>;
  close(): Promise<void>;
}

/** Starts s3rver with bucket `bucket` on a free loopback port. */
export async function startS3(bucket = 'hoop-recordings'): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), 'hoop-s3-'));
  const port = await freePort();
  let server: S3rverInstance | undefined;
  const start = async (): Promise<void> => {
    if (server) return;
    const s = new S3rver({ address: '127.0.0.1', port, silent: true, directory, configureBuckets: [{ name: bucket }] });
    await s.run();
    server = s;
  };
  const stop = async (): Promise<void> => {
    const s = server;
    server = undefined;
    await s?.close();
  };
  await start();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY } });
  return {
    endpoint,
    bucket,
    client,
    stop,
    start,
    async keys(prefix = '') {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const out = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
        for (const o of out.Contents ?? []) keys.push(o.Key!);
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
      return keys.sort();
    },
    async object(key) {
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await out.Body!.transformToByteArray());
    },
    async close() {
      client.destroy();
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
