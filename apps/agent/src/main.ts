#!/usr/bin/env node
import { Command } from 'commander';
import { VERSION } from './version.js';

const program = new Command('dsg-agent').version(VERSION).description('dsg-agent: the server side of dsg');
await program.parseAsync(process.argv);
