/**
 * Property-based fuzzing of every parser that reads attacker-controlled input. Each property:
 * the parser returns, or throws a RegistryError (JwtError for tokens) below 500, never anything
 * else. CI runs a fixed seed; `node test/fuzz/run.mjs` runs many more cases with a fresh seed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { generateKeyPairSync } from 'node:crypto';
import { parseHtpasswd } from '../../server/auth/htpasswd.js';
import { JwtError, thumbprint, verifyJwt } from '../../server/auth/jwt.js';
import { parseScope } from '../../server/auth/service.js';
import { isRegistryError } from '../../server/errors.js';
import type { Ctx } from '../../server/http/context.js';
import { parseByteRange } from '../../server/http/handlers/blobs.js';
import { contentRange } from '../../server/http/params.js';
import { parseManifest } from '../../server/registry/manifest-parse.js';
import { parseDigest, parseName, parseReference } from '../../server/registry/reference.js';
import { archive, gzip } from '../support/archive.js';
import { authConfig } from '../support/auth.js';
import { image } from '../support/image.js';
import { startTestRegistry, type TestRegistry } from '../support/server.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20260601);
const RUNS = Number(process.env.FUZZ_RUNS ?? 500);
const opts = { seed: SEED, numRuns: RUNS };

/** clientError passes when fn returns or throws a client error of the one catalogue. */
function clientError(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (isRegistryError(err) && err.status < 500) return;
    if (err instanceof JwtError) return;
    throw err;
  }
}

/** Strings that look like the real thing, mutated. */
const nameish = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.stringMatching(/^[a-z0-9._\-/]{0,80}$/),
  fc.constantFrom('..', 'a/../b', 'a//b', '/a', 'a/', '%2e%2e', 'a\u0000b', 'A', 'a'.repeat(256)),
);
const digestish = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.stringMatching(/^(sha256|sha512|md5|SHA256):[a-fA-F0-9]{0,130}$/),
  fc.stringMatching(/^sha256:[a-z0-9=_\-+./]{60,70}$/),
);

describe('parser fuzzing (fixed seed)', () => {
  it('GIVEN any string WHEN parsed as a repository name THEN it is valid per the grammar or NAME_INVALID', () => {
    fc.assert(
      fc.property(nameish, (s) => {
        clientError(() => {
          const n = parseName(s);
          expect(n.length).toBeLessThanOrEqual(255);
          expect(n).not.toMatch(/\.\.|\/\/|^\/|\/$/);
        });
      }),
      opts,
    );
  });

  it('GIVEN any string WHEN parsed as a digest or reference THEN a valid value or a 4xx', () => {
    fc.assert(
      fc.property(fc.oneof(digestish, nameish), (s) => {
        clientError(() => {
          const d = parseDigest(s);
          expect(d.hex).toMatch(/^[a-f0-9]+$/);
        });
        clientError(() => parseReference(s));
      }),
      opts,
    );
  });

  it('GIVEN any Range header and size WHEN parsed THEN the range lies inside the blob or is unsatisfiable', () => {
    const header = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc
        .tuple(
          fc.option(fc.bigInt({ min: 0n, max: 10n ** 20n })),
          fc.option(fc.bigInt({ min: 0n, max: 10n ** 20n })),
        )
        .map(([a, b]) => `bytes=${a ?? ''}-${b ?? ''}`),
    );
    fc.assert(
      fc.property(header, fc.integer({ min: 0, max: 2 ** 40 }), (h, size) => {
        const r = parseByteRange(h, size);
        if (r === undefined || r === 'unsatisfiable') return;
        expect(r.start).toBeGreaterThanOrEqual(0);
        expect(r.end).toBeLessThan(size);
        expect(r.start).toBeLessThanOrEqual(r.end);
      }),
      opts,
    );
  });

  it('GIVEN any Content-Range header WHEN parsed THEN start <= end or BLOB_UPLOAD_INVALID', () => {
    const header = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `${a}-${b}`),
      fc
        .tuple(fc.bigInt({ min: 0n, max: 10n ** 18n }), fc.bigInt({ min: 0n, max: 10n ** 18n }))
        .map(([a, b]) => `bytes ${a}-${b}/*`),
    );
    fc.assert(
      fc.property(header, (h) => {
        const ctx = { get: (k: string) => (k === 'content-range' ? h : '') } as unknown as Ctx;
        clientError(() => {
          const r = contentRange(ctx);
          if (r) expect(r.start).toBeLessThanOrEqual(r.end);
        });
      }),
      opts,
    );
  });

  it('GIVEN any JSON-ish body and Content-Type WHEN parsed as a manifest THEN a manifest or MANIFEST_INVALID', () => {
    const descriptor = fc.record(
      {
        mediaType: fc.oneof(fc.string(), fc.constant('application/vnd.oci.image.layer.v1.tar')),
        digest: digestish,
        size: fc.oneof(fc.integer(), fc.double(), fc.string()),
        urls: fc.array(fc.string()),
        annotations: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer())),
      },
      { requiredKeys: [] },
    );
    const doc = fc.record(
      {
        schemaVersion: fc.oneof(fc.constant(2), fc.integer(), fc.string()),
        mediaType: fc.constantFrom(
          'application/vnd.oci.image.manifest.v1+json',
          'application/vnd.oci.image.index.v1+json',
          'application/vnd.docker.distribution.manifest.v2+json',
          'application/vnd.docker.distribution.manifest.list.v2+json',
          'text/plain',
        ),
        config: fc.oneof(descriptor, fc.string()),
        layers: fc.oneof(fc.array(descriptor, { maxLength: 5 }), fc.string()),
        manifests: fc.oneof(fc.array(descriptor, { maxLength: 5 }), fc.constant(null)),
        subject: descriptor,
        artifactType: fc.string(),
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      doc.map((d) => Buffer.from(JSON.stringify(d))),
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))),
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
    );
    const type = fc.option(
      fc.oneof(
        fc.string(),
        fc.constantFrom('application/vnd.oci.image.index.v1+json; charset=utf-8'),
      ),
    );
    fc.assert(
      fc.property(body, type, (b, t) => {
        clientError(() => parseManifest(b, t ?? undefined));
      }),
      opts,
    );
  });

  it('GIVEN any token WHEN verified THEN claims from the trusted key or a JwtError', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keys = [{ kid: thumbprint(pair.publicKey), key: pair.publicKey }];
    const part = fc.oneof(
      fc.string({ maxLength: 100 }),
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v)).toString('base64url')),
      fc
        .record(
          {
            alg: fc.constantFrom('ES256', 'RS256', 'none', 'HS256', 'EdDSA'),
            kid: fc.oneof(fc.string(), fc.constant(keys[0]!.kid)),
            jwk: fc.jsonValue(),
            x5c: fc.array(fc.string()),
          },
          { requiredKeys: [] },
        )
        .map((h) => Buffer.from(JSON.stringify(h)).toString('base64url')),
    );
    const token = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.tuple(part, part, part).map((p) => p.join('.')),
    );
    fc.assert(
      fc.property(token, (t) => {
        clientError(() =>
          verifyJwt(t, {
            keys,
            algorithms: ['ES256', 'RS256', 'EdDSA'],
            issuer: 'berth',
            audience: 'berth',
            now: 1e9,
          }),
        );
      }),
      opts,
    );
  });

  it('GIVEN any scope or htpasswd text WHEN parsed THEN no throw', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        const sc = parseScope(s);
        if (sc) expect(sc.actions.length).toBeGreaterThan(0);
        parseHtpasswd(s);
      }),
      opts,
    );
  });
});

