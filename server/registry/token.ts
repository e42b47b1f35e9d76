import { createHmac, timingSafeEqual } from 'node:crypto';
import { Errors } from '../errors.js';

/** UploadToken is what an upload Location's `_state` parameter carries. */
export interface UploadToken {
  name: string;
  id: string;
  offset: number;
  startedAt: number;
  /** algorithm the upload is hashed with, when not sha256 (a session not saved yet needs it). */
  algorithm?: 'sha256' | 'sha512';
}

/**
 * Tokens signs and verifies upload state tokens: base64url(HMAC-SHA256(secret, json) ‖
 * json). Any replica holding the same secret accepts a token another one issued.
 */
export class Tokens {
  constructor(private readonly secret: string) {}

  sign(t: UploadToken): string {
    const fields: Record<string, unknown> = { n: t.name, i: t.id, o: t.offset, t: t.startedAt };
    if (t.algorithm !== undefined && t.algorithm !== 'sha256') fields.a = t.algorithm;
    const json = Buffer.from(JSON.stringify(fields));
    const mac = createHmac('sha256', this.secret).update(json).digest();
    return Buffer.concat([mac, json]).toString('base64url');
  }

  /** verify returns the token's content, or throws BLOB_UPLOAD_INVALID. */
  verify(token: string): UploadToken {
    const raw = Buffer.from(token, 'base64url');
    const invalid = () => Errors.blobUploadInvalid({ reason: 'invalid upload state token' });
    if (raw.length <= 32) throw invalid();
    const mac = raw.subarray(0, 32);
    const json = raw.subarray(32);
    const want = createHmac('sha256', this.secret).update(json).digest();
    if (!timingSafeEqual(mac, want)) throw invalid();
    try {
      const v = JSON.parse(json.toString('utf8')) as {
        n: string;
        i: string;
        o: number;
        t: number;
        a?: string;
      };
      const out: UploadToken = { name: v.n, id: v.i, offset: v.o, startedAt: v.t };
      if (v.a === 'sha512') out.algorithm = 'sha512';
      return out;
    } catch {
      throw invalid();
    }
  }
}
