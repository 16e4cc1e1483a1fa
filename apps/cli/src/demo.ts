#!/usr/bin/env node
// Placeholder until the CLI commands land (issue: apps/cli): says what the demo will do.
console.error(`dsg demo — not available yet: the CLI commands are still being built.
The demo will: create a project with sample data, init a local posix repository,
edit and sync, clone into a second directory, then show log, blame and snapfetch.`);
process.exit(1);
