/**
 * The JSON Schema (draft 2020-12) of the policy file, generated from the
 * same definitions the loader validates against. The published copy is
 * `sidecar/schema/policy.schema.json`; a test keeps it equal to this output.
 */
import { type Def, POLICY_FILE } from './definitions.ts'

const POLICY_SCHEMA_ID = 'https://svidecar.dev/schema/policy.schema.json'

type Json = { [key: string]: unknown }

function toSchema(def: Def, description?: string): Json {
  const d = description === undefined ? {} : { description }
  switch (def.t) {
    case 'string':
      return {
        type: 'string',
        minLength: 1,
        ...(def.maxLength === undefined ? {} : { maxLength: def.maxLength }),
        ...(def.enum === undefined ? {} : { enum: [...def.enum] }),
        ...(def.pattern === undefined ? {} : { pattern: def.pattern }),
        ...(def.description === undefined ? d : { description: def.description }),
      }
    case 'integer':
      return { type: 'integer', enum: [...def.enum], ...d }
    case 'list':
      return {
        type: 'array',
        items: toSchema(def.items),
        ...(def.minItems === undefined ? {} : { minItems: def.minItems }),
        ...d,
      }
    case 'object':
      return {
        type: 'object',
        ...d,
        properties: Object.fromEntries(
          Object.entries(def.fields).map(([k, f]) => [k, toSchema(f.def, f.description)]),
        ),
        required: Object.entries(def.fields)
          .filter(([, f]) => f.required === true)
          .map(([k]) => k),
        additionalProperties: false,
      }
    case 'exactlyOne':
      return {
        type: 'object',
        ...d,
        properties: Object.fromEntries(
          Object.entries(def.fields).map(([k, f]) => [k, toSchema(f.def, f.description)]),
        ),
        minProperties: 1,
        maxProperties: 1,
        additionalProperties: false,
      }
    case 'stringOrObject':
      return { ...d, oneOf: [toSchema(def.string), toSchema(def.object)] }
    case 'tagged':
      return { ...d, oneOf: Object.values(def.variants).map((v) => toSchema(v)) }
  }
}

export function policyJsonSchema(): Json {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: POLICY_SCHEMA_ID,
    title: 'svidecar policy file',
    ...toSchema(
      POLICY_FILE,
      'Who may use which route, model, tool, resource or prompt. Default deny; deny beats allow.',
    ),
  }
}
