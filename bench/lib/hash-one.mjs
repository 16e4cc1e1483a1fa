// Child process for the hash workload: hashes one file with @dsg/manifest.
import { hashFile } from '@dsg/manifest';
console.log(await hashFile(process.argv[2]));
