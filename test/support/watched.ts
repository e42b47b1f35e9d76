import { Client } from './image.js';
import { freePort, spawnBerth, type BerthProcess } from './process.js';

/** WatchedBerth is a Berth process with its debug listener (metrics) and a registry client. */
export interface WatchedBerth extends BerthProcess {
  /** metric reads one sample of `name` (with `labels`, e.g. `{cache="tag"}`) from /metrics. */
  metric(name: string, labels?: string): Promise<number | undefined>;
  client: Client;
}

/** spawnWatched starts `berth server` with `env` and a debug listener on a free port. */
export async function spawnWatched(env: Record<string, string>): Promise<WatchedBerth> {
  const debug = await freePort();
  const p = await spawnBerth({ ...env, BERTH_HTTP_DEBUG_ADDR: `127.0.0.1:${debug}` });
  const metric = async (name: string, labels = '') => {
    const text = await (await fetch(`http://127.0.0.1:${debug}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const client = new Client((path, init) => fetch(p.url + path, init));
  return { ...p, metric, client };
}

/** until polls `f` every 200 ms until it returns true; after `ms` it fails naming `what`. */
export async function until(what: string, f: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
