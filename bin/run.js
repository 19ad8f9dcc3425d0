#!/usr/bin/env node
// Error messages carry file paths and repro commands: never hard-wrap them
// when stderr is not a terminal (logs, CI, pipes). Set before oclif loads.
if (!process.stderr.isTTY && process.env.OCLIF_COLUMNS === undefined) process.env.OCLIF_COLUMNS = '10000';

const { execute } = await import('@oclif/core');
const { loadedAddon } = await import('../dist/backend/addon.js');

// Once the report is out the process ends with its code, whatever native
// threads are still doing: a kernel thread stuck in a loop the watchdog could
// not stop, or a GPU kernel still running, would keep the event loop alive or
// make the exit handlers (the GPU driver's, the addon's cleanup) wait forever.
// Where the addon was loaded, the end is _exit(), past those handlers.
process.on('exit', (code) => {
  const addon = loadedAddon();
  if (addon !== null) addon.exitNow(code ?? 0);
});

await execute({ dir: import.meta.url });

const flushed = (stream) =>
  new Promise((resolve) => {
    if (stream.writableLength === 0) resolve();
    else stream.write('', () => resolve());
  });
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(Number(process.exitCode ?? 0));
