import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * RequestScope is what cross-cutting decorators (storage metrics, event emission) may know
 * about the HTTP request they run under, without handlers passing it down. It is created by
 * one middleware per request; outside a request (background work) there is none.
 */
export interface RequestScope {
  id: string;
  /** addr is the client's address (X-Forwarded-For aware). */
  addr: string;
  /** host is the Host header, for event URLs. */
  host: string;
  /** scheme is `http` or `https` as the client sees it. */
  scheme: string;
  method: string;
  useragent: string;
  /** actor is the authenticated subject, when auth set one. */
  actor?: string;
  /** storageCalls counts driver calls made for this request. */
  storageCalls: number;
  /**
   * deferred are flushed once the handler returns, before the response is sent (the events
   * outbox write of a push, an upload session's removal). They run concurrently; the first
   * failure fails the request.
   */
  deferred: (() => Promise<void>)[];
  /** bag holds per-request state of decorators, keyed by their own symbols. */
  bag: Map<symbol, unknown>;
}

const storage = new AsyncLocalStorage<RequestScope>();

/** runInScope runs `fn` with `scope` as the current request scope. */
export function runInScope<T>(scope: RequestScope, fn: () => Promise<T>): Promise<T> {
  return storage.run(scope, fn);
}

/** currentScope is the scope of the request being served, if any. */
export function currentScope(): RequestScope | undefined {
  return storage.getStore();
}
