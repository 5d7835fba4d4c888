#!/usr/bin/env node
// Thin launcher of a contained run's first process (src/agent/sandbox-init.ts), started by `hoop run` inside its sandbox.
import { runInSandbox } from '../dist/agent/sandbox-init.js';

process.exit(await runInSandbox(process.argv.slice(2)));
