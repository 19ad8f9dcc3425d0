#!/usr/bin/env node
// Error messages carry file paths and repro commands: never hard-wrap them
// when stderr is not a terminal (logs, CI, pipes). Set before oclif loads.
if (!process.stderr.isTTY && process.env.OCLIF_COLUMNS === undefined) process.env.OCLIF_COLUMNS = '10000';

const { execute } = await import('@oclif/core');
await execute({ dir: import.meta.url });
