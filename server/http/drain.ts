/**
 * Draining a listener without racing its clients. Node's `server.close()` drops every idle
 * kept-alive connection at once; a client that is just sending its next request on one (a
 * puller in a loop does so within microseconds) then sees the connection reset and fails.
 * `ConnectionDrain` instead lets each connection end on a response that says
 * `Connection: close`, and closes a connection itself only after it stayed idle for a grace
 * period, the same race every keep-alive timeout has, made rare.
 */
import { Server as NetServer, type Socket } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { systemClock, type Clock } from '../util/clock.js';

interface Tracked {
  /** active counts the requests on the connection without a finished response. */
  active: number;
  idleSince: number;
}

export class ConnectionDrain {
  private readonly sockets = new Map<Socket, Tracked>();
  private draining = false;

  constructor(
    private readonly clock: Clock = systemClock,
    /** idleGraceMs is how long a connection may stay idle during a drain before it is closed. */
    private readonly idleGraceMs = 1000,
  ) {}

  /**
   * attach tracks `server`'s connections (`secure` for an HTTPS server, whose requests come on
   * the TLS sockets).
   */
  attach(server: Server, secure: boolean): void {
    server.on(secure ? 'secureConnection' : 'connection', (s: Socket) => {
      this.sockets.set(s, { active: 0, idleSince: this.clock.now() });
      s.once('close', () => this.sockets.delete(s));
    });
  }

  /**
   * track counts one request until its response closes; while draining, the response says
   * `Connection: close`, so the client opens its next connection elsewhere.
   */
  track(req: IncomingMessage, res: ServerResponse): void {
    const t = this.sockets.get(req.socket);
    if (this.draining) res.setHeader('connection', 'close');
    if (!t) return;
    t.active++;
    res.once('close', () => {
      t.active--;
      t.idleSince = this.clock.now();
    });
  }

  /**
   * drain stops accepting connections and resolves once every connection has ended, closing
   * each one that stays idle for the grace period; after `deadlineMs` all are closed.
   */
  drain(server: Server, deadlineMs: number, inFlight: Iterable<ServerResponse>): Promise<void> {
    this.draining = true;
    for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
    const closed = new Promise<void>((resolve) =>
      // net's close, not http's: http's drops idle kept-alive connections at once.
      NetServer.prototype.close.call(server, () => resolve()),
    );
    const sweep = () => {
      const now = this.clock.now();
      for (const [s, t] of this.sockets)
        if (t.active === 0 && now - t.idleSince >= this.idleGraceMs) s.destroySoon();
    };
    const timer = this.clock.every(Math.min(100, this.idleGraceMs), sweep);
    const deadline = this.clock.after(deadlineMs, () => server.closeAllConnections());
    return closed.finally(() => {
      timer.cancel();
      deadline.cancel();
    });
  }
}
