/**
 * Config loading for `berth server`: read `berth.yaml`, merge `BERTH_*` environment overrides,
 * validate against `configSchema`, fill in its defaults, and return a complete `BerthConfig`.
 *
 * Order of precedence (highest first): environment variable, file, default.
 */
import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseDocument } from 'yaml';
import { authProblems } from './auth.js';
import { ConfigError } from './error.js';
import { gcProblems } from './gc.js';
import { syncProblems } from './sync.js';
import { uiProblems } from './ui.js';
import { ADDR_PATTERN, httpProblems } from './http.js';
import { withDefaults, type JsonSchema } from './json-schema.js';
import { limitsProblems } from './limits.js';
import { ENDPOINT_NAME_PATTERN, WEBHOOK_URL_PATTERN } from './notifications.js';
import { configSchema } from './schema.js';
import { BUCKET_PATTERN, ENDPOINT_PATTERN, PREFIX_PATTERN, selectDriver } from './storage.js';
import type { BerthConfig } from './types.js';

export { ConfigError };

/** defaults returns a fresh copy of the configuration used when nothing is configured. */
export function defaults(): BerthConfig {
  return resolve({});
}

// ---------------------------------------------------------------------------------------------
// Environment overrides

/** Environment variables with the BERTH_ prefix that are not config fields. */
const NON_FIELD_VARS = new Set(['BERTH_CONFIG', 'BERTH_TOOLS']);

/** EnvBinding ties one leaf field of the schema to its environment variable. */
export interface EnvBinding {
  /** env is the variable name, e.g. `BERTH_STORAGE_S3_PART_SIZE_MIB`. */
  env: string;
  /** path is the field path, e.g. `['storage', 's3', 'partSizeMiB']`. */
  path: readonly string[];
  /** type is the schema type of the field. */
  type: 'string' | 'integer' | 'boolean';
}

/**
 * envName is the variable for a field path: `BERTH_` + the segments upper-cased and joined with
 * `_`, camelCase words split (a new word starts at an upper-case letter followed by a lower-case
 * one, so `partSizeMiB` → `PART_SIZE_MIB`, `accessKey` → `ACCESS_KEY`).
 */
export function envName(path: readonly string[]): string {
  const words = path.map((seg) => seg.replace(/(?<=.)(?=[A-Z][a-z])/g, '_').toUpperCase());
  return `BERTH_${words.join('_')}`;
}

let bindingsCache: readonly EnvBinding[] | undefined;

/** envBindings lists every leaf field of `configSchema` with its environment variable. */
export function envBindings(): readonly EnvBinding[] {
  if (bindingsCache) return bindingsCache;
  const out: EnvBinding[] = [];
  const walk = (node: JsonSchema, path: string[]): void => {
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const p = [...path, key];
      if (child.type === 'object') walk(child, p);
      else if (child.type === 'array')
        continue; // lists are file-only
      else if (child.type === 'string' || child.type === 'integer' || child.type === 'boolean')
        out.push({ env: envName(p), path: p, type: child.type });
      else throw new Error(`configSchema: ${p.join('.')} has no supported type`);
    }
  };
  walk(configSchema, []);
  const seen = new Set<string>();
  for (const b of out) {
    if (seen.has(b.env) || NON_FIELD_VARS.has(b.env))
      throw new Error(`configSchema: environment variable ${b.env} is ambiguous`);
    seen.add(b.env);
  }
  bindingsCache = out;
  return out;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** convertEnv turns an environment value into the field's type, or returns a problem. */
function convertEnv(b: EnvBinding, raw: string): { value: Json } | { problem: string } {
  switch (b.type) {
    case 'string':
      return { value: raw };
    case 'boolean': {
      const v = raw.trim().toLowerCase();
      if (v === 'true' || v === '1') return { value: true };
      if (v === 'false' || v === '0') return { value: false };
      return { problem: `${b.env}: must be true, false, 1 or 0 (got ${show(raw)})` };
    }
    case 'integer': {
      const v = raw.trim();
      const n = Number(v);
      if (!/^[+-]?[0-9]+$/.test(v) || !Number.isSafeInteger(n))
        return { problem: `${b.env}: must be an integer (got ${show(raw)})` };
      return { value: n };
    }
  }
}

/**
 * applyEnv writes every `BERTH_*` override into `doc` (in place) and returns the problems found
 * and which dotted field paths came from which variable. Empty values are ignored.
 */
