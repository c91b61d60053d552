/**
 * A listener's `mcp` section: the paths that speak MCP (Streamable HTTP)
 * and the lens's limits. Present on a listener, it puts the MCP lens
 * (stages/mcp.ts) in that listener's pipeline.
 */
import { bool, field, int, list, nonZeroDuration, obj, str } from './schema.ts'

export interface McpConfig {
  paths: string[]
  maxMessageBytes: number
  sessions: { max: number; idleTimeout: number }
  pinTools: boolean
}

export const MCP_DEFAULTS = {
  maxMessageBytes: 4 * 1024 * 1024,
  sessions: { max: 10_000, idleTimeout: 3_600_000 },
} as const

export const mcpSection = obj({
  paths: field(list(str({ pattern: /^\/[^?#]*$/, what: 'a path starting with /' })), { required: true }),
  maxMessageBytes: field(int(1024, 256 * 1024 * 1024), { default: MCP_DEFAULTS.maxMessageBytes }),
  sessions: field(
    obj({
      max: field(int(1, 10_000_000), { default: MCP_DEFAULTS.sessions.max }),
      idleTimeout: field(nonZeroDuration('a session binding would expire at once'), {
        default: MCP_DEFAULTS.sessions.idleTimeout,
      }),
    }),
  ),
  pinTools: field(bool, { default: false }),
})

/** The section with every default filled in. */
export function mcpConfig(parsed: {
  paths: string[]
  maxMessageBytes: number
  sessions?: { max: number; idleTimeout: number } | undefined
  pinTools: boolean
}): McpConfig {
  return {
    paths: parsed.paths,
    maxMessageBytes: parsed.maxMessageBytes,
    sessions: parsed.sessions ?? { ...MCP_DEFAULTS.sessions },
    pinTools: parsed.pinTools,
  }
}
