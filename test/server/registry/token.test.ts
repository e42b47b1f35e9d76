import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Tokens } from '../../../server/registry/token.js';

describe('upload state tokens', () => {
  const tokens = new Tokens('secret-one');

  it('GIVEN a signed token WHEN verified THEN its fields come back; tampered or foreign ones are BLOB_UPLOAD_INVALID', () => {
    const t = { name: 'a/b', id: 'x', offset: 42, startedAt: 1_700_000_000_000 };
    const signed = tokens.sign({ ...t, algorithm: 'sha512' });
    expect(tokens.verify(signed)).toEqual({ ...t, algorithm: 'sha512' });
    const raw = Buffer.from(signed, 'base64url');
    raw.writeUInt8(raw.readUInt8(raw.length - 2) ^ 1, raw.length - 2);
    expect(() => tokens.verify(raw.toString('base64url'))).toThrow('blob upload invalid');
    expect(() => new Tokens('secret-two').verify(signed)).toThrow('blob upload invalid');
  });
});

describe('self-certifying upload ids', () => {
  const tokens = new Tokens('secret-one');
  const at = Date.UTC(2026, 10, 23, 19, 0, 0, 123);

  it('GIVEN a minted id WHEN read back for its repository THEN it is a version-8 UUID naming its start time and algorithm at offset 0', () => {
    const id = tokens.mintId('lib/app', at);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(tokens.birth('lib/app', id)).toEqual({
      name: 'lib/app',
      id,
      offset: 0,
      startedAt: at,
    });
    const long = tokens.mintId('lib/app', at, 'sha512');
    expect(tokens.birth('lib/app', long)?.algorithm).toBe('sha512');
  });

  it('GIVEN two ids minted in the same millisecond WHEN compared THEN they differ', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => tokens.mintId('lib/app', at)));
    expect(ids.size).toBe(1000);
  });

  it('GIVEN an id for another repository, another secret, a flipped bit or a random UUID WHEN read THEN it certifies nothing', () => {
    const id = tokens.mintId('lib/app', at);
    expect(tokens.birth('lib/other', id)).toBeUndefined();
    expect(new Tokens('secret-two').birth('lib/app', id)).toBeUndefined();
    for (let i = 0; i < id.length; i++) {
      if (id[i] === '-') continue;
      const flipped = (parseInt(id[i]!, 16) ^ 1).toString(16);
      const bad = id.slice(0, i) + flipped + id.slice(i + 1);
      expect(tokens.birth('lib/app', bad), bad).toBeUndefined();
    }
    expect(tokens.birth('lib/app', randomUUID())).toBeUndefined();
    expect(tokens.birth('lib/app', 'not-an-id')).toBeUndefined();
  });
});
