import { Client as MinioClient } from 'minio';
import { startMinio } from '../../test/support/minio.js';

/**
 * BenchMinio is one MinIO server for the whole run, started by test/support/minio.ts with
 * public Prometheus metrics (MINIO_PROMETHEUS_AUTH_TYPE=public) so that the bench can count the S3 calls each registry makes (registries run one at a time).
 */
export interface BenchMinio {
  endpoint: string;
  port: number;
  accessKey: string;
  secretKey: string;
  client: MinioClient;
  makeBucket(name: string): Promise<void>;
  /** dropBucket deletes a bucket and everything in it (MinIO's force delete). */
  dropBucket(name: string): Promise<void>;
  /** calls returns the S3 API call counters (by API name) since MinIO started. */
  calls(): Promise<Map<string, number>>;
  /** pids: MinIO's process (for CPU accounting). */
  pids(): number[];
  stop(): Promise<void>;
}

export async function startBenchMinio(): Promise<BenchMinio> {
  const m = await startMinio({ env: { MINIO_PROMETHEUS_AUTH_TYPE: 'public' } });
  const { endpoint, port, accessKey, secretKey } = m;
  const client = new MinioClient({
    endPoint: '127.0.0.1',
    port,
    useSSL: false,
    accessKey,
    secretKey,
    region: 'us-east-1',
    pathStyle: true,
  });
  return {
    endpoint,
    port,
    accessKey,
    secretKey,
    client,
    pids: () => {
      const pid = m.pid();
      return pid === undefined ? [] : [pid];
    },
    async makeBucket(name) {
      if (!(await client.bucketExists(name))) await client.makeBucket(name, 'us-east-1');
    },
    async dropBucket(name) {
      if (!(await client.bucketExists(name))) return;
      await client.makeRequestAsync(
        { method: 'DELETE', bucketName: name, headers: { 'x-minio-force-delete': 'true' } },
        '',
        [204, 200],
      );
    },
    async calls() {
      const text = await (await fetch(`${endpoint}/minio/metrics/v3/api/requests`)).text();
      const out = new Map<string, number>();
      for (const m of text.matchAll(/^minio_api_requests_total\{name="([^"]+)"[^}]*\} (\S+)$/gm)) {
        out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
      }
      return out;
    },
    stop: () => m.stop(),
  };
}

/** CallDelta is the S3 calls made between two `calls()` snapshots, by API name. */
export function callDelta(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const d = new Map<string, number>();
  for (const [k, v] of b) {
    const n = v - (a.get(k) ?? 0);
    if (n > 0) d.set(k, n);
  }
  return d;
}

export function total(d: Map<string, number>): number {
  let t = 0;
  for (const v of d.values()) t += v;
  return t;
}

/** reads counts the calls that read (GET, HEAD, List*): the cost on a request's path. */
export function reads(d: Map<string, number>): number {
  let t = 0;
  for (const [k, v] of d) if (/^(Get|Head|List)/.test(k)) t += v;
  return t;
}

const SHORT: Record<string, string> = {
  HeadObject: 'Head',
  GetObject: 'Get',
  PutObject: 'Put',
  ListObjectsV2: 'List',
  ListObjectsV1: 'ListV1',
  CopyObject: 'Copy',
  DeleteObject: 'Del',
  DeleteMultipleObjects: 'DelN',
  NewMultipartUpload: 'MPnew',
  PutObjectPart: 'Part',
  CompleteMultipartUpload: 'MPdone',
  AbortMultipartUpload: 'MPabort',
  ListObjectParts: 'ListParts',
  CopyObjectPart: 'CopyPart',
};

/** perOp formats calls per operation, e.g. "1.0 (Head 1.0)". */
export function perOp(d: Map<string, number>, ops: number): string {
  if (ops <= 0) return '-';
  const parts = [...d.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${SHORT[k] ?? k} ${fmtN(v / ops)}`);
  const t = total(d);
  return parts.length === 0 ? '0' : `${fmtN(t / ops)} (${parts.slice(0, 3).join(', ')})`;
}

function fmtN(n: number): string {
  return n >= 10 ? n.toFixed(0) : n >= 1 ? n.toFixed(1) : n.toFixed(2);
}
