import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  defaultsOf,
  withDefaults,
  type JsonSchema,
  type Resolved,
  type Written,
} from '../../../server/config/json-schema.js';
import { resolveEndpoint } from '../../../server/config/notifications.js';

const section = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    level: { type: 'string', enum: ['a', 'b'], default: 'a' },
    size: { type: 'integer', minimum: 1 },
    tags: { type: 'array', items: { type: 'string' }, default: ['x'] },
    entries: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string' },
          on: { type: 'boolean', default: true },
        },
      },
    },
    inner: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { n: { type: 'integer', default: 3 } },
    },
  },
} as const satisfies JsonSchema;

describe('withDefaults', () => {
  it('GIVEN nothing written WHEN resolving THEN every default is there, in schema order, and nothing else', () => {
    const d = defaultsOf(section);
    expect(d).toEqual({ level: 'a', tags: ['x'], inner: { n: 3 } });
    expect(Object.keys(d)).toEqual(['level', 'tags', 'inner']);
  });

  it('GIVEN written values WHEN resolving THEN they win and list entries stay as written', () => {
    const written = { size: 2, inner: {}, entries: [{ name: 'e' }] };
    expect(withDefaults(section, written)).toEqual({
      level: 'a',
      size: 2,
      tags: ['x'],
      entries: [{ name: 'e' }],
      inner: { n: 3 },
    });
    expect(written).toEqual({ size: 2, inner: {}, entries: [{ name: 'e' }] });
  });

  it('GIVEN a resolved value WHEN it is mutated THEN the schema and later results are unaffected', () => {
    const a = defaultsOf(section);
    a.tags.push('y');
    a.inner.n = 9;
    expect(defaultsOf(section)).toEqual({ level: 'a', tags: ['x'], inner: { n: 3 } });
    expect(section.properties.tags.default).toEqual(['x']);
  });

  it('GIVEN the schema literal WHEN deriving types THEN defaulted fields are present once resolved and optional as written', () => {
    expectTypeOf<Resolved<typeof section>>().toEqualTypeOf<{
      level: 'a' | 'b';
      tags: string[];
      inner: { n: number };
      size?: number;
      entries?: { name: string; on?: boolean }[];
    }>();
    expectTypeOf<Written<typeof section>>().toEqualTypeOf<{
      level?: 'a' | 'b';
      tags?: string[];
      inner?: { n?: number };
      size?: number;
      entries?: { name: string; on?: boolean }[];
    }>();
  });
});

describe('resolveEndpoint', () => {
  it('GIVEN an endpoint with only a name and URL WHEN resolved THEN the delivery settings are the schema defaults', () => {
    expect(resolveEndpoint({ name: 'a', url: 'http://h/' })).toEqual({
      name: 'a',
      url: 'http://h/',
      disabled: false,
      format: 'distribution',
      timeoutSeconds: 1,
      threshold: 10,
      backoffMillis: 1000,
      maxBackoffMillis: 60000,
      maxAttempts: 0,
      maxAgeSeconds: 86400,
    });
  });
});
