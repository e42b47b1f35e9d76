import type { Middleware } from 'koa';
import { currentScope } from '../../util/scope.js';
import type { State } from '../context.js';

/** ObservedRequest is how one request ended, as a {@link RequestObserver} hears it. */
export interface ObservedRequest {
  /** route is the matched route's name (`unknown` when none matched). */
  route: string;
  method: string;
  /** status is the final status, after the one error exit. */
  status: number;
  /** requestBytes is the request's Content-Length (0 when absent or invalid). */
  requestBytes: number;
  /** responseBytes is the response body's length (0 when unknown). */
  responseBytes: number;
  /** storageCalls counts the driver calls made for the request (undefined outside a scope). */
  storageCalls: number | undefined;
}

/**
 * RequestObserver hears each request (metrics): `requestStarted` as it enters, and the
 * function it returns exactly once, when the handler and the error exit have returned or
 * thrown. The observer must not throw.
 */
export interface RequestObserver {
  requestStarted(): (r: ObservedRequest) => void;
}

/**
 * observeRequests reports each request to `o`; it must wrap the error exit, so that the
 * status it reports is the final one.
 */
export function observeRequests(o: RequestObserver): Middleware<State> {
  return async (ctx, next) => {
    const done = o.requestStarted();
    try {
      await next();
    } finally {
      done({
        route: ctx.state.route,
        method: ctx.method,
        status: ctx.status,
        requestBytes: Number(ctx.get('content-length')) || 0,
        responseBytes: ctx.response.length ?? 0,
        storageCalls: currentScope()?.storageCalls,
      });
    }
  };
}
