import { stat } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { isMap, isNode, isPair, isScalar, parseDocument } from 'yaml';
import { writeFileAtomic } from '@dsg/contracts';
import { readYamlFile, type YamlSource } from './yaml-file.js';
import { hostSettings, type UserConfig } from './user.js';
import {
  LOCAL_CONFIG_FILE,
  PERSONAL_KEYS,
  PROJECT_CONFIG_FILE,
  writeLocalConfig,
  type LoadedProject,
  type RepositoryConfig,
} from './project.js';

/** What `validate-config --fix` did with each per-person key of .dsgconfig.yml. */
export interface PersonalKeysFix {
  /** copied into .dsg/config.local.yml, then removed from .dsgconfig.yml */
  moved: { key: string; value: unknown }[];
  /** removed from .dsgconfig.yml and not moved: this copy did not use it (why: `reason`) */
  kept: { key: string; value: unknown; reason: string }[];
  /** removed from .dsgconfig.yml and not moved: the agent command is never taken from a shared file */
  dropped: { key: string; value: unknown }[];
}

/**
 * Move the per-person keys (port, user, sudo) of .dsgconfig.yml's
 * repository block out of the shared file; `agent` is removed and never
 * moved (an agent command in a file anyone can commit to is not trusted,
 * whoever wrote it). What this copy connects with does not change: a key is
 * moved into .dsg/config.local.yml only when it is in use, i.e. the copy
 * never synced and connects with .dsgconfig.yml's block (which then becomes
 * its local file). Once a local file exists the shared keys are not used
 * (they may be a teammate's: moving `user: bob` into Ana's file would break
 * her connection), so they are only removed. The local file is written
 * first (a crash between leaves a key in both places, never in neither).
 * Nothing is written when the shared file has none of these keys.
 */
export async function movePersonalKeys(project: LoadedProject, user: UserConfig | null): Promise<PersonalKeysFix> {
  const fix: PersonalKeysFix = { moved: [], kept: [], dropped: [] };
  if (project.legacy) return fix; // the legacy form has no such keys (--fix-legacy rewrites it)
  const shared = await readYamlFile(project.file);
  const found = PERSONAL_KEYS.filter((k) => shared.doc.hasIn(['repository', k]));
  if (found.length === 0) return fix;
  const sharedRepo = project.shared.repository as Record<string, unknown>;
  const local = project.connection.local?.repository as Record<string, unknown> | undefined;
  const host = hostSettings(user, project.config.repository.host);
  for (const k of found) {
    const key = `repository.${k}`;
    const value = sharedRepo[k];
    const fromHost = (host as Record<string, unknown> | undefined)?.[k];
    if (k === 'agent') fix.dropped.push({ key, value });
    else if (!local && fromHost !== undefined)
      // the user config's hosts: entry is above .dsgconfig.yml (and below the local file): it stays in effect
      fix.kept.push({ key, value, reason: `your user config sets it for this host (${JSON.stringify(fromHost)})` });
    else if (!local) fix.moved.push({ key, value });
    else
      fix.kept.push({
        key,
        value,
        reason:
          local[k] !== undefined
            ? `${LOCAL_CONFIG_FILE} sets its own (${JSON.stringify(local[k])})`
            : `this copy did not use it (it connects with ${LOCAL_CONFIG_FILE} and your user config)`,
      });
  }
  if (fix.moved.length > 0) {
    const repository: Record<string, unknown> = { ...project.shared.repository };
    for (const k of PERSONAL_KEYS) if (!fix.moved.some((m) => m.key === `repository.${k}`)) delete repository[k];
    await writeLocalConfig(project.root, {
      name: project.shared.name,
      repository: repository as unknown as RepositoryConfig,
    });
  }
  const mode = (await stat(project.file)).mode & 0o7777;
  await writeFileAtomic(project.file, withoutRepositoryKeys(shared, found), { mode });
  return fix;
}

/**
 * The text of a config without `repository.<key>` for each key: the lines of
 * those pairs cut out, so everything else stays byte for byte (the document
 * API's own output re-flows flow lists and comment spacing). When the cut
 * would not give the document minus those keys (a flow mapping, two pairs on
 * one line), the document API writes it instead.
 */
export function withoutRepositoryKeys(src: YamlSource, keys: readonly string[]): string {
  const text = src.text;
  const repo = src.doc.get('repository', true);
  const cuts: [number, number][] = [];
  if (isMap(repo) && !repo.flow) {
    for (const pair of repo.items) {
      if (!isPair(pair) || !isScalar(pair.key) || !pair.key.range || !keys.includes(String(pair.key.value))) continue;
      const [keyStart, keyEnd] = pair.key.range;
      const start = text.lastIndexOf('\n', keyStart - 1) + 1;
      const valueEnd = isNode(pair.value) && pair.value.range ? pair.value.range[1] : keyEnd;
      const nl = text.indexOf('\n', Math.max(valueEnd - 1, keyEnd));
      cuts.push([start, nl < 0 ? text.length : nl + 1]);
    }
  }
  let cut = text;
  for (const [a, b] of cuts.sort((x, y) => y[0] - x[0])) cut = cut.slice(0, a) + cut.slice(b);
  const expected = src.doc.clone();
  for (const k of keys) expected.deleteIn(['repository', k]);
  const got = parseDocument(cut);
  if (got.errors.length === 0 && isDeepStrictEqual(got.toJS(), expected.toJS())) return cut;
  return String(expected);
}

/** The lines `validate-config --fix` prints for what it did. */
export function describeFix(fix: PersonalKeysFix): string[] {
  const show = (v: unknown): string => (Array.isArray(v) ? v.join(' ') : String(v));
  const out: string[] = [];
  for (const m of fix.moved)
    out.push(`moved ${m.key}: ${show(m.value)} from ${PROJECT_CONFIG_FILE} to ${LOCAL_CONFIG_FILE}`);
  for (const k of fix.kept)
    out.push(`removed ${k.key}: ${show(k.value)} from ${PROJECT_CONFIG_FILE} and did not move it: ${k.reason}`);
  for (const d of fix.dropped)
    out.push(
      `removed ${d.key}: ${show(d.value)} from ${PROJECT_CONFIG_FILE} and did not move it: an agent command is never taken from a shared file; set it in ${LOCAL_CONFIG_FILE} or your user config (hosts: <host>: agent:) if you need it`,
    );
  return out;
}
