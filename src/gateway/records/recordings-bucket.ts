/**
 * The bytes of recording files in an S3-compatible bucket (`store.recordings` in the gateway
 * configuration), with their index in the PostgreSQL store (./recordings-postgres.ts): each file
 * of session `s` is the object `<prefix><s>/<name>`, byte for byte as the recording thread wrote
 * it, and its row in `hoop.recording_files` holds the object's key instead of the bytes.
 *
 * The gateway uses PutObject (each file, before its row), GetObject (listing, replay, verify),
 * ListBucket and DeleteObject (deleting recordings after `recording.retentionDays`, and older
 * checkpoints the recording replaced). Every error becomes STORE_UNAVAILABLE naming the bucket,
 * never a credential; the archive waits and retries as it does when PostgreSQL cannot be reached.
 *
 * The SDK is loaded only when a bucket is configured.
 *
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
 */
import { realClock } from '../../clock.js';
import type { S3Client } from '@aws-sdk/client-s3';
import { resolveSecret } from '../../config/secrets.js';
import { ErrorCode, HoopError, describeError } from '../../errors.js';
import type { RecordingBucketConfig } from '../config/config.js';

/** Where the archive keeps recording files' bytes when they are not in PostgreSQL. */
export interface RecordingBucket {
  /** The object key of file `name` of session `session`. */
  key(session: string, name: string): string;
  /** Stores `data` at `key` (written over when it is there). */
  put(key: string, data: Buffer): Promise<void>;
  /** The object at `key`; undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /** Deletes the objects at `keys` (those already gone are no error). */
  delete(keys: string[]): Promise<void>;
  /** Every key that starts with `prefix`. */
  list(prefix: string): Promise<string[]>;
  close(): void;
}

/** Credentials read again from their secret references this often (rotation needs no restart). */
const CREDENTIALS_TTL_MS = 5 * 60_000;
/** A request that cannot connect, or does not finish, fails (and the archive retries it later). */
const CONNECT_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 60_000;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;

type Sdk = typeof import('@aws-sdk/client-s3');

/**
 * The AWS SDK for S3, which hoop does not install with itself (21 MB for a gateway that keeps its
 * recordings on its own disk): a peer the operator adds beside hoop.
 *
 * @throws HoopError CONFIG_INVALID when it is not installed
 */
export async function loadSdk(importSdk: () => Promise<Sdk> = () => import('@aws-sdk/client-s3')): Promise<Sdk> {
  try {
    return await importSdk();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new HoopError(ErrorCode.CONFIG_INVALID, 'store.recordings needs the AWS SDK for S3 (@aws-sdk/client-s3), which hoop does not install by itself', {
      hint: 'install it beside hoop: npm install -g @aws-sdk/client-s3 (for a global hoop), or npm install @aws-sdk/client-s3 where hoop is installed',
    });
  }
}

/** See the module documentation. */
export class S3RecordingBucket implements RecordingBucket {
  readonly #sdk: Sdk;
  readonly #client: S3Client;
  readonly #config: RecordingBucketConfig;

  private constructor(sdk: Sdk, client: S3Client, config: RecordingBucketConfig) {
    this.#sdk = sdk;
    this.#client = client;
    this.#config = config;
  }

  /**
   * A client of the bucket of `config`; its credentials' secret references (if any) are resolved
   * now, so a missing one stops the start.
   *
   * @throws HoopError SECRET_UNRESOLVED
   */
  static async open(config: RecordingBucketConfig, env: NodeJS.ProcessEnv = process.env): Promise<S3RecordingBucket> {
    const refs = config.credentials;
    const credentials = refs
      ? async () => ({
          accessKeyId: await resolveSecret(refs.accessKeyId, env),
          secretAccessKey: await resolveSecret(refs.secretAccessKey, env),
          expiration: new Date(realClock.now() + CREDENTIALS_TTL_MS),
        })
      : undefined;
    if (credentials) await credentials();
    const sdk = await loadSdk();
    const client = new sdk.S3Client({
      region: config.region ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1'),
      ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
      forcePathStyle: config.forcePathStyle,
      ...(credentials ? { credentials } : {}),
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS },
      // S3-compatible services do not all know the checksum headers newer SDKs send by default.
      ...(config.endpoint !== undefined ? { requestChecksumCalculation: 'WHEN_REQUIRED' as const, responseChecksumValidation: 'WHEN_REQUIRED' as const } : {}),
      // The archive retries a failed batch itself, with its own back-off.
      maxAttempts: 2,
    });
    return new S3RecordingBucket(sdk, client, config);
  }

  /** `bucket`, or `bucket at endpoint`: for messages. */
  get name(): string {
    return this.#config.endpoint !== undefined ? `${this.#config.bucket} at ${this.#config.endpoint}` : this.#config.bucket;
  }

  key(session: string, name: string): string {
    return `${this.#config.prefix}${session}/${name}`;
  }

  async put(key: string, data: Buffer): Promise<void> {
    try {
      await this.#client.send(new this.#sdk.PutObjectCommand({ Bucket: this.#config.bucket, Key: key, Body: data, ContentLength: data.length }));
    } catch (err) {
      throw this.#error(err, `store ${key}`);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const out = await this.#client.send(new this.#sdk.GetObjectCommand({ Bucket: this.#config.bucket, Key: key }));
      return out.Body ? Buffer.from(await out.Body.transformToByteArray()) : Buffer.alloc(0);
    } catch (err) {
      if (err instanceof this.#sdk.NoSuchKey || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw this.#error(err, `read ${key}`);
    }
  }

  async delete(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const some = keys.slice(i, i + DELETE_BATCH);
      try {
        const out = await this.#client.send(new this.#sdk.DeleteObjectsCommand({ Bucket: this.#config.bucket, Delete: { Objects: some.map((Key) => ({ Key })), Quiet: true } }));
        const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
        if (failed.length > 0) throw new Error(`${failed.length} object(s) not deleted, e.g. ${failed[0]!.Key}: ${failed[0]!.Code ?? ''} ${failed[0]!.Message ?? ''}`.trim());
      } catch (err) {
        throw this.#error(err, `delete ${some.length} object(s)`);
      }
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    try {
      do {
        const out = await this.#client.send(new this.#sdk.ListObjectsV2Command({ Bucket: this.#config.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
        for (const o of out.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.#error(err, `list ${prefix}`);
    }
    return keys;
  }

  close(): void {
    this.#client.destroy();
  }

  #error(err: unknown, doing: string): HoopError {
    if (err instanceof HoopError) return err;
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const name = err instanceof Error && err.name !== 'Error' && !err.message.includes(err.name) ? `${err.name}: ` : '';
    return new HoopError(ErrorCode.STORE_UNAVAILABLE, `the recordings bucket ${this.name} could not ${doing}: ${name}${describeError(err)}${status ? ` (HTTP ${status})` : ''}`, {
      hint: "check that the bucket exists and is reachable, and that the gateway's credentials may put, get, list and delete objects in it; recording files wait in the data directory meanwhile",
      cause: err,
    });
  }
}