describe.each([
  ['no auth', undefined],
  [
    'token auth',
    authConfig('token')
      .user('u', 'pw')
      .rule({ users: ['u'], repositories: ['**'], actions: ['pull', 'push'] })
      .anonymous('pub/**')
      .build(),
  ],
])('HTTP fuzzing against a listening server with %s (fixed seed)', (_label, auth) => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ config: auth ? { auth } : {} });
  });
  afterAll(async () => reg.close());

  it('GIVEN random paths, methods and Range/Content-Range/Authorization headers WHEN requested THEN never a 5xx', async () => {
    const seg = fc.oneof(
      nameish,
      digestish,
      fc.constantFrom('manifests', 'blobs', 'uploads', 'tags', 'list', 'referrers', '_catalog'),
    );
    const path = fc
      .array(seg, { minLength: 1, maxLength: 6 })
      .map((p) => `/v2/${p.map((x) => encodeURIComponent(x)).join('/')}`);
    const method = fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE');
    const header = fc.string({ maxLength: 80 }).map((s) => s.replace(/[^\x20-\x7e]/g, ''));
    await fc.assert(
      fc.asyncProperty(path, method, header, header, header, async (p, m, range, crange, auth) => {
        const r = await reg.fetch(p, {
          method: m,
          headers: { range, 'content-range': crange, authorization: auth },
          body: m === 'PUT' || m === 'PATCH' || m === 'POST' ? 'x' : undefined,
        });
        await r.arrayBuffer();
        expect(r.status, `${m} ${p}`).toBeLessThan(500);
      }),
      { seed: SEED, numRuns: Math.min(RUNS, 300) },
    );
  });
});

describe('import fuzzing against a listening server (fixed seed)', () => {
  let reg: TestRegistry;
  let archives: Buffer[];
  beforeAll(async () => {
    reg = await startTestRegistry();
    const img = image().layer(3000).layer(700).build();
    const sbom = image().artifact('application/vnd.example.sbom').layer(100).subject(img).build();
    archives = [
      await archive().image(img, 'fz/app:v1').referrer(sbom).oci(),
      await archive().image(img, 'fz/app:v2').docker('modern'),
      await archive().image(image().docker().layer(900).build(), 'fz/legacy:v1').docker('legacy'),
    ];
  });
  afterAll(async () => reg.close());

  it('GIVEN valid archives with bytes flipped, cut short, or gzipped WHEN imported THEN 200 or a 4xx, never a 5xx', async () => {
    const mutation = fc.record({
      which: fc.nat({ max: 2 }),
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
      cut: fc.option(fc.nat()),
      zip: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(mutation, async ({ which, flips, cut, zip }) => {
        let b = Buffer.from(archives[which]!);
        for (const [at, x] of flips) b[at % b.length] = b[at % b.length]! ^ x;
        if (cut !== null) b = b.subarray(0, cut % b.length);
        const r = await reg.fetch('/v2/_berth/import', {
          method: 'POST',
          body: zip ? gzip(b) : b,
        });
        const text = await r.text();
        expect(r.status, text).toBeLessThan(500);
      }),
      { seed: SEED, numRuns: Math.min(RUNS, 150) },
    );
  });
});
