import type { Resolved } from './json-schema.js';

/** uiSchema is the `ui` section: the web UI that `berth server` serves itself. */
export const uiSchema = {
  description: 'The web UI served by berth server (docs/ui.md).',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    enabled: {
      description: 'Serve the web UI.',
      type: 'boolean',
      default: true,
    },
    prefix: {
      description: 'Path the UI is mounted under; not `/v2`, `/auth` or a probe path.',
      type: 'string',
      pattern: '^(/[A-Za-z0-9._~-]+)+$',
      default: '/ui',
    },
  },
} as const;

/** UiConfig: `enabled` serves the web UI under `prefix` (and redirects `/` there). */
export type UiConfig = Resolved<typeof uiSchema>;

/** RESERVED are the paths the UI prefix may not take: the API, the token endpoint, the probes. */
const RESERVED = ['/v2', '/auth', '/healthz', '/readyz'];

/** uiProblems are the checks on `ui` that the schema cannot express: the prefix is not reserved. */
export function uiProblems(c: UiConfig, from: (path: string) => string): string[] {
  const hit = RESERVED.find((r) => c.prefix === r || c.prefix.startsWith(`${r}/`));
  return hit === undefined
    ? []
    : [`ui.prefix: ${c.prefix} is taken by ${hit} (choose another path)${from('ui.prefix')}`];
}
