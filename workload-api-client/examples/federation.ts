import { BundleEndpointServer, FederatedBundleSource, SpiffeBundle, X509Source } from 'workload-api-client'

// Our side: serve our trust domain's bundle, authenticated with our own X509-SVID (https_spiffe).
const source = await X509Source.create({ timeoutMs: 10_000 })
const me = source.getX509Svid().id
const td = me.trustDomain
const ourBundle = (): SpiffeBundle | undefined => {
  const x509 = source.getX509BundleForTrustDomain(td)
  return x509 === undefined ? undefined : SpiffeBundle.from(td, { x509 })
}
const server = await BundleEndpointServer.start({
  trustDomain: td,
  bundle: ourBundle,
  profile: { type: 'https_spiffe', svidSource: source },
  path: '/bundle',
})
console.log(`serving the bundle of ${td} at ${server.url}`)

// A federated peer's side: poll that endpoint. The first connection is authenticated with a
// bundle obtained out of band (here, ours), later ones with the latest fetched bundle.
const federated = new FederatedBundleSource({
  endpoint: { trustDomain: td, url: server.url, profile: { type: 'https_spiffe', endpointSpiffeId: me } },
  initialBundle: ourBundle() as SpiffeBundle,
})
federated.onError((err) =>
  console.error(`refresh failed (${err.code} ${err.reason}), keeping the last bundle`),
)
await federated.waitFetched({ timeoutMs: 10_000 })
const roots = federated.bundle?.x509.authorities.length
console.log(`fetched ${roots} root(s) of ${td}, next refresh in ${(federated.nextRefreshInMs ?? 0) / 1000} s`)

federated.close()
await server.close()
source.close()
