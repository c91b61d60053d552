/**
 * Writes the published JSON Schemas from the definitions the loaders use:
 * `node sidecar/scripts/write-schemas.ts` (`npm run schema`). Tests fail
 * while a committed copy differs from what this writes.
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { configJsonSchema } from '../src/config/json-schema.ts'
import { policyJsonSchema } from '../src/policy/json-schema.ts'

const written: string[] = []
const out = (name: string, schema: unknown) => {
  const file = fileURLToPath(new URL(`../schema/${name}`, import.meta.url))
  writeFileSync(file, `${JSON.stringify(schema, null, 2)}\n`)
  written.push(file)
  process.stdout.write(`wrote sidecar/schema/${name}\n`)
}
out('config.schema.json', configJsonSchema())
out('policy.schema.json', policyJsonSchema())
// In the repository's own format, so `npm run check` stays green after a regeneration.
execFileSync('biome', ['format', '--write', ...written], { stdio: 'inherit' })
