#!/usr/bin/env -S node --conditions=svidecar-source --max-semi-space-size=1
// In a checkout, Node 24 runs the TypeScript sources directly (type stripping);
// the `svidecar-source` condition makes workspace packages resolve to src/ too.
// The container image runs the compiled dist/ instead and never reaches this file.
import '../src/cli/main.ts'