function applyEnv(
  doc: JsonObject,
  env: NodeJS.ProcessEnv,
): { problems: string[]; origin: Map<string, string> } {
  const byName = new Map(envBindings().map((b) => [b.env, b]));
  const problems: string[] = [];
  const origin = new Map<string, string>();
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('BERTH_') || NON_FIELD_VARS.has(name)) continue;
    const b = byName.get(name);
    if (!b) {
      const hint = suggest(name, [...byName.keys()]);
      problems.push(`${name}: not a config field${hint ? ` (did you mean ${hint}?)` : ''}`);
      continue;
    }
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const converted = convertEnv(b, raw);
    if ('problem' in converted) {
      problems.push(converted.problem);
      continue;
    }
    // Walk to the parent, creating sections; a non-object section is left for the schema to
    // report.
    let node: JsonObject = doc;
    let ok = true;
    for (const seg of b.path.slice(0, -1)) {
      const next = node[seg];
      if (next === undefined) node = node[seg] = {};
      else if (isObject(next)) node = next;
      else {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    node[b.path[b.path.length - 1]!] = converted.value;
    origin.set(b.path.join('.'), name);
  }
  return { problems, origin };
}

// ---------------------------------------------------------------------------------------------
// Validation

let validator: ValidateFunction | undefined;

function validate(): ValidateFunction {
  // strictRequired is off: the if/then for the s3 driver lists required fields of `s3` without
  // repeating their definitions.
  validator ??= new Ajv({ allErrors: true, strict: true, strictRequired: false }).compile(
    configSchema,
  );
  return validator;
}

/** Human wording for each pattern in the schema. */
const PATTERN_HINTS: Record<string, string> = {
  [ADDR_PATTERN]: 'must be host:port, e.g. 0.0.0.0:5000',
  [ENDPOINT_PATTERN]: 'must be an http(s) URL with host and optional port, e.g. http://minio:9000',
  [BUCKET_PATTERN]:
    'must be an S3 bucket name: lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, no ".."',
  [PREFIX_PATTERN]: 'must not start or end with "/"',
  [ENDPOINT_NAME_PATTERN]:
    'must be 1..63 lowercase letters, digits and hyphens, starting and ending with a letter or digit',
  [WEBHOOK_URL_PATTERN]: 'must be an http(s) URL',
};

/** How each schema type reads to someone writing YAML. */
const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping',
  string: 'a string',
  integer: 'an integer',
  boolean: 'true or false',
};

/** show renders a value for an error message, briefly. */
function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 64 ? `${v.slice(0, 61)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return typeof v;
}

function pointerToPath(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function valueAt(doc: unknown, path: readonly string[]): unknown {
  let v = doc;
  for (const seg of path) {
    if (Array.isArray(v)) v = v[Number(seg)] as unknown;
    else if (isObject(v)) v = v[seg];
    else return undefined;
  }
  return v;
}

function schemaAt(path: readonly string[]): JsonSchema | undefined {
  let s: JsonSchema | undefined = configSchema;
  for (const seg of path) s = s?.type === 'array' ? s.items : s?.properties?.[seg];
  return s;
}

/** schemaNode follows an ajv schemaPath such as `#/properties/storage/then`. */
function schemaNode(schemaPath: string): unknown {
  let s: unknown = configSchema;
  for (const seg of pointerToPath(schemaPath.replace(/^#/, ''))) {
    if (typeof s !== 'object' || s === null) return undefined;
    s = (s as Record<string, unknown>)[seg];
  }
  return s;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** suggest returns the closest candidate to `word` (case-insensitively), if close enough. */
function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) [best, bestDist] = [c, d];
  }
  return bestDist <= Math.max(2, Math.floor(word.length / 5)) ? best : undefined;
}

let orderCache: Map<string, number> | undefined;

/**
 * fieldRank orders problems as the schema lists fields: the rank of the longest known prefix of
 * `path`, so an unknown key sorts with its parent section.
 */
function fieldRank(path: readonly string[]): number {
  if (!orderCache) {
    const order = new Map<string, number>([['', 0]]);
    const walk = (node: JsonSchema, prefix: string[]): void => {
      for (const [key, child] of Object.entries(node.properties ?? {})) {
        const p = [...prefix, key];
        order.set(p.join('.'), order.size);
        walk(child, p);
      }
    };
    walk(configSchema, []);
    orderCache = order;
  }
  for (let n = path.length; n >= 0; n--) {
    const rank = orderCache.get(path.slice(0, n).join('.'));
    if (rank !== undefined) return rank;
  }
  return 0;
}

