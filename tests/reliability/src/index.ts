// The harness, for the security suite (tests/security) to reuse.
export * from './harness.js';
export {
  LAST_SYNC,
  addEntry,
  clientState,
  errorDoc,
  fileHash,
  makeScene,
  readManifest,
  repoState,
  reseal,
  saveLive,
  serial,
  writeManifest,
  writeManifestText,
  listing as byteListing,
  type ErrorDoc,
  type ManifestJson,
  type Scene,
} from './hostile-helpers.js';
