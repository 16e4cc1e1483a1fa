/**
 * Network faults for the reliability suite: find the dsg-agent a test's
 * `dsg` started through the test sshd, the sshd session processes serving
 * that one connection (never the listener, never by name machine-wide), and
 * measure how far a transfer got.
 */
import { existsSync, lstatSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { testenvDir } from '@dsg/testenv';

function statOf(pid: number): { ppid: number; state: string } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid …; comm may hold spaces and parentheses
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0]!, ppid: Number(rest[1]) };
  } catch {
    return null;
  }
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** The test sshd's listener (its pid file under $DSG_TESTENV_DIR). */
export function sshdListener(): number {
  return Number(readFileSync(path.join(testenvDir(), 'sshd.pid'), 'utf8').trim());
}

/** Every live descendant of `root`. */
export function descendants(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    const st = statOf(Number(n));
    if (!st) continue;
    const list = kids.get(st.ppid) ?? [];
    list.push(Number(n));
    kids.set(st.ppid, list);
  }
  const out: number[] = [];
  const todo = [...(kids.get(root) ?? [])];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(kids.get(p) ?? []));
  }
  return out;
}

/** dsg-agent processes under the test sshd whose command line contains every word of `match` (e.g. the parent dataset). */
export function agentsServing(match: string[]): number[] {
  return descendants(sshdListener()).filter((pid) => {
    const argv = cmdline(pid);
    return argv.some((a) => a.includes('dsg-agent')) && argv.includes('serve') && match.every((m) => argv.includes(m));
  });
}

/** The sshd processes between the listener and `pid` (both excluded): the ones serving that one connection. */
export function sshdSessionChain(pid: number): number[] {
  const listener = sshdListener();
  const chain: number[] = [];
  let p = statOf(pid)?.ppid ?? 0;
  while (p !== listener) {
    if (p <= 1) throw new Error(`process ${pid} does not descend from the test sshd listener ${listener}`);
    chain.push(p);
    p = statOf(p)?.ppid ?? 0;
  }
  return chain;
}

export function alive(pid: number): boolean {
  const st = statOf(pid);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}

/** Stopped by a signal (state T). */
export function stopped(pid: number): boolean {
  return statOf(pid)?.state === 'T';
}

/** Total bytes of regular files under dir (0 if it is gone; races with deletion are fine). */
export function bytesUnder(dir: string): number {
  let n = 0;
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const x of names) {
      const f = path.join(d, x);
      try {
        const st = lstatSync(f);
        if (st.isDirectory()) walk(f);
        else if (st.isFile()) n += st.size;
      } catch {
        /* vanished */
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return n;
}

/** Bytes under every entry of `parent` whose name starts with `prefix` (a work area whose tx id is not known yet). */
export function bytesUnderPrefix(parent: string, prefix: string): number {
  let n = 0;
  let names: string[] = [];
  try {
    names = readdirSync(parent);
  } catch {
    return 0;
  }
  for (const x of names) if (x.startsWith(prefix)) n += bytesUnder(path.join(parent, x));
  return n;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
