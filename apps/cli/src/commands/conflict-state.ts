/*
 * What a sync that stopped on conflicts leaves for the next one: the answers
 * already written in conflicts.txt (kept when a plain `dsg sync` rewrites the
 * file) and the `-m` message (used by `dsg sync --continue` unless a new one
 * is given). The message lives under `.dsg/`, never in conflicts.txt: that
 * file's format is shared with the original dsg.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { DSG_DIR, writeFileAtomic } from '@dsg/contracts';

const MESSAGE_FILE = path.join(DSG_DIR, 'conflict-message.json');

/**
 * The answers in a conflicts.txt, read leniently: a block still unanswered,
 * or a file the user half edited, yields what it can (this is only to carry
 * answers over; `--continue` reads the file strictly).
 */
export async function answersIn(file: string): Promise<Map<string, 'L' | 'C' | 'R'>> {
  const out = new Map<string, 'L' | 'C' | 'R'>();
  const text = await readFile(file, 'utf8').catch(() => '');
  let current: string | null = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (line.startsWith('path: ')) current = line.slice('path: '.length);
    else if (line.startsWith('resolution:') && current !== null) {
      const v = line.slice('resolution:'.length).trim().toUpperCase();
      if (v === 'L' || v === 'C' || v === 'R') out.set(current, v);
      current = null;
    }
  }
  return out;
}

/** The message the sync that met the conflicts was given, or null. */
export async function pendingMessage(root: string): Promise<string | null> {
  try {
    const doc = JSON.parse(await readFile(path.join(root, MESSAGE_FILE), 'utf8')) as unknown;
    const m = (doc as { message?: unknown } | null)?.message;
    return typeof m === 'string' ? m : null;
  } catch {
    return null;
  }
}

export async function keepPendingMessage(root: string, message: string): Promise<void> {
  await writeFileAtomic(path.join(root, MESSAGE_FILE), JSON.stringify({ message }) + '\n');
}

export async function dropPendingMessage(root: string): Promise<void> {
  await rm(path.join(root, MESSAGE_FILE), { force: true });
}
