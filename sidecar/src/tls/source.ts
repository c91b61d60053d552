/**
 * The identity as the library's TLS helpers read it (an X509TlsSource):
 * the SVID is the identity's current one, so an SVID past its notAfter is
 * absent before the watch drops it and the helpers fail closed the same way
 * the rest of the sidecar does.
 */
import { BundleSet, type X509Bundle, type X509TlsSource } from 'workload-api-client'
import type { Identity } from '../identity/identity.ts'

const NO_BUNDLES = new BundleSet<X509Bundle>()

export function identityTlsSource(identity: Identity): X509TlsSource {
  return {
    get svid() {
      return identity.current()?.svid
    },
    // Read by the helpers only while an SVID is held, and so while a snapshot is.
    get bundles() {
      return identity.current()?.bundles ?? NO_BUNDLES
    },
    onUpdate: (listener) => identity.onChange(() => listener()),
  }
}
