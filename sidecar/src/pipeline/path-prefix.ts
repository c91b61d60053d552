/**
 * Whether a request path falls under a prefix, by whole segments: `/mcp`
 * takes `/mcp` and `/mcp/x`, never `/mcpx`. A segment also ends where some
 * server would end it: at `;` (matrix parameters, which Tomcat, Jetty and
 * Spring drop before routing, so `/mcp;x` is served as `/mcp`) and at an
 * escaped slash or backslash (`%2F`, `%5C`, which servers that decode before
 * routing read as `/`). Those spellings must not slip past a route or a lens
 * that the plain path would take.
 */
export function underPrefix(path: string, prefix: string): boolean {
  if (prefix === '/' || prefix === '') return true
  if (!path.startsWith(prefix)) return false
  const at = prefix.length
  if (path.length === at) return true
  const c = path.charCodeAt(at)
  if (c === 47 /* / */ || c === 59 /* ; */ || c === 92 /* \ */) return true
  if (c !== 37 /* % */) return false
  const escaped = path.slice(at + 1, at + 3).toLowerCase()
  return escaped === '2f' || escaped === '5c'
}
