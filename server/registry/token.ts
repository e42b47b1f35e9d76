import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
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

  /**
   * mintId names a new upload of `name` in UUID form (version 8) that certifies its own
   * birth: bytes 0–5 the start time in ms, byte 6 the version and the algorithm, then 38
   * random bits and a 32-bit MAC over the repository and the rest. A client that drops the
   * Location's query (zot's zb does) still names a session its POST never wrote.
   */
  mintId(name: string, startedAt: number, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
    const b = randomBytes(16);
    b.writeUIntBE(startedAt, 0, 6);
    b[6] = 0x80 | (algorithm === 'sha512' ? 1 : 0);
    b[8] = 0x80 | (b[8]! & 0x3f);
    this.idMac(name, b).copy(b, 12);
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /**
   * birth is what an id from `mintId` for `name` certifies, as the token of its POST's
   * Location (offset 0); undefined for any other id.
   */
  birth(name: string, id: string): UploadToken | undefined {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id))
      return undefined;
    const b = Buffer.from(id.replaceAll('-', ''), 'hex');
    if ((b[6]! & 0x0e) !== 0 || !timingSafeEqual(b.subarray(12), this.idMac(name, b))) {
      return undefined;
    }
    const t: UploadToken = { name, id, offset: 0, startedAt: b.readUIntBE(0, 6) };
    if ((b[6]! & 1) === 1) t.algorithm = 'sha512';
    return t;
  }

  private idMac(name: string, id: Buffer): Buffer {
    return createHmac('sha256', this.secret)
      .update(`upload-id\0${name}\0`)
      .update(id.subarray(0, 12))
      .digest()
      .subarray(0, 4);
  }

  /**
   * sealCursor hides a listing position the caller may not see (a repository name it may not
   * pull) in an opaque `last` value: `~` + base64url(AES-256-GCM). Repository names never start
   * with `~`, so `openCursor` tells the two apart.
   */
  sealCursor(name: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.cursorKey(), iv);
    const body = Buffer.concat([c.update(name, 'utf8'), c.final()]);
    return '~' + Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url');
  }

  /**
   * openCursor returns the name a `last` value stands for: itself, or what `sealCursor`
   * hid. Throws PAGINATION_NUMBER_INVALID for a sealed value this secret did not seal.
   */
  openCursor(last: string): string {
    if (!last.startsWith('~')) return last;
    const raw = Buffer.from(last.slice(1), 'base64url');
    try {
      if (raw.length < 28) throw new Error('short');
      const d = createDecipheriv('aes-256-gcm', this.cursorKey(), raw.subarray(0, 12));
      d.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
    } catch {
      throw Errors.paginationInvalid({ last: last.slice(0, 100) }, undefined, 'invalid last');
    }
  }

  private cursorKey(): Buffer {
    return createHmac('sha256', this.secret).update('catalog-cursor').digest();
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
