import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Received is one request a {@link Webhook} got. */
export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** status is what the receiver answered. */
  status: number;
}

/**
 * Webhook is a real HTTP receiver on loopback for delivery tests. It records every request
 * and answers `status` (settable: 500 simulates an endpoint that is down but reachable);
 * `stop()`/`start()` take it off the network and back on the same port.
 */
export class Webhook {
  readonly received: Received[] = [];
  status = 200;
  private server: Server | undefined;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** accepted are the requests answered with success. */
  get accepted(): Received[] {
    return this.received.filter((r) => r.status < 400);
  }

  async start(port = this.port): Promise<this> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const status = this.status;
        this.received.push({
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks),
          status,
        });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** waitFor polls until `pred` holds, failing after `ms` (polling, not sleeping for timing). */
  async waitFor(
    pred: (w: this) => boolean,
    ms = 15_000,
    what = 'webhook condition',
  ): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this)) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; got ${this.received.length} requests`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export async function startWebhook(): Promise<Webhook> {
  return new Webhook().start();
}
