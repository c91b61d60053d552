/**
 * `policy.headers`: the request headers policy conditions may read. A
 * header that carries a credential never goes to a policy engine (an OPA
 * server, a decision log, an error message could show it), and neither
 * does a peer-ID header, whose value in a request is whatever the client
 * wrote there (the sidecar replaces it after the decision).
 */
import { type Check, str, withJsonSchema } from './schema.ts'

const CREDENTIALS = new Map<string, string>([
  ['authorization', 'carries credentials'],
  ['proxy-authorization', 'carries credentials'],
  ['cookie', 'carries a session'],
  ['x-api-key', 'carries an API key (Anthropic)'],
  ['api-key', 'carries an API key (Azure OpenAI)'],
  ['x-goog-api-key', 'carries an API key (Gemini)'],
])

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** Any case of `name`, as a regular expression (JSON Schema patterns have no flags). */
const anyCase = (name: string) =>
  [...name].map((c) => (/[a-z]/.test(c) ? `[${c}${c.toUpperCase()}]` : c.replace('.', '\\.'))).join('')

/** A header name, lower-cased; credential-bearing headers are refused. */
export const policyHeader: Check<string> = withJsonSchema<string>(
  (v, path, issues) => {
    const name = str({ pattern: TOKEN, what: 'an HTTP header name' })(v, path, issues)
    if (name === undefined) return undefined
    const lower = name.toLowerCase()
    const why = CREDENTIALS.get(lower)
    if (why !== undefined) {
      issues.add(path, `"${name}" ${why}: a policy never sees it`)
      return undefined
    }
    return lower
  },
  {
    type: 'string',
    pattern: TOKEN.source,
    not: { pattern: `^(${[...CREDENTIALS.keys()].map(anyCase).join('|')})$` },
    description: 'a request header conditions may read (lower-case in the policy); never a credential',
  },
)
