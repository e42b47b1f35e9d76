import { parseName } from '../../registry/reference.js';
import type { Handler } from '../context.js';
import { query } from '../params.js';

/**
 * access answers `GET /v2/_berth/access[?repository=<name>]` with what the caller itself may
 * do: `{user, admin, deletes, repository?: {name, actions}}`. `user` is null for an anonymous
 * caller; `deletes` is false when delete routes are off (read-only or `delete.enabled: false`).
 * It reads only the access rules, never storage, so it tells nothing about what exists: the
 * web UI uses it to offer or disable controls, and every request is still authorized on its own.
 */
export const access: Handler = async (ctx, s) => {
  const id = ctx.state.identity;
  const name = query(ctx, 'repository');
  if (name !== undefined) parseName(name);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = {
    user: id.via === 'anonymous' || id.via === 'none' ? null : id.principal.name,
    admin: s.auth.isAdmin(id),
    deletes: !s.config.readOnly && s.config.delete.enabled,
    ...(name !== undefined && { repository: { name, actions: s.auth.grants(id, name) } }),
  };
};
