/**
 * Ctrl-C handling for a training loop: the first SIGINT only raises `interrupted` (the loop finishes its
 * update, writes a checkpoint and returns); a second one exits at once with status 130.
 */

/** Watches SIGINT while installed (see the module comment). */
export class InterruptGuard {
  /** Set by the first SIGINT. */
  interrupted = false;
  private signals = 0;
  private installed = false;
  private readonly onSignal = (): void => {
    this.signals++;
    if (this.signals > 1) {
      this.log("second interrupt: exiting without a checkpoint");
      this.exit(130);
      return;
    }
    this.interrupted = true;
    this.log("interrupt: finishing this update and writing a checkpoint (Ctrl-C again to exit at once)");
  };

  constructor(
    private readonly log: (msg: string) => void,
    /** What a second SIGINT calls (default process.exit). */
    private readonly exit: (code: number) => void = (code) => process.exit(code),
  ) {}

  /** Starts listening for SIGINT (idempotent). */
  install(): this {
    if (!this.installed) process.on("SIGINT", this.onSignal);
    this.installed = true;
    return this;
  }

  /** Stops listening (idempotent). */
  remove(): void {
    if (this.installed) process.off("SIGINT", this.onSignal);
    this.installed = false;
  }
}
