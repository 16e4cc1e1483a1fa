/**
 * `--normalize`, through the built binary: names refused only for being NFD
 * (as macOS writes them) are renamed to NFC before the scan, as the original
 * HRDAG/dsg does; nested ones below a renamed directory too; a name whose
 * NFC form exists is refused and nothing is renamed.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorDocSchema, syncSchema } from '../src/output/json-schemas.js';
import { dsg, ok, sandbox, write } from './helpers.js';

const NFD_FILE = 'input/re\u0301sume\u0301.csv';
const NFD_DIR = 'input/cafe\u0301';
const NFD_NESTED = `${NFD_DIR}/an\u0303o.csv`; // NFD below an NFD directory: found after the directory is renamed
const nfc = (p: string): string => p.normalize('NFC');

function names(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${n.name}` : n.name;
      if (n.isDirectory()) walk(path.join(d, n.name), r);
      else out.push(r);
    }
  };
  walk(path.join(dir, 'input'), 'input');
  return out.sort();
}

describe('--normalize renames NFD names to NFC, as the original does', () => {
  it('init refuses NFD names, --dry-run only says, --normalize renames (nested too) and syncs them; a taken NFC name is refused, nothing renamed', () => {
    const sb = sandbox();
    const dir = path.join(sb.dir, 'p');
    const root = mkdtempSync(path.join(os.tmpdir(), 'dsg-cli-norm-'));
    write(path.join(dir, 'input', 'a.csv'), 'a\n');
    write(path.join(dir, NFD_FILE), 'r\n');
    write(path.join(dir, NFD_NESTED), 'n\n');
    const init = ['init', '--repo-type', 'posix', '--repo-path', root, '--repo-name', 'p'];

    const refused = dsg(dir, sb.env, '--json', ...init);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr + refused.stdout).toMatch(/NFC|normaliz/i);
    const before = names(dir);
    expect(before).toEqual(['input/a.csv', NFD_NESTED, NFD_FILE].sort());

    const dry = syncSchema.parse(
      JSON.parse(ok(dsg(dir, sb.env, '--json', ...init, '--normalize', '--dry-run')).stdout),
    );
    expect(dry.normalized).toEqual(
      expect.arrayContaining([
        { from: NFD_FILE, to: nfc(NFD_FILE) },
        { from: NFD_DIR, to: nfc(NFD_DIR) },
      ]),
    );
    expect(names(dir)).toEqual(before); // a dry run renames nothing

    const done = syncSchema.parse(JSON.parse(ok(dsg(dir, sb.env, '--json', ...init, '--normalize')).stdout));
    expect(done.snapshotId).toBe('s1');
    expect(done.normalized?.map((r) => r.to).sort()).toEqual([nfc(NFD_DIR), nfc(NFD_NESTED), nfc(NFD_FILE)].sort());
    expect(names(dir)).toEqual(['input/a.csv', nfc(NFD_NESTED), nfc(NFD_FILE)].sort());
    expect(readFileSync(path.join(dir, nfc(NFD_NESTED)), 'utf8')).toBe('n\n');
    const head = JSON.parse(readFileSync(path.join(root, 'p', 'current', '.dsg', 'last-sync.json'), 'utf8')) as {
      entries: Record<string, unknown>;
    };
    expect(Object.keys(head.entries).sort()).toEqual(['input/a.csv', nfc(NFD_NESTED), nfc(NFD_FILE)].sort());

    // sync --normalize: a new NFD name is renamed and uploaded in the same command
    write(path.join(dir, 'output', 'n\u0303.txt'), 'x\n');
    const s = syncSchema.parse(JSON.parse(ok(dsg(dir, sb.env, '--json', 'sync', '--normalize')).stdout));
    expect(s).toMatchObject({
      snapshotId: 's2',
      normalized: [{ from: 'output/n\u0303.txt', to: 'output/\u00f1.txt' }],
    });
    expect(existsSync(path.join(dir, 'output', '\u00f1.txt'))).toBe(true);

    // an NFD name whose NFC form exists: refused with a hint, nothing renamed or synced
    write(path.join(dir, 'input', 're\u0301sume\u0301.csv'), 'other\n');
    const taken = dsg(dir, sb.env, '--json', 'sync', '--normalize');
    expect(taken.code).not.toBe(0);
    const err = errorDocSchema.parse(JSON.parse(taken.stdout));
    expect(err.error.message).toMatch(/exists/);
    expect(readFileSync(path.join(dir, nfc(NFD_FILE)), 'utf8')).toBe('r\n');
    expect(readFileSync(path.join(dir, NFD_FILE), 'utf8')).toBe('other\n');
  });
});
