import { describe, expect, it } from 'vitest';
import type { ProgressEvent } from '@dsg/contracts';
import type { Transfer } from '../src/resolve.js';
import { PROGRESS_STEP_BYTES, PROGRESS_STEP_MS, progressCounter } from '../src/transfers.js';

const file = (path: string, filesize: number): Transfer => ({
  path,
  entry: { type: 'file', path, user: 'u', filesize, mtime: '', hash: '0000000000000000' },
  source: { from: 'local' },
});

function counter(uploads: Transfer[], downloads: Transfer[] = []) {
  const events: ProgressEvent[] = [];
  const clock = { t: 1_000 };
  const pr = progressCounter({ onProgress: (e) => events.push(e) }, { uploads, downloads }, () => clock.t);
  return { events, clock, pr };
}

describe('progressCounter', () => {
  it('reports bytes every step, and sooner when they trickle (a slow link moves the bar too)', () => {
    const { events, clock, pr } = counter([file('a', 10 * PROGRESS_STEP_BYTES)]);
    pr.count(PROGRESS_STEP_BYTES - 1, 'upload');
    expect(events).toEqual([]);
    pr.count(1, 'upload');
    expect(events.at(-1)).toMatchObject({ phase: 'upload', bytes: PROGRESS_STEP_BYTES, files: 0, totalFiles: 1 });
    pr.count(10, 'upload');
    expect(events).toHaveLength(1);
    clock.t += PROGRESS_STEP_MS;
    pr.count(10, 'upload');
    expect(events).toHaveLength(2);
    expect(events.at(-1)).toMatchObject({ bytes: PROGRESS_STEP_BYTES + 20, totalBytes: 10 * PROGRESS_STEP_BYTES });
    expect(events.at(-1)).not.toHaveProperty('reusedBytes');
  });

  it('keeps reused bytes apart (no part of a rate) and takes back a reuse that failed half-way', () => {
    const { events, pr } = counter([file('a', 5)], [file('b', 3 * PROGRESS_STEP_BYTES)]);
    pr.reused(5, 'upload');
    pr.emit('upload', { path: 'a', done: true });
    expect(events.at(-1)).toEqual({
      phase: 'upload',
      files: 1,
      totalFiles: 2,
      bytes: 5,
      totalBytes: 5 + 3 * PROGRESS_STEP_BYTES,
      reusedBytes: 5,
      path: 'a',
    });
    pr.reused(2 * PROGRESS_STEP_BYTES, 'download');
    pr.reused(-2 * PROGRESS_STEP_BYTES, 'download');
    expect(events.at(-1)).toMatchObject({ bytes: 5, reusedBytes: 5 });
    pr.count(3 * PROGRESS_STEP_BYTES, 'download');
    pr.emit('download', { path: 'b', done: true });
    expect(events.at(-1)).toMatchObject({ files: 2, bytes: 5 + 3 * PROGRESS_STEP_BYTES, reusedBytes: 5 });
  });
});
