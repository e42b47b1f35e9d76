/**
 * The config schema's vocabulary: the draft-07 subset it uses, the types derived from a schema
 * literal, and the one function that fills in `default`s. Section schemas are object literals
 * declared `as const satisfies JsonSchema`, so their types are computed, never restated.
 */

/** JsonSchema is the subset of draft-07 the config schema uses. */
export interface JsonSchema {
  $schema?: string;
  $id?: string;
  title?: string;
  description?: string;
  type?: 'object' | 'string' | 'integer' | 'boolean' | 'array';
  properties?: Readonly<Record<string, JsonSchema>>;
  /** additionalProperties is a schema only for maps (objects without `properties`). */
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  maxItems?: number;
  required?: readonly string[];
  enum?: readonly string[];
  const?: string;
  /** default fills an absent property of an object (never a list entry): see withDefaults. */
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  writeOnly?: boolean;
  if?: JsonSchema;
  then?: JsonSchema;
}

type Mode = 'resolved' | 'written';

type RequiredKeys<S> = S extends { readonly required: readonly (infer K)[] } ? K : never;

/** PresentKeys are the properties always there: required ones, and defaulted ones once resolved. */
type PresentKeys<P, R, M extends Mode> = {
  [K in keyof P]: K extends R
    ? K
    : M extends 'resolved'
      ? P[K] extends { readonly default: unknown }
        ? K
        : never
      : never;
}[keyof P];

type Expand<T> = T extends infer O ? { [K in keyof O]: O[K] } : never;

type ObjectOf<P, R, M extends Mode> = Expand<
  { -readonly [K in keyof P as K extends PresentKeys<P, R, M> ? K : never]: Value<P[K], M> } & {
    -readonly [K in keyof P as K extends PresentKeys<P, R, M> ? never : K]?: Value<P[K], M>;
  }
>;

/** Value is the type a schema describes; list entries are always as written. */
type Value<S, M extends Mode> = S extends { readonly enum: readonly (infer E)[] }
  ? E
  : S extends { readonly const: infer C }
    ? C
    : S extends { readonly type: 'string' }
      ? string
      : S extends { readonly type: 'integer' }
        ? number
        : S extends { readonly type: 'boolean' }
          ? boolean
          : S extends { readonly type: 'array'; readonly items: infer I }
            ? Value<I, 'written'>[]
            : S extends { readonly type: 'object'; readonly properties: infer P }
              ? ObjectOf<P, RequiredKeys<S>, M>
              : S extends { readonly type: 'object'; readonly additionalProperties: infer A }
                ? Record<string, Value<A, M>>
                : never;

/**
 * Resolved is the value schema `S` describes after withDefaults: a property with a `default`
 * or listed in `required` is present, any other is optional. List entries are as written.
 */
export type Resolved<S> = Value<S, 'resolved'>;

/** Written is what a file may hold for schema `S`: only `required` properties are present. */
export type Written<S> = Value<S, 'written'>;

/** WithRequired makes keys `K` of `T` present: for rules the schema states outside `required`. */
export type WithRequired<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: T[P] };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fill(schema: JsonSchema, value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    const v = value[key] === undefined ? child.default : value[key];
    if (v === undefined) continue;
    out[key] = isObject(v) && child.properties ? fill(child, v) : structuredClone(v);
  }
  return out;
}

/**
 * withDefaults is a fresh copy of `value` with every absent property of an object that has a
 * `default` set to it, through `properties` at any depth, keys in schema order. List entries are
 * copied as written. `value` must be valid against `schema` (properties it does not declare are
 * dropped).
 */
export function withDefaults<S extends JsonSchema>(schema: S, value: object): Resolved<S> {
  return fill(schema, value as Record<string, unknown>) as Resolved<S>;
}

/** defaultsOf is a fresh copy of what schema `S` resolves to when nothing is written. */
export function defaultsOf<S extends JsonSchema>(schema: S): Resolved<S> {
  return withDefaults(schema, {});
}
