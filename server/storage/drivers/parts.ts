const MiB = 1024 * 1024;

/** S3 rules: every part but the last is at least 5 MiB; at most 10,000 parts. */
export const MIN_PART = 5 * MiB;
export const MAX_PARTS = 10_000;

/**
 * PartBudget shares one process-wide memory budget among the multipart writers in flight.
 * Each writer fills one part buffer while earlier parts upload; how big its next part is
 * and how many parts it may have in flight depend on how many writers share the budget:
 * alone, a writer gets full-size parts and two in flight; four writers on 64 MiB get 8 MiB
 * parts and one in flight; eight get 5 MiB parts and upload each before filling the next.
 * Part sizes never drop below what S3 needs (5 MiB, and enough for the stream to fit in
 * 10,000 parts), so very many writers exceed the budget by that floor (5 MiB each) rather
 * than wait on one another.
 *
 * Buffers are recycled: a finished part's buffer goes back to a free list of its size,
 * which keeps the process's footprint flat instead of leaving megabytes to the collector.
 */
export class PartBudget {
  private writers = 0;
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;
  /** current is the size last handed out: idle buffers of other sizes are let go. */
  private current = 0;

  /**
   * @param budget bytes for all part buffers of the process (filling and in flight)
   * @param maxPart the configured part size: no part is bigger unless S3's limits need it
   */
  constructor(
    readonly budget: number,
    readonly maxPart: number,
  ) {}

  /** enter registers a writer; call the function it returns when the writer is done. */
  enter(): () => void {
    this.writers++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.writers--;
    };
  }

  /**
   * inFlight is how many parts one writer may upload while it fills the next: two alone,
   * one when several share the budget, none (fill, upload, then fill again) when even
   * 5 MiB parts with one in flight would not fit.
   */
  inFlight(): number {
    if (this.writers <= 1) return 2;
    return this.writers * 2 * MIN_PART <= this.budget ? 1 : 0;
  }

  /**
   * partSize is the size of a writer's part number `part` (1-based). `atLeast` is the
   * writer's own floor (from a known total length), if any.
   */
  partSize(part: number, atLeast = 0): number {
    const share = Math.floor(this.budget / (Math.max(1, this.writers) * (1 + this.inFlight())));
    // Unknown lengths: the floor doubles every 1,000 parts, so 10,000 parts reach ~5 TiB.
    const growth = MIN_PART * 2 ** Math.floor((part - 1) / 1000);
    const floor = Math.max(MIN_PART, growth, atLeast);
    return Math.max(floor, share >= this.maxPart ? this.maxPart : quantize(share));
  }

  /** take returns a buffer of exactly `size` bytes, recycled when one is free. */
  take(size: number): Buffer {
    this.current = size;
    const list = this.free.get(size);
    const buf = list?.pop();
    if (buf) {
      this.freeBytes -= size;
      return buf;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /** give returns a buffer once nothing reads it any more. */
  give(buf: Buffer): void {
    // Writers came or went and parts changed size: idle buffers of the old size go.
    for (const [size, list] of this.free) {
      if (size === this.current) continue;
      this.freeBytes -= size * list.length;
      this.free.delete(size);
    }
    // Keep at most half the budget idle.
    if (buf.length !== this.current || this.freeBytes + buf.length > this.budget / 2) return;
    let list = this.free.get(buf.length);
    if (!list) this.free.set(buf.length, (list = []));
    list.push(buf);
    this.freeBytes += buf.length;
  }
}

/** quantize rounds a part size down to 5 MiB or a power of two of MiB, so buffers recycle. */
function quantize(n: number): number {
  if (n < 8 * MiB) return MIN_PART;
  let p = 8 * MiB;
  while (p * 2 <= n) p *= 2;
  return p;
}
