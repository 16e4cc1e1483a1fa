import type { ClientFilesystem, ProgressListener, RemoteRepository, TransactionId, Transport } from '@dsg/contracts';
import type { TransactionLogger } from './logger.js';

/**
 * Transfers in flight. A transfer of many small files is bound by round trips
 * (each file is a request with its own reply), not bytes: first sync of 1000
 * files over SSH, 5 runs each, 16 vs 4 in flight: 5.43 vs 6.56 s to ZFS,
 * 5.47 vs 7.50 s to posix, same peak RSS (bench w1 quick, 2026-11-27).
 */
export const DEFAULT_CONCURRENCY = 16;

export interface ProjectSpec {
  root: string;
  name: string;
  dataDirs: string[];
  ignore: { names: string[]; suffixes: string[]; paths: string[] };
  /** user id (email) written into manifests */
  user: string;
  timeZone?: string;
  projectConfig: Record<string, unknown> | null;
}

/** One sync or clone under way: what every step after the plan works with, passed as one object. */
export interface SyncRun {
  readonly command: 'sync' | 'clone';
  readonly project: ProjectSpec;
  readonly clientFs: ClientFilesystem;
  readonly remote: RemoteRepository;
  /** the session a Transaction consumes (runSync's releases the lock before it ends) */
  readonly transport: Transport;
  readonly tx: TransactionId;
  readonly concurrency: number;
  readonly logger: TransactionLogger;
  readonly onProgress?: ProgressListener;
}

/** stageMeta takes paths relative to `.dsg/`. */
export const metaRel = (p: string): string => p.slice('.dsg/'.length);

export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));
