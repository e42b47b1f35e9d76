/**
 * Batches runs at most one job per key at a time and merges what is submitted for a key
 * while its job runs into the next job (group commit): N concurrent submissions for one key
 * cost at most two runs, not N, and never race each other.
 */
export class Batches<C> {
  /** queued: per key, the batch waiting for the running job, still taking changes. */
  private readonly queued = new Map<string, { change: C; done: Promise<void> }>();
  /** tails: per key, the last job scheduled; the next batch starts after it. */
  private readonly tails = new Map<string, Promise<void>>();

  constructor(private readonly merge: (a: C, b: C) => C) {}

  /**
   * submit adds `change` to `key`'s next batch and resolves once a run of `run` over a
   * batch holding it has succeeded (rejects with its error). The first submission of a
   * batch names its `run`.
   */
  submit(key: string, change: C, run: (change: C) => Promise<void>): Promise<void> {
    const waiting = this.queued.get(key);
    if (waiting) {
      waiting.change = this.merge(waiting.change, change);
      return waiting.done;
    }
    let settle!: { resolve: () => void; reject: (err: unknown) => void };
    const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    const batch = { change, done };
    this.queued.set(key, batch);
    const tail = (this.tails.get(key) ?? Promise.resolve()).then(async () => {
      // From here on, submissions start the batch after this one.
      this.queued.delete(key);
      await run(batch.change).then(settle.resolve, settle.reject);
    });
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return done;
  }

  /** busy tells whether a job of `key` runs or waits in this process now. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }

  /** idle resolves once every job scheduled before the call has settled. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.tails.values()]);
  }
}
