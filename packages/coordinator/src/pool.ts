/** The one bounded-concurrency loop lives in @dsg/contracts; re-exported under the engine's old import path. */
export { forEachLimited } from '@dsg/contracts';
