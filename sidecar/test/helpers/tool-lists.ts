/**
 * The large tool list the list benchmarks share (bench/mcp.ts, sidecar/bench/mcp-list.ts, and the MCP server of
 * bench/mcp-call.ts): `count` tools, every other one named `tool_0_<i>`, and a policy of 1,000 rules of which
 * one lets the planner see `tool_0_*`, so half of the list is kept for it.
 */
export const LIST_AGENT = 'spiffe://example.org/ns/agents/sa/planner'

export interface ListedTool {
  name: string
  description: string
  inputSchema: { type: 'object'; properties: Record<string, { type: string }> }
}

/** Tool `i` of the list (`i` from 0). */
export function listedTool(i: number): ListedTool {
  return {
    name: `tool_${i % 2 === 0 ? 0 : i}_${i}`,
    description: `tool number ${i}, which does something useful with its arguments`,
    inputSchema: { type: 'object', properties: { path: { type: 'string' }, depth: { type: 'integer' } } },
  }
}

export function listedTools(count: number): ListedTool[] {
  return Array.from({ length: count }, (_, i) => listedTool(i))
}

/** 1,000 allow rules on `tool_<i>_*`, one per agent; rule 0 is the planner's (LIST_AGENT). */
export function listPolicy(): string {
  const rules = Array.from(
    { length: 1000 },
    (_, i) => `  - id: r${i}
    effect: allow
    subjects: ["${i === 0 ? LIST_AGENT : `spiffe://example.org/ns/agents/sa/agent-${i}`}"]
    resources: [{ kind: mcp.tool, name: "tool_${i}_*" }]`,
  ).join('\n')
  return `version: 1\nrules:\n${rules}\n`
}
