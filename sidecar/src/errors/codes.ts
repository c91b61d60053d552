/**
 * The sidecar's error table: one stable code per failure, named area then
 * reason, with the HTTP status a client sees when the failure ends a request.
 * Clients, dashboards and tests branch on the code; the message is for people.
 */
export const ERROR_TABLE = {
  SVD_CONFIG_INVALID: { status: 500, summary: 'the configuration is invalid' },
  SVD_CONFIG_UNREADABLE: { status: 500, summary: 'the configuration file cannot be read' },
  SVD_POLICY_INVALID: { status: 500, summary: 'the policy file is invalid' },
  SVD_POLICY_UNREADABLE: { status: 500, summary: 'the policy file cannot be read or is too large' },
  SVD_IDENTITY_UNAVAILABLE: { status: 503, summary: 'no valid X.509-SVID is held; the sidecar fails closed' },
  SVD_REQUEST_INVALID: { status: 400, summary: 'the request is malformed or ambiguous' },
  SVD_REQUEST_HEADERS_TOO_LARGE: { status: 431, summary: 'the request headers exceed the configured limits' },
  SVD_REQUEST_URI_TOO_LONG: {
    status: 414,
    summary: 'the request target alone is longer than the request head may be (limits.maxHeaderBytes)',
  },
  SVD_REQUEST_BODY_TOO_LARGE: { status: 413, summary: 'the request body exceeds the configured limit' },
  SVD_REQUEST_TIMEOUT: { status: 408, summary: 'the client did not send the request head in time' },
  SVD_REQUEST_BODY_TIMEOUT: {
    status: 408,
    summary: 'the request body stopped arriving for longer than the body idle limit',
  },
  SVD_CONNECTION_IDLE: {
    status: 408,
    summary: 'a keep-alive connection sat idle past the idle limit and was closed (no response is written)',
  },
  SVD_REQUEST_EXPECTATION_FAILED: {
    status: 417,
    summary: 'the request has an Expect field other than 100-continue',
  },
  SVD_REQUEST_UNSUPPORTED: {
    status: 501,
    summary:
      'the sidecar does not forward this kind of request (CONNECT, OPTIONS *, TRACE, an unknown method)',
  },
  SVD_ROUTE_NOT_FOUND: { status: 404, summary: 'no route matches the request' },
  SVD_PEER_REJECTED: { status: 403, summary: 'the peer failed SPIFFE verification or authorization' },
  SVD_POLICY_DENIED: {
    status: 403,
    summary: 'the policy does not allow this subject this request (the rule is named in the audit line only)',
  },
  SVD_LLM_REQUEST_INVALID: {
    status: 400,
    summary:
      'an LLM call the lens cannot decide on: not JSON, no string model, nested too deep, a __proto__ or duplicate key',
  },
  SVD_LLM_ENDPOINT_UNKNOWN: {
    status: 404,
    summary: 'a path under an LLM route that is not an LLM endpoint the lens reads (denied by default)',
  },
  SVD_LLM_NO_PROVIDER: { status: 404, summary: 'no configured LLM provider serves this model on this API' },
  SVD_LLM_CREDENTIAL_UNAVAILABLE: {
    status: 503,
    summary:
      'the provider key the sidecar injects cannot be read (missing, empty or unusable file or variable)',
  },
  SVD_MCP_INVALID: {
    status: 400,
    summary:
      'an MCP message is malformed (not JSON, not JSON-RPC 2.0, a bad id, a duplicate id in a batch, a batch the protocol version forbids, a response POSTed in the 2026-07-28 era, member names that differ only in case, params that do not name the target, a query naming its HTTP+SSE session twice); answered with the JSON-RPC error, nothing forwarded',
  },
  SVD_MCP_HEADER_MISMATCH: {
    status: 400,
    summary:
      'a 2026-07-28 MCP request whose Mcp-Method, Mcp-Name or MCP-Protocol-Version header is missing, malformed or differs from the body, or a session-era one whose Mcp-Method or Mcp-Name differs from it (JSON-RPC -32020)',
  },
  SVD_MCP_VERSION_UNSUPPORTED: {
    status: 400,
    summary:
      'the MCP-Protocol-Version is not one the sidecar can check (JSON-RPC -32022 with the supported list)',
  },
  SVD_MCP_DENIED: {
    status: 403,
    summary:
      'the policy denies an MCP tool, resource or prompt (or the method is unknown: -32601, with HTTP 404 in the 2026-07-28 era); answered in the denial style: hide and explain as a JSON-RPC answer (200), forbid as 403 insufficient_scope',
  },
  SVD_MCP_SESSION_FOREIGN: {
    status: 403,
    summary: 'the Mcp-Session-Id was created by another SPIFFE ID',
  },
  SVD_MCP_SESSION_UNKNOWN: {
    status: 404,
    summary:
      'the sidecar holds no binding for this Mcp-Session-Id (expired or never seen): send initialize again',
  },
  SVD_MCP_ORIGIN_REFUSED: {
    status: 403,
    summary:
      'a request on an MCP path carries an Origin that is not a loopback origin (a browser page from another site, DNS rebinding); MCP agents send none',
  },
  SVD_TLS_HANDSHAKE_FAILED: {
    status: 400,
    summary: 'a client did not complete a TLS handshake (timeout, version, cipher, not TLS); it was closed',
  },
  SVD_UPSTREAM_UNAVAILABLE: {
    status: 503,
    summary: 'the upstream is unreachable (connection refused, no route, no such host); nothing was sent',
  },
  SVD_UPSTREAM_CONNECT_TIMEOUT: { status: 504, summary: 'the upstream did not accept a connection in time' },
  SVD_UPSTREAM_TIMEOUT: { status: 504, summary: 'the upstream did not answer in time' },
  SVD_UPSTREAM_RESET: {
    status: 502,
    summary: 'the upstream closed or reset the connection (also: it refused our certificate)',
  },
  SVD_UPSTREAM_TLS_FAILED: { status: 502, summary: 'the TLS handshake with the upstream failed' },
  SVD_UPSTREAM_PEER_REJECTED: {
    status: 502,
    summary: 'the upstream presented an identity that is not allowed',
  },
  SVD_UPSTREAM_PROTOCOL: {
    status: 502,
    summary: 'the upstream answered with a response the sidecar cannot relay (malformed, or not asked for)',
  },
  SVD_OVERLOADED: { status: 503, summary: 'the listener is at its connection limit' },
  SVD_SHUTTING_DOWN: { status: 503, summary: 'the sidecar is draining and takes no new requests' },
  SVD_INJECT_CONFLICT: {
    status: 409,
    summary: 'injection refused: the pod already has a container, volume or port the sidecar needs, not ours',
  },
  SVD_INJECT_INVALID: {
    status: 400,
    summary: 'injection refused: the object or one of its svidecar.io annotations is invalid',
  },
  SVD_BUDGET_EXHAUSTED: {
    status: 429,
    summary:
      'an LLM token or request budget of this SPIFFE ID is used up (retry-after says when the window resets); a stream that runs past it is ended with an error event',
  },
  SVD_BUDGET_UNAVAILABLE: {
    status: 503,
    summary: 'the shared budget store (Redis) cannot be reached and budgets fail closed',
  },
  SVD_INTERNAL: { status: 500, summary: 'an unexpected internal error' },
} as const satisfies Record<string, { status: number; summary: string }>

export type SvidecarErrorCode = keyof typeof ERROR_TABLE
