export { Transaction, REMOTE_COMMIT_HINT } from './transaction.js';
export { defaultLogger, type TransactionLogger } from './logger.js';
