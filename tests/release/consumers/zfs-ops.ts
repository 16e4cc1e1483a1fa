// A consumer of @dsg/zfs-ops alone: through its typed `zfs` command layer,
// create a dataset, write a file where ZFS mounted it, take two snapshots,
// list them, show that a bad name is refused before zfs runs, and destroy the
// dataset. Prints one JSON line; exits 1 on any mismatch.
//
// Env: DSG_TEST_POOL — an existing pool or dataset to work under (required);
// DSG_CONSUMER_DATASET — the name of the dataset to create under it (default
// consumer-<random>; it must not exist). Runs zfs directly: as root, or a user
// zfs allows to create, mount, snapshot and destroy there.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Zfs, assertDatasetName, createZfsRunner } from '@dsg/zfs-ops';

const pool = process.env.DSG_TEST_POOL;
if (!pool) {
  console.error('set DSG_TEST_POOL to the pool (or dataset) to create the test dataset under');
  process.exit(2);
}
const dataset = `${pool}/${process.env.DSG_CONSUMER_DATASET || `consumer-${randomBytes(4).toString('hex')}`}`;
assertDatasetName(dataset); // a ValidationError naming the problem, before any zfs command

const problems: string[] = [];
const check = (ok: boolean, what: string): void => {
  if (!ok) problems.push(what);
};
const zfs = new Zfs({ runner: createZfsRunner() });
let created = false;
let summary: object = {};
try {
  if (await zfs.exists(dataset))
    throw new Error(`${dataset} already exists; this program destroys only what it created`);
  await zfs.create(dataset);
  created = true;
  const mount = await zfs.mountInfo(dataset); // where ZFS mounted it, never assumed
  check(mount.mounted, `${dataset} is not mounted (${JSON.stringify(mount)})`);

  const file = join(mount.mountpoint, 'hello.txt');
  await writeFile(file, 'first\n');
  await zfs.snapshot(`${dataset}@s1`, { 'dsg:message': 'first' });
  await writeFile(file, 'second\n');
  await zfs.snapshot(`${dataset}@s2`, { 'dsg:message': 'second' });

  const rows = await zfs.list([dataset], ['name', 'dsg:message'], { depth: 1, types: ['snapshot'] });
  const snapshots = rows.map((r) => ({ name: r.name, message: r['dsg:message'] }));
  check(
    JSON.stringify(snapshots.map((s) => s.name)) === JSON.stringify([`${dataset}@s1`, `${dataset}@s2`]),
    `snapshots ${JSON.stringify(snapshots)}`,
  );
  check(snapshots[0]?.message === 'first', `s1 message ${JSON.stringify(snapshots[0]?.message)}`);
  const props = await zfs.getProps([`${dataset}@s1`], ['creation']);
  const creation = Number(props.get(`${dataset}@s1`)?.get('creation'));
  check(Number.isInteger(creation) && creation > 0, `s1 creation ${creation}`);
  check((await readFile(file, 'utf8')) === 'second\n', 'the live file lost its second write');

  // names are checked before the runner is called: nothing runs, nothing changes
  let refused = '';
  try {
    await zfs.create(`${dataset}/bad name;rm`);
  } catch (e) {
    refused = (e as { code?: string }).code ?? String(e);
  }
  check(refused === 'VALIDATION', `a bad dataset name gave ${JSON.stringify(refused)}`);

  await zfs.destroy(dataset, { recursive: true });
  created = false;
  check(!(await zfs.exists(dataset)), `${dataset} still exists after destroy`);
  summary = { dataset, mountpoint: mount.mountpoint, snapshots, s1Creation: creation, refused, destroyed: true };
} catch (e) {
  problems.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
} finally {
  if (created) await zfs.destroy(dataset, { recursive: true }).catch((e: unknown) => problems.push(`cleanup: ${e}`));
}
console.log(JSON.stringify({ ok: problems.length === 0, ...summary, problems }));
if (problems.length > 0) process.exit(1);
