/**
 * The policy file format, declared once. The loader validates documents
 * against these definitions (file.ts via validate.ts) and the published JSON
 * Schema is generated from them (json-schema.ts), so an editor and
 * `svidecar policy check` can never disagree on which fields exist.
 */
import { DENY_STYLES, type DenyStyle, RESOURCE_KINDS, type ResourceKind } from './engine.ts'

export interface FieldDef {
  readonly def: Def
  readonly required?: boolean
  readonly description: string
}

export type Def =
  | {
      readonly t: 'string'
      readonly enum?: readonly string[]
      readonly pattern?: string
      readonly maxLength?: number
      readonly description?: string
    }
  | { readonly t: 'integer'; readonly enum: readonly number[] }
  | { readonly t: 'list'; readonly items: Def; readonly minItems?: number }
  | { readonly t: 'object'; readonly fields: Readonly<Record<string, FieldDef>> }
  /** A mapping with exactly one of these keys. */
  | { readonly t: 'exactlyOne'; readonly fields: Readonly<Record<string, FieldDef>> }
  /** A string or a mapping: the value's own type picks the option. */
  | { readonly t: 'stringOrObject'; readonly string: Def; readonly object: Def }
  /** Mappings told apart by one key (`kind`). */
  | { readonly t: 'tagged'; readonly tag: string; readonly variants: Readonly<Record<string, Def>> }

const RULE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$'
/** Method tokens (RFC 9110 §9.1) or `*`. */
const METHOD_PATTERN = "^([!#$%&'*+.^_`|~0-9A-Za-z-]+)$"

const MODE: Def = { t: 'string', enum: ['enforce', 'audit'] }
const DENY_STYLE: Def = { t: 'string', enum: DENY_STYLES }

export const SUBJECT: Def = {
  t: 'stringOrObject',
  string: {
    t: 'string',
    description: 'a SPIFFE ID, or a pattern with whole-segment wildcards (* one segment, ** any number)',
  },
  object: {
    t: 'exactlyOne',
    fields: {
      id: { def: { t: 'string' }, description: 'exactly this SPIFFE ID' },
      pattern: {
        def: { t: 'string' },
        description:
          'a SPIFFE ID pattern: spiffe://td/agents/* (one segment) or spiffe://td/agents/** (any depth)',
      },
      trustDomain: { def: { t: 'string' }, description: 'every ID of this trust domain' },
    },
  },
}

const NAME_GLOB: FieldDef = {
  def: { t: 'string', maxLength: 1024 },
  required: true,
  description: 'a name or a glob (* stands for any characters)',
}

const RESOURCE_VARIANTS: Readonly<Record<ResourceKind, Def>> = {
  'http.route': {
    t: 'object',
    fields: {
      kind: { def: { t: 'string', enum: ['http.route'] }, required: true, description: 'an HTTP request' },
      methods: {
        def: { t: 'list', items: { t: 'string', pattern: METHOD_PATTERN }, minItems: 1 },
        description: 'HTTP methods (any when absent; "*" also means any)',
      },
      path: {
        def: { t: 'string', maxLength: 4096 },
        required: true,
        description:
          'a path pattern: literal segments, * (one segment), ** (any number), *.json (a glob in one segment)',
      },
    },
  },
  'llm.model': {
    t: 'object',
    fields: {
      kind: { def: { t: 'string', enum: ['llm.model'] }, required: true, description: 'an LLM model' },
      name: NAME_GLOB,
    },
  },
  'mcp.tool': {
    t: 'object',
    fields: {
      kind: { def: { t: 'string', enum: ['mcp.tool'] }, required: true, description: 'an MCP tool' },
      name: NAME_GLOB,
    },
  },
  'mcp.resource': {
    t: 'object',
    fields: {
      kind: { def: { t: 'string', enum: ['mcp.resource'] }, required: true, description: 'an MCP resource' },
      uri: {
        def: { t: 'string', maxLength: 4096 },
        required: true,
        description: 'a URI pattern split at "/": * (one segment), ** (any number)',
      },
    },
  },
  'mcp.prompt': {
    t: 'object',
    fields: {
      kind: { def: { t: 'string', enum: ['mcp.prompt'] }, required: true, description: 'an MCP prompt' },
      name: NAME_GLOB,
    },
  },
  'mcp.client': {
    t: 'object',
    fields: {
      kind: {
        def: { t: 'string', enum: ['mcp.client'] },
        required: true,
        description: "a request an MCP server makes of the agent, decided on the agent's sidecar",
      },
      name: {
        def: { t: 'string', maxLength: 1024 },
        required: true,
        description: 'the client capability it uses: sampling, elicitation or roots (or a glob)',
      },
    },
  },
}

export const RESOURCE: Def = { t: 'tagged', tag: 'kind', variants: RESOURCE_VARIANTS }

export const RULE: Def = {
  t: 'object',
  fields: {
    id: {
      def: { t: 'string', pattern: RULE_ID_PATTERN },
      required: true,
      description: 'unique rule id, reported in decisions and audit lines',
    },
    description: { def: { t: 'string' }, description: 'free text for people' },
    effect: { def: { t: 'string', enum: ['allow', 'deny'] }, required: true, description: 'allow or deny' },
    mode: { def: MODE, description: "this rule's mode; the policy's mode when absent" },
    subjects: {
      def: { t: 'list', items: SUBJECT, minItems: 1 },
      required: true,
      description: 'who the rule is about: any of these',
    },
    resources: {
      def: { t: 'list', items: RESOURCE, minItems: 1 },
      required: true,
      description: 'what the rule is about: any of these',
    },
    when: {
      def: { t: 'string', maxLength: 4096 },
      description: 'a CEL condition over subject, peer, resource, request, time and attributes',
    },
    denyStyle: {
      def: DENY_STYLE,
      description:
        "deny rules: how an MCP denial is answered: hide (unknown, left out of lists), explain (an error naming the rule) or forbid (403 insufficient_scope); the policy's denyStyle when absent",
    },
  },
}

export const POLICY_FILE: Def = {
  t: 'object',
  fields: {
    $schema: { def: { t: 'string' }, description: 'the JSON Schema of this file, for editors' },
    version: { def: { t: 'integer', enum: [1] }, required: true, description: 'the format version: 1' },
    mode: {
      def: MODE,
      description: 'enforce (default) or audit: let denied requests through and record them',
    },
    denyStyle: {
      def: DENY_STYLE,
      description:
        'how MCP denials without a rule of their own (the default deny, deny rules without denyStyle) are answered: hide (default), explain or forbid',
    },
    rules: { def: { t: 'list', items: RULE }, required: true, description: 'the rules; order breaks ties' },
  },
}

/** The document as the loader hands it to an engine, after validation. */
export type SubjectDoc = string | { id: string } | { pattern: string } | { trustDomain: string }
export type ResourceDoc =
  | { kind: 'http.route'; methods?: string[]; path: string }
  | { kind: 'llm.model' | 'mcp.tool' | 'mcp.prompt' | 'mcp.client'; name: string }
  | { kind: 'mcp.resource'; uri: string }
export interface RuleDoc {
  id: string
  description?: string
  effect: 'allow' | 'deny'
  mode?: 'enforce' | 'audit'
  subjects: SubjectDoc[]
  resources: ResourceDoc[]
  when?: string
  denyStyle?: DenyStyle
}
export interface PolicyDocument {
  version: 1
  mode?: 'enforce' | 'audit'
  denyStyle?: DenyStyle
  rules: RuleDoc[]
}

export { RESOURCE_KINDS }
