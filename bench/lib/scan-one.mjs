// Child process for the scan workload: scans a project with @dsg/manifest,
// with or without a stat cache file.
import { scanProject } from '@dsg/manifest';
const [root, cache] = process.argv.slice(2);
const r = await scanProject({
  root,
  dataDirs: ['input'],
  user: 'bench@example.org',
  ...(cache !== 'none' ? { statCacheFile: cache } : {}),
});
console.log(JSON.stringify({ entries: r.manifest.entries.size, hashed: r.stats.hashed }));
