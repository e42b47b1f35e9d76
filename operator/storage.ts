/**
 * BucketStore checks, creates and removes a Registry's bucket with the `minio` client. It
 * never throws for S3 or network problems: ensure() returns them as a StorageState whose
 * reason the status reports (BucketExists, BucketCreated, BucketMissing, AccessDenied,
 * EndpointUnreachable).
 */
import http from 'node:http';
import https from 'node:https';
import { Client } from 'minio';
import type { StorageState } from './status.js';

export interface BucketTarget {
  endpoint: string;
  bucket: string;
  region: string;
  pathStyle: boolean;
  insecureSkipVerify: boolean;
  /** ca is a PEM bundle to trust for https endpoints. */
  ca?: string;
}

export interface Credentials {
  accessKey: string;
  secretKey: string;
}

export interface BucketStore {
  /** ensure checks the bucket and, when `create`, makes it if missing. */
  ensure(t: BucketTarget, c: Credentials, create: boolean): Promise<StorageState>;
  /** remove deletes every object and then the bucket; a missing bucket is fine. */
  remove(t: BucketTarget, c: Credentials): Promise<void>;
}

const DENIED = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
]);

function client(t: BucketTarget, c: Credentials): Client {
  const url = new URL(t.endpoint);
  const useSSL = url.protocol === 'https:';
  const port = url.port !== '' ? Number(url.port) : useSSL ? 443 : 80;
  const agent = useSSL
    ? new https.Agent({ keepAlive: false, ca: t.ca, rejectUnauthorized: !t.insecureSkipVerify })
    : new http.Agent({ keepAlive: false });
  return new Client({
    endPoint: url.hostname,
    port,
    useSSL,
    region: t.region,
    accessKey: c.accessKey,
    secretKey: c.secretKey,
    pathStyle: t.pathStyle,
    transportAgent: agent,
  });
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { code: 'ETIMEDOUT' })),
      ms,
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** classify turns an S3 or network error into a StorageState. */
export function classify(err: unknown, t: BucketTarget): StorageState {
  const code = (err as { code?: unknown }).code;
  const msg = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && DENIED.has(code))
    return { ready: false, reason: 'AccessDenied', message: `${t.endpoint}: ${code}: ${msg}` };
  return { ready: false, reason: 'EndpointUnreachable', message: `${t.endpoint}: ${msg}` };
}

export class MinioBucketStore implements BucketStore {
  constructor(private readonly timeoutMs = 5_000) {}

  async ensure(t: BucketTarget, c: Credentials, create: boolean): Promise<StorageState> {
    const s3 = client(t, c);
    try {
      if (await withTimeout(s3.bucketExists(t.bucket), this.timeoutMs, 'bucket check')) {
        return { ready: true, reason: 'BucketExists', message: `bucket ${t.bucket} exists` };
      }
      if (!create) {
        return {
          ready: false,
          reason: 'BucketMissing',
          message: `bucket ${t.bucket} does not exist and bucketManagement is Unmanaged`,
        };
      }
      await withTimeout(s3.makeBucket(t.bucket, t.region), this.timeoutMs, 'bucket create');
      return { ready: true, reason: 'BucketCreated', message: `bucket ${t.bucket} created` };
    } catch (err) {
      return classify(err, t);
    }
  }

  async remove(t: BucketTarget, c: Credentials): Promise<void> {
    const s3 = client(t, c);
    if (!(await withTimeout(s3.bucketExists(t.bucket), this.timeoutMs, 'bucket check'))) return;
    const names: string[] = [];
    const stream = s3.listObjectsV2(t.bucket, '', true);
    for await (const item of stream as AsyncIterable<{ name?: string }>) {
      if (item.name !== undefined) names.push(item.name);
    }
    for (let i = 0; i < names.length; i += 1000) {
      await s3.removeObjects(t.bucket, names.slice(i, i + 1000));
    }
    const uploads = s3.listIncompleteUploads(t.bucket, '', true);
    for await (const u of uploads as AsyncIterable<{ key?: string }>) {
      if (u.key !== undefined) await s3.removeIncompleteUpload(t.bucket, u.key);
    }
    await s3.removeBucket(t.bucket);
  }
}
