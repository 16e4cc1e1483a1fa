#!/usr/bin/env node
import { Command } from 'commander';
import { VERSION } from './version.js';

const program = new Command('dsg').version(VERSION).description('dsg: data sync and versioning for research projects');
await program.parseAsync(process.argv);
