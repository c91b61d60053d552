// [C12] Workload API endpoint addresses (SPIFFE_Workload_Endpoint.md §3-§4): the forms the spec allows,
// and one stable reason for each form it refuses.
import t from 'tap'
import { parseEndpointAddress, resolveEndpointAddress } from 'workload-api-client'

t.test('[C12] accepted forms and the gRPC target each becomes', async (t) => {
  const cases: [string, string][] = [
    ['unix:///tmp/spire-agent/public/api.sock', 'unix:/tmp/spire-agent/public/api.sock'],
    ['unix:/run/agent.sock', 'unix:/run/agent.sock'],
    ['tcp://127.0.0.1:8000', '127.0.0.1:8000'],
    ['tcp://[::1]:8000', '[::1]:8000'],
  ]
  for (const [value, target] of cases) t.equal(parseEndpointAddress(value).grpcTarget, target, value)
})

t.test('[C12] refused forms, each with its reason', async (t) => {
  const cases: [string, string][] = [
    ['', 'EMPTY'],
    ['unix://tmp/agent.sock', 'UNIX_AUTHORITY'],
    ['unix:relative.sock', 'UNIX_RELATIVE'],
    ['unix:', 'UNIX_EMPTY_PATH'],
    ['tcp://localhost:8000', 'TCP_HOST_NOT_IP'],
    ['tcp://1.2.3.4', 'TCP_PORT_MISSING'],
    ['tcp://1.2.3.4:0', 'TCP_BAD_PORT'],
    ['tcp://1.2.3.4:1/x', 'HAS_PATH'],
    ['tcp://1.2.3.4:1?x=1', 'HAS_QUERY'],
    ['unix:///tmp/a.sock?x=1', 'HAS_QUERY'],
    ['unix:///tmp/a.sock#f', 'HAS_FRAGMENT'],
    ['tcp://u@1.2.3.4:1', 'HAS_USERINFO'],
    ['tcp:1.2.3.4:1', 'TCP_OPAQUE'],
    ['http://127.0.0.1:8000', 'BAD_SCHEME'],
    ['/tmp/agent.sock', 'BAD_SCHEME'],
    ['unix:///tmp/a b.sock', 'BAD_CHARACTER'],
  ]
  for (const [value, reason] of cases) {
    t.throws(() => parseEndpointAddress(value), { code: 'SPIFFE_WLAPI_ADDRESS_INVALID', reason }, value)
  }
  t.throws(() => resolveEndpointAddress(undefined, {}), {
    code: 'SPIFFE_WLAPI_ADDRESS_INVALID',
    reason: 'NOT_CONFIGURED',
  })
})

// The most common mistake is a bare socket path, as SPIRE's own `-socketPath` flags take it.
t.test('a bare socket path is refused with the address it should have been', async (t) => {
  t.throws(() => resolveEndpointAddress(undefined, { SPIFFE_ENDPOINT_SOCKET: '/tmp/spire-agent/api.sock' }), {
    reason: 'BAD_SCHEME',
    message: /SPIFFE_ENDPOINT_SOCKET: .*did you mean "unix:\/\/\/tmp\/spire-agent\/api\.sock"\?/,
  })
})
