/**
 * Directory listings with each entry's `lstat`, natively (list.ts), and the
 * check of a whole tree against a recorded walk (walk.ts).
 */
export { FIELDS, Kind, kindOf, listDir, listDirJs, lister, type DirStats } from './list.js';
export { encodeWalk, sameWalk, sameWalkJs, type ListedDir } from './walk.js';
