/**
 * The JSON Schema (draft 2020-12) of the config file, generated from the
 * SCHEMA the loader validates with. The published copy is
 * `sidecar/schema/config.schema.json` (`npm run schema` writes it); a test
 * keeps it equal to this output. It says what a field may hold; the meaning
 * checks (routes naming upstreams, ports in use, engine-specific fields) are
 * the loader's alone, so `svidecar config check` stays the final word.
 */
import { SCHEMA } from './index.ts'
import { type JsonSchema, toJsonSchema } from './schema.ts'

const CONFIG_SCHEMA_ID = 'https://svidecar.dev/schema/config.schema.json'

export function configJsonSchema(): JsonSchema {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: CONFIG_SCHEMA_ID,
    title: 'svidecar configuration',
    description:
      'The sidecar: its Workload API, listeners, upstreams, limits and policy. Unknown fields are errors.',
    ...toJsonSchema(SCHEMA as never),
  }
}
