/** Gives a lock back. Safe to call twice (the second call does nothing). */
export type Release = () => void;

/**
 * One holder at a time, in call order: the lock every work-area mutation of
 * one repository object (a backend instance, an agent session) runs under,
 * so two concurrent requests can never interleave one's check of the tree
 * with the other's change of it (the agent escape: a link planted between
 * writeFile's check and its mkdir/open). Holders must never wait for the
 * network inside it (an upload streams its data outside), so a stalled or
 * hostile peer cannot block the others and nothing waiting here is waiting
 * on a frame.
 *
 * `acquire`/`run` are exclusive. `acquireShared`/`runShared` may hold it
 * together with other shared holders, never with an exclusive one. Waiters
 * are served strictly in call order: a shared request behind a waiting
 * exclusive one waits for it (no exclusive holder starves), and an
 * exclusive one waits for every earlier holder. A failed holder does not
 * break the chain.
 */
export class Mutex {
  private readonly waiting: { shared: boolean; grant: () => void }[] = [];
  private sharedHolders = 0;
  private exclusiveHeld = false;
  private exclusiveGrants = 0;

  /**
   * How many exclusive holders have been granted the lock so far (it counts
   * up when one is granted, before it runs). While a shared holder holds
   * it, this cannot change: a fact a shared holder proved about the tree
   * stays true, for every later shared holder too, as long as this number
   * is the one it read (see ProvenDirs).
   */
  get exclusiveGeneration(): number {
    return this.exclusiveGrants;
  }

  /** Resolves with the release function once every earlier holder has released. */
  acquire(): Promise<Release> {
    return this.enqueue(false);
  }

  /** Resolves once every earlier exclusive holder has released (earlier shared ones may still hold it). */
  acquireShared(): Promise<Release> {
    return this.enqueue(true);
  }

  /** `fn` alone, after every earlier holder. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    return this.holding(await this.acquire(), fn);
  }

  /** `fn` after every earlier exclusive holder, possibly together with other shared ones. */
  async runShared<T>(fn: () => Promise<T>): Promise<T> {
    return this.holding(await this.acquireShared(), fn);
  }

  private async holding<T>(release: Release, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } finally {
      release();
    }
  }

  private enqueue(shared: boolean): Promise<Release> {
    return new Promise<Release>((resolve) => {
      this.waiting.push({ shared, grant: () => resolve(this.releaser(shared)) });
      this.pump();
    });
  }

  /** Grant the head of the queue while it is compatible with what is held. */
  private pump(): void {
    for (let next = this.waiting[0]; next; next = this.waiting[0]) {
      if (this.exclusiveHeld || (!next.shared && this.sharedHolders > 0)) return;
      this.waiting.shift();
      if (next.shared) this.sharedHolders++;
      else {
        this.exclusiveHeld = true;
        this.exclusiveGrants++;
      }
      next.grant();
    }
  }

  private releaser(shared: boolean): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (shared) this.sharedHolders--;
      else this.exclusiveHeld = false;
      this.pump();
    };
  }
}
