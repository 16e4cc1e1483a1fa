import { ValidationError } from '@dsg/contracts';
import * as z from 'zod';
import { adoptMetadata, formatField, metadataPairs, parseJsonStrict } from './format.js';
import { OrderedObject, pretty } from './json.js';
import { metadataSchema, type ManifestMetadata } from './model.js';

/** `.dsg/sync-messages.json`: one metadata block per snapshot, oldest first. */
export interface SyncMessages {
  metadata_version: string;
  snapshots: Record<string, ManifestMetadata>;
}

/** What the original writes into a new repository's sync-messages.json (HRDAG/dsg `core/lifecycle.py`). */
export const SYNC_MESSAGES_VERSION = '0.4.4';

const syncMessagesSchema = z.looseObject({
  metadata_version: z.string(),
  snapshots: z.record(z.string(), metadataSchema),
});

export function parseSyncMessages(text: string, source?: string): SyncMessages {
  const raw = parseJsonStrict(text, source, 'sync messages');
  const r = syncMessagesSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = formatField(issue?.path ?? []);
    throw new ValidationError(
      `${source ?? 'sync-messages.json'}: invalid at ${field}: ${issue?.message ?? 'schema mismatch'}`,
      source ? { file: source, field } : { field },
    );
  }
  for (const [id, md] of Object.entries(r.data.snapshots)) {
    adoptMetadata(md as ManifestMetadata);
    if (md.snapshot_id !== id) {
      const field = formatField(['snapshots', id, 'snapshot_id']);
      throw new ValidationError(
        `${source ?? 'sync-messages.json'}: ${field} is ${JSON.stringify(md.snapshot_id)}, expected ${JSON.stringify(id)}`,
        source ? { file: source, field } : { field },
      );
    }
  }
  return r.data as SyncMessages;
}

export function serializeSyncMessages(messages: SyncMessages): string {
  const pairs: [string, unknown][] = [
    ['metadata_version', messages.metadata_version],
    [
      'snapshots',
      new OrderedObject(
        Object.entries(messages.snapshots).map(([k, v]) => [k, new OrderedObject(metadataPairs(v))] as const),
      ),
    ],
  ];
  for (const [k, v] of Object.entries(messages)) if (k !== 'metadata_version' && k !== 'snapshots') pairs.push([k, v]);
  return pretty(new OrderedObject(pairs));
}
