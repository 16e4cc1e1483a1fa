/** Where the coordinator reports; injected so the CLI can route it (stderr, --json, --debug). */
export interface TransactionLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** something a human must look at: a rollback that could not finish */
  critical(message: string): void;
}

/** Silent except for critical lines, which go to stderr: they must never be lost. */
export const defaultLogger: TransactionLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  critical: (m) => void process.stderr.write(`CRITICAL: ${m}\n`),
};
