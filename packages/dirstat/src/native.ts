/** The add-on, loaded once; null where it cannot load (or `DSG_DIRSTAT=js`). */
import { createRequire } from 'node:module';

export interface Addon {
  /** [names, kinds, stats], or the errno when the directory cannot be listed */
  list: (dir: string) => [string[], Uint8Array, Float64Array] | number;
  /** whether the tree under root is the encoded walk (see walk.ts) */
  verify: (root: string, walk: Buffer) => Promise<boolean>;
}

let native: Addon | null | undefined;

export function loadNative(): Addon | null {
  if (native !== undefined) return native;
  native = null;
  if (process.env.DSG_DIRSTAT === 'js') return native;
  try {
    const addon = createRequire(import.meta.url)(
      `../prebuilds/${process.platform}-${process.arch}/dirstat.node`,
    ) as Partial<Addon>;
    if (typeof addon.list === 'function' && typeof addon.verify === 'function') native = addon as Addon;
  } catch {
    // no prebuild here, or one this system cannot load: the JavaScript lister answers the same
  }
  return native;
}
