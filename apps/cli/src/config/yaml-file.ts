import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, isMap, isPair, isScalar, isSeq, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '@dsg/contracts';

/** A parsed YAML config file that still knows where each key sits (for error lines). */
export interface YamlSource {
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
  /** the plain JS value */
  value: unknown;
  /** the file's text as read */
  text: string;
}

/** Read and parse a YAML file; syntax errors become ConfigError naming the file and line. */
export async function readYamlFile(file: string): Promise<YamlSource> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `cannot read ${file}: ${(e as Error).message}`,
      { file },
      {
        recoveryHint: 'Check that the file exists and is readable.',
        cause: e,
      },
    );
  }
  return parseYamlText(text, file);
}

/** Anchor uses a config may make (a config needs none; the yaml package's own default). */
export const MAX_ALIAS_COUNT = 100;

function firstAliasLine(text: string): number {
  const i = text.split('\n').findIndex((l) => /(^|[\s,[{:-])\*[^\s,\]}]+/.test(l));
  return i < 0 ? 1 : i + 1;
}

export function parseYamlText(text: string, file: string): YamlSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const line = lines.linePos(err.pos[0]).line;
    const first = err.message.split('\n')[0] ?? err.message;
    throw new ConfigError(
      `${file}:${line}: invalid YAML: ${first}`,
      { file, line },
      {
        recoveryHint: `Fix the YAML syntax at line ${line} of ${file} (indentation, colons, quotes).`,
      },
    );
  }
  let value: unknown;
  try {
    // aliases expand: a few lines can stand for billions of nodes ("billion laughs")
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as unknown;
  } catch (e) {
    if (!/alias/i.test(String((e as Error).message))) {
      throw new ConfigError(
        `${file}:1: invalid YAML: ${String((e as Error).message).split('\n')[0]}`,
        { file, line: 1 },
        {
          recoveryHint: `Fix the YAML of ${file}.`,
          cause: e,
        },
      );
    }
    const line = firstAliasLine(text);
    throw new ConfigError(
      `${file}:${line}: YAML aliases expand too far (more than ${MAX_ALIAS_COUNT} uses of an anchor); refusing to expand them`,
      { file, line },
      {
        recoveryHint: `Write the values of ${file} out instead of through anchors (&name) and aliases (*name).`,
        cause: e,
      },
    );
  }
  return { file, doc, lines, value, text };
}

/**
 * Line of the key at `path` in the document: the key itself when it exists,
 * else the deepest existing parent (a missing key is reported where its map is).
 */
export function lineOf(src: YamlSource, path: readonly PropertyKey[]): number {
  let node: Node | null = src.doc.contents;
  let line = node?.range ? src.lines.linePos(node.range[0]).line : 1;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      const key = pair.key as Node;
      if (key.range) line = src.lines.linePos(key.range[0]).line;
      node = (pair.value as Node | null) ?? null;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item) break;
      if (item.range) line = src.lines.linePos(item.range[0]).line;
      node = item;
    } else break;
  }
  return line;
}

/** Validate with zod; the first issue becomes a ConfigError naming file, line, key and what is expected. */
export function validateYaml<S extends z.ZodType>(src: YamlSource, schema: S, value: unknown = src.value): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  // An unknown key is reported at the key itself, not at its map.
  const extra = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
  const where = extra === undefined ? issue.path : [...issue.path, extra];
  const key = where.map(String).join('.') || '(top level)';
  const line = lineOf(src, where);
  const message = extra === undefined ? issue.message : 'unknown key (misspelled?)';
  throw new ConfigError(
    `${src.file}:${line}: ${key}: ${message}`,
    { file: src.file, field: key, line },
    {
      recoveryHint: `Edit ${src.file} line ${line}: ${key} ${hintFor(message)}`,
    },
  );
}

function hintFor(message: string): string {
  return /expected|must|one of/i.test(message) ? `(${message.replace(/^Invalid input: /, '')}).` : 'must be fixed.';
}
