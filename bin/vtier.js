#!/usr/bin/env node
// The one `vtier` binary: runs the compiled CLI (npm run build:ts produces dist/).
import('../dist/cli/main.js').catch((err) => {
  process.stderr.write(`vtier: error: cannot start (${err.code ?? err.message}); run "npm run build" first\n`);
  process.exit(1);
});
