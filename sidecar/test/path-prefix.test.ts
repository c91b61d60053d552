// Route and lens prefixes match whole segments, and a segment ends where some server would end it: `;` (matrix
// parameters) and an escaped slash or backslash. Those spellings must not miss a route or lens the plain path takes.
import t from 'tap'
import { RouteTable } from '../src/listener/routes.ts'
import { underPrefix } from '../src/pipeline/path-prefix.ts'

t.test('whole segments, and the ends other servers see', async (t) => {
  for (const path of [
    '/mcp',
    '/mcp/',
    '/mcp/x',
    '/mcp;x',
    '/mcp;',
    '/mcp%2F',
    '/mcp%2fx',
    '/mcp%5C',
    '/mcp\\x',
  ])
    t.ok(underPrefix(path, '/mcp'), `${path} is under /mcp`)
  for (const path of ['/mcpx', '/mc', '/mcp%2', '/mcp%20', '/mcp%41', '/mcp.json', '/MCP', '/x/mcp'])
    t.notOk(underPrefix(path, '/mcp'), `${path} is not under /mcp`)
  t.ok(underPrefix('/anything', '/'))
})

t.test('the route table takes /mcp;x where it takes /mcp', async (t) => {
  const routes = new RouteTable([
    { pathPrefix: '/mcp', upstream: 'mcp' },
    { pathPrefix: '/', upstream: 'app' },
  ])
  t.equal(routes.match('h', '/mcp;jsessionid=1?x=1')?.upstream, 'mcp')
  t.equal(routes.match('h', '/mcp%2Ftools')?.upstream, 'mcp')
  t.equal(routes.match('h', '/mcpx')?.upstream, 'app')
})
