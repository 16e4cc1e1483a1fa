import { repositoryNameProblem, snapshotNumber, ValidationError } from '@dsg/contracts';

/**
 * ZFS naming rules (zfs(8) "Component Names"), narrowed: every component
 * starts with a letter or digit, so no name can ever be read as an option
 * (`-r`) by the zfs CLI, and `.`/`..` are impossible. Checked before any
 * command runs; the runner never sees a name that fails here.
 */
const COMPONENT = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
const MAX_NAME = 255;

function refuse(what: string, name: string, why: string): never {
  const shown = JSON.stringify(name.length > 100 ? name.slice(0, 100) + '…' : name);
  throw new ValidationError(
    `refused ${what} name ${shown}: ${why}`,
    { field: what, path: name.slice(0, 300) },
    {
      recoveryHint: 'Use letters, digits, "_", "-", "." and ":" only, each component starting with a letter or digit.',
    },
  );
}

export function assertDatasetName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) refuse('dataset', String(name), 'empty');
  if (name.length > MAX_NAME) refuse('dataset', name, `longer than ${MAX_NAME} characters`);
  const parts = name.split('/');
  if (!/^[A-Za-z]/.test(parts[0] ?? '')) refuse('dataset', name, 'the pool name must start with a letter');
  for (const p of parts) {
    if (!COMPONENT.test(p)) refuse('dataset', name, `invalid component ${JSON.stringify(p)}`);
  }
}

export function assertSnapshotName(name: string): void {
  const at = name.indexOf('@');
  if (at < 0 || at !== name.lastIndexOf('@')) refuse('snapshot', name, 'must be <dataset>@<name>');
  assertDatasetName(name.slice(0, at));
  const snap = name.slice(at + 1);
  if (!COMPONENT.test(snap)) refuse('snapshot', name, `invalid snapshot name ${JSON.stringify(snap)}`);
  if (name.length > MAX_NAME) refuse('snapshot', name, `longer than ${MAX_NAME} characters`);
}

/** A dataset or a snapshot name. */
export function assertZfsObjectName(name: string): void {
  if (typeof name === 'string' && name.includes('@')) assertSnapshotName(name);
  else assertDatasetName(name);
}

/** Native properties this package reads or sets; user properties must contain ':'. */
const NATIVE = new Set([
  'name',
  'type',
  'origin',
  'mounted',
  'mountpoint',
  'creation',
  'readonly',
  'canmount',
  'used',
  'available',
  'guid',
]);
const USER_PROP = /^[a-z0-9][a-z0-9_.-]*:[a-z0-9_.:-]+$/;

export function assertPropertyName(name: string): void {
  if (typeof name !== 'string' || !(NATIVE.has(name) || (USER_PROP.test(name) && name.length <= 256))) {
    refuse('property', String(name), 'not a known native property or a lowercase user property (module:name)');
  }
}

/** Values travel as one argv element and come back in tab-separated lines. */
export function assertPropertyValue(name: string, value: string): void {
  if (typeof value !== 'string' || value.length > 8000 || /[\0\t\n\r]/.test(value) || value === '-' || value === '') {
    refuse('property value of', name, 'empty, "-", too long, or contains a tab, newline or NUL');
  }
}

/**
 * A repository name is one dataset component that cannot collide with the
 * temp siblings this package makes (`<repo>-init-<tx>`, `-sync-`, `-old-`, `-view-`).
 */
const TEMP_INFIX = /-(init|sync|old|view)-/;

/** contracts' repository-name rule, plus no temp infix. */
export function isRepositoryName(name: string): boolean {
  return repositoryNameProblem(name) === null && !TEMP_INFIX.test(name);
}

export function assertRepositoryName(name: string): void {
  if (!isRepositoryName(name)) {
    refuse(
      'repository',
      String(name),
      'must be 1-100 of [A-Za-z0-9_.-], start with a letter or digit, and not contain ".." or -init-/-sync-/-old-/-view-',
    );
  }
}

/** `s1`, `s2`, … */
export function assertSnapshotId(id: string): number {
  const n = snapshotNumber(id); // contracts' one rule
  if (n === null) refuse('snapshot id', String(id), 'must be s<N> with N ≥ 1');
  return n;
}

/** Percent-encode the characters a property value may not hold (messages are free text). */
export function encodePropValue(value: string): string {
  if (value === '') return '%';
  return value
    .replace(/[%\t\n\r\0]/g, (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0'))
    .replace(/^-$/, '%2d');
}

export function decodePropValue(value: string): string {
  if (value === '%') return '';
  return value.replace(/%([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}