/** describe turns one ajv error into `[dotted path, reason]`, or undefined to skip it. */
function describe(err: ErrorObject, doc: unknown): [string[], string] | undefined {
  const path = pointerToPath(err.instancePath);
  const value = valueAt(doc, path);
  const secret = schemaAt(path)?.writeOnly === true;
  const got = secret ? '' : ` (got ${show(value)})`;
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'if':
      return undefined; // the failing `then` is reported on its own
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      const known = Object.keys(schemaAt(path)?.properties ?? {});
      const hint = suggest(key, known);
      return [[...path, key], `unknown key${hint ? ` (did you mean ${hint}?)` : ''}`];
    }
    case 'required': {
      const missing = String(p.missingProperty);
      // A requirement under `then` holds only when the sibling `if` matched: say which.
      const m = /^(.*)\/then(?:\/|$)/.exec(err.schemaPath);
      if (m) {
        const cond = (schemaNode(`${m[1]}/if`) as JsonSchema | undefined)?.properties ?? {};
        const [field, sub] = Object.entries(cond).find(([, s]) => s.const !== undefined) ?? [];
        const at = pointerToPath(m[1]!.replace(/^#/, '')).filter((s) => s !== 'properties');
        if (field && sub)
          return [
            [...path, missing],
            `is required when ${[...at, field].join('.')} is ${String(sub.const)}`,
          ];
      }
      return [[...path, missing], 'is required'];
    }
    case 'type':
      return [path, `must be ${TYPE_WORDS[String(p.type)] ?? String(p.type)}${got}`];
    case 'enum':
      return [path, `must be one of ${(p.allowedValues as unknown[]).join(', ')}${got}`];
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return [path, `must be ${String(p.comparison)} ${String(p.limit)}${got}`];
    case 'minLength':
      return [path, `must be at least ${String(p.limit)} characters long${got}`];
    case 'maxLength':
      return [path, `must be at most ${String(p.limit)} characters long${got}`];
    case 'pattern': {
      const hint = PATTERN_HINTS[String(p.pattern)];
      return [path, `${hint ?? `must match ${String(p.pattern)}`}${got}`];
    }
    default:
      return [path, `${err.message ?? 'is invalid'}${got}`];
  }
}

// ---------------------------------------------------------------------------------------------
// Defaults

/**
 * resolve fills a validated document from the schema's defaults and keeps only the selected
 * storage driver's settings; every object in the result is fresh.
 */
function resolve(doc: JsonObject): BerthConfig {
  const full = withDefaults(configSchema, doc);
  return { ...full, storage: selectDriver(full.storage) } as BerthConfig;
}

/** crossChecks finds problems that involve more than one field of a resolved config. */
function crossChecks(c: BerthConfig, origin: Map<string, string>): string[] {
  const from = (p: string): string => (origin.has(p) ? ` (from ${origin.get(p)})` : '');
  return [
    ...httpProblems(c.http),
    ...authProblems(c.auth, from),
    ...limitsProblems(c.limits, from),
    ...gcProblems(c.gc),
    ...syncProblems(c.mirrors.sync, c.mirrors.upstreams),
    ...uiProblems(c.ui, from),
  ];
}

// ---------------------------------------------------------------------------------------------
// Entry points

/**
 * parseConfig parses `berth.yaml` text (undefined: no file), applies `BERTH_*` overrides from
 * `env`, validates, and returns the complete config. `source` names the file in YAML syntax
 * errors. Throws ConfigError listing the problems.
 */
export function parseConfig(
  text: string | undefined,
  env: NodeJS.ProcessEnv,
  source = 'berth.yaml',
): BerthConfig {
  let doc: JsonObject = {};
  if (text !== undefined) {
    const parsed = parseDocument(text, { uniqueKeys: true });
    const yamlErr = parsed.errors[0];
    if (yamlErr) {
      const pos = yamlErr.linePos?.[0];
      const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
      const reason = yamlErr.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
      throw new ConfigError(`${source}: YAML syntax error${where}: ${reason}`);
    }
    const js: unknown = parsed.toJS();
    if (js !== null && js !== undefined) {
      if (!isObject(js))
        throw new ConfigError(`${source}: the top level must be a mapping (got ${show(js)})`);
      doc = js;
    }
  }

  const { problems, origin } = applyEnv(doc, env);
  const v = validate();
  if (!v(doc)) {
    const found = new Map<string, { rank: number; text: string }>();
    for (const err of v.errors ?? []) {
      const d = describe(err, doc);
      if (!d) continue;
      const key = d[0].join('.');
      if (found.has(key)) continue; // one problem per field is enough
      const from = origin.has(key) ? ` (from ${origin.get(key)})` : '';
      found.set(key, { rank: fieldRank(d[0]), text: `${key}: ${d[1]}${from}` });
    }
    problems.push(...[...found.values()].sort((a, b) => a.rank - b.rank).map((f) => f.text));
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const config = resolve(doc);
  const cross = crossChecks(config, origin);
  if (cross.length > 0) throw new ConfigError(cross);
  return config;
}

/**
 * loadConfig reads the config file and environment. The file is `opts.file`, else the
 * `BERTH_CONFIG` variable, else `./berth.yaml` if it exists, else none (defaults and env only).
 * A file named explicitly must exist. `opts.env` defaults to `process.env`.
 */
export async function loadConfig(
  opts: { file?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<BerthConfig> {
  const env = opts.env ?? process.env;
  const explicit = opts.file ?? (env.BERTH_CONFIG ? env.BERTH_CONFIG : undefined);
  const via = opts.file === undefined && explicit !== undefined ? ' (from BERTH_CONFIG)' : '';
  const file = explicit ?? './berth.yaml';
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && explicit === undefined) return parseConfig(undefined, env);
    if (code === 'ENOENT') throw new ConfigError(`${file}: file not found${via}`);
    const reason = code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    throw new ConfigError(`${file}: cannot read: ${reason}${via}`);
  }
  return parseConfig(text, env, file);
}
