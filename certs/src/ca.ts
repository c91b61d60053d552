/**
 * A development CA that mints X.509-SVIDs shaped like SPIRE's (EC P-256 by
 * default; subject C=US, O=SPIRE; KU digitalSignature|keyEncipherment|
 * keyAgreement; EKU serverAuth+clientAuth; NotBefore 10 s in the past) and,
 * on request, every variant the X509-SVID spec forbids, so verifiers can be
 * tested against real certificates rather than mocks.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from 'node:crypto'
import {
  type Asn1Node,
  bits,
  bool,
  derSequence,
  explicit,
  fromDer,
  implicitIa5,
  nul,
  octets,
  oid,
  printable,
  seq,
  set,
  smallInt,
  time,
  toDer,
  uint,
  utf8,
} from './asn1.ts'

/** rsa-1024 exists only to mint keys OpenSSL's security level 2 refuses. */
export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-1024'

export type KeyUsageName = 'digitalSignature' | 'keyEncipherment' | 'keyAgreement' | 'keyCertSign' | 'cRLSign'

export interface RawExtension {
  oid: string
  critical: boolean
  value: Uint8Array
}

export interface IssuedX509Svid {
  spiffeId: string
  /** Leaf, then intermediates; never the root (it travels in the bundle). */
  certificates: X509Certificate[]
  certChainDer: Buffer
  privateKey: KeyObject
  /** PKCS#8, as the Workload API sends it. */
  keyDer: Buffer
  certChainPem: string
  keyPem: string
}

export interface LeafOptions {
  spiffeId?: string
  /** The exact URI SAN list; overrides spiffeId (`[]` or two entries for broken leaves). */
  uriSans?: string[]
  dnsNames?: string[]
  keyType?: KeyType
  /** Default 1 h, SPIRE's default X.509-SVID TTL. */
  ttlMs?: number
  notBefore?: Date
  notAfter?: Date
  isCa?: boolean
  /** Overrides single bits of SPIRE's default leaf key usage. */
  keyUsage?: Partial<Record<KeyUsageName, boolean>>
  omitKeyUsage?: boolean
  /** Default both; null omits the extension. */
  extKeyUsage?: Array<'serverAuth' | 'clientAuth'> | null
  /** The returned key does not match the leaf. */
  mismatchedKey?: boolean
  /** An empty subject (then the SAN is critical, as RFC 5280 requires, unless sanCritical says otherwise). */
  emptySubject?: boolean
  sanCritical?: boolean
  extraExtensions?: RawExtension[]
  /** An authority key ID other than the signer's subject key ID. */
  authorityKeyId?: Uint8Array
  /** Signs the leaf with SHA-1 instead of SHA-256/384. */
  sha1Signature?: boolean
}

export interface CaOptions {
  trustDomain: string
  keyType?: KeyType
  /** Default 24 h, SPIRE's default CA TTL. */
  ttlMs?: number
  notBefore?: Date
  notAfter?: Date
  /** Subject CN; two CAs with the same name model SPIRE's rotation overlap. */
  commonName?: string
  /**
   * Intermediates between the root and the CA that signs, as SPIRE with an
   * UpstreamAuthority (1) or nested SPIRE (2 and more) has. Default 0.
   */
  intermediates?: number
}

export interface IntermediateOptions extends Omit<CaOptions, 'trustDomain'> {
  trustDomain?: string
  /** False makes a broken intermediate (basicConstraints cA=false). */
  isCa?: boolean
  keyUsage?: Partial<Record<KeyUsageName, boolean>>
  pathLenConstraint?: number
  /** The exact URI SAN list (default `spiffe://<td>`; `[]` omits the SAN). */
  uriSans?: string[]
  /** Extensions added as given, e.g. nameConstraints as some upstream CAs set them. */
  extraExtensions?: RawExtension[]
}

const HOUR = 3600_000
const LEAF_BACKDATE_MS = 10_000

const OID = {
  C: '2.5.4.6',
  O: '2.5.4.10',
  CN: '2.5.4.3',
  ski: '2.5.29.14',
  ku: '2.5.29.15',
  san: '2.5.29.17',
  bc: '2.5.29.19',
  aki: '2.5.29.35',
  eku: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  rsaSha256: '1.2.840.113549.1.1.11',
  rsaSha1: '1.2.840.113549.1.1.5',
  ecdsaSha1: '1.2.840.10045.4.1',
} as const

export function generateKey(type: KeyType): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (type) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    case 'ec-p384':
      return generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
    case 'rsa-2048':
      return generateKeyPairSync('rsa', { modulusLength: 2048 })
    case 'rsa-1024':
      return generateKeyPairSync('rsa', { modulusLength: 1024 })
  }
}

interface Signer {
  name: Asn1Node[]
  key: KeyObject
  ski: Buffer
}

export class DevCa {
  readonly trustDomain: string
  /** This CA's own certificate (the root, or an intermediate). */
  readonly certificate: X509Certificate
  /** The self-signed root this CA chains to. */
  readonly root: X509Certificate
  readonly keyType: KeyType
  readonly #signer: Signer
  /** Intermediates from this CA up to, excluding, the root. */
  readonly #chain: X509Certificate[]

  private constructor(
    trustDomain: string,
    certificate: X509Certificate,
    root: X509Certificate,
    keyType: KeyType,
    signer: Signer,
    chain: X509Certificate[],
  ) {
    this.trustDomain = trustDomain
    this.certificate = certificate
    this.root = root
    this.keyType = keyType
    this.#signer = signer
    this.#chain = chain
  }

  /** A self-signed root with URI SAN `spiffe://<td>`, like SPIRE's server CA. */
  static create(opts: CaOptions): DevCa {
    const keyType = opts.keyType ?? 'ec-p256'
    const { privateKey, publicKey } = generateKey(keyType)
    const name = caName(opts.commonName ?? `${opts.trustDomain} dev root`)
    const ski = keyId(publicKey)
    const now = Date.now()
    const notBefore = opts.notBefore ?? new Date(now - LEAF_BACKDATE_MS)
    const notAfter = opts.notAfter ?? new Date((opts.notBefore?.getTime() ?? now) + (opts.ttlMs ?? 24 * HOUR))
    const der = buildCertificate({
      issuer: { name, key: privateKey, ski },
      subject: name,
      publicKey,
      notBefore,
      notAfter,
      extensions: [
        ext(OID.bc, true, seq([bool(true)])),
        ext(OID.ku, true, keyUsage({ keyCertSign: true, cRLSign: true })),
        ext(OID.ski, false, octets(ski)),
        ext(OID.san, false, seq([implicitIa5(6, `spiffe://${opts.trustDomain}`)])),
      ],
    })
    const cert = new X509Certificate(der)
    let ca = new DevCa(opts.trustDomain, cert, cert, keyType, { name, key: privateKey, ski }, [])
    for (let i = 0; i < (opts.intermediates ?? 0); i++) ca = ca.createIntermediate()
    return ca
  }

  /** An intermediate CA signed by this one (SPIRE with an UpstreamAuthority issues through one). */
  createIntermediate(opts: IntermediateOptions = {}): DevCa {
    const keyType = opts.keyType ?? this.keyType
    const td = opts.trustDomain ?? this.trustDomain
    const { privateKey, publicKey } = generateKey(keyType)
    const name = caName(opts.commonName ?? `${td} dev intermediate ${randomBytes(4).toString('hex')}`)
    const ski = keyId(publicKey)
    const now = Date.now()
    const notBefore = opts.notBefore ?? new Date(now - LEAF_BACKDATE_MS)
    const notAfter = opts.notAfter ?? new Date((opts.notBefore?.getTime() ?? now) + (opts.ttlMs ?? 12 * HOUR))
    const bc = [bool(opts.isCa ?? true)]
    if (opts.pathLenConstraint !== undefined) bc.push(smallInt(opts.pathLenConstraint))
    const der = buildCertificate({
      issuer: this.#signer,
      subject: name,
      publicKey,
      notBefore,
      notAfter,
      extensions: [
        ext(OID.bc, true, seq(opts.isCa === false ? [] : bc)),
        ext(OID.ku, true, keyUsage({ keyCertSign: true, cRLSign: true, ...opts.keyUsage })),
        ext(OID.ski, false, octets(ski)),
        ext(OID.aki, false, seq([implicitOctets(0, this.#signer.ski)])),
        ...sanExtension(opts.uriSans ?? [`spiffe://${td}`]),
        ...(opts.extraExtensions ?? []).map((x) => ext(x.oid, x.critical, fromDer(x.value))),
      ],
    })
    const cert = new X509Certificate(der)
    return new DevCa(td, cert, this.root, keyType, { name, key: privateKey, ski }, [cert, ...this.#chain])
  }

  /** Mints an X.509-SVID; every option beyond spiffeId/dnsNames/keyType/ttl exists to break a rule. */
  issueX509Svid(opts: LeafOptions): IssuedX509Svid {
    const uris = opts.uriSans ?? (opts.spiffeId === undefined ? [] : [opts.spiffeId])
    const spiffeId = opts.spiffeId ?? uris[0] ?? ''
    const { privateKey, publicKey } = generateKey(opts.keyType ?? 'ec-p256')
    // Like SPIRE: NotBefore 10 s in the past for clock skew, NotAfter = now + TTL,
    // and a leaf never outlives its issuer unless a test asks for exactly that.
    const now = Date.now()
    const notBefore = opts.notBefore ?? new Date(now - LEAF_BACKDATE_MS)
    const notAfter =
      opts.notAfter ??
      new Date(
        Math.min(
          (opts.notBefore?.getTime() ?? now) + (opts.ttlMs ?? HOUR),
          this.certificate.validToDate.getTime(),
        ),
      )
    const names = [
      ...uris.map((u) => implicitIa5(6, u)),
      ...(opts.dnsNames ?? []).map((d) => implicitIa5(2, d)),
    ]
    const extensions: Asn1Node[] = [ext(OID.bc, true, seq(opts.isCa ? [bool(true)] : []))]
    if (!opts.omitKeyUsage) {
      extensions.push(
        ext(
          OID.ku,
          true,
          keyUsage({ digitalSignature: true, keyEncipherment: true, keyAgreement: true, ...opts.keyUsage }),
        ),
      )
    }
    const eku = opts.extKeyUsage === undefined ? (['serverAuth', 'clientAuth'] as const) : opts.extKeyUsage
    if (eku !== null) extensions.push(ext(OID.eku, false, seq(eku.map((e) => oid(OID[e])))))
    extensions.push(ext(OID.ski, false, octets(keyId(publicKey))))
    extensions.push(ext(OID.aki, false, seq([implicitOctets(0, opts.authorityKeyId ?? this.#signer.ski)])))
    if (names.length > 0)
      extensions.push(ext(OID.san, opts.sanCritical ?? opts.emptySubject === true, seq(names)))
    for (const x of opts.extraExtensions ?? []) extensions.push(ext(x.oid, x.critical, fromDer(x.value)))
    const subject = opts.emptySubject
      ? []
      : [
          rdn(OID.C, printable('US')),
          rdn(OID.O, utf8('SPIRE')),
          ...(opts.dnsNames?.[0] ? [rdn(OID.CN, utf8(opts.dnsNames[0]))] : []),
        ]
    const der = buildCertificate({
      issuer: this.#signer,
      subject,
      publicKey,
      notBefore,
      notAfter,
      extensions,
      ...(opts.sha1Signature ? { hash: 'sha1' as const } : {}),
    })
    const leaf = new X509Certificate(der)
    const key = opts.mismatchedKey ? generateKey(opts.keyType ?? 'ec-p256').privateKey : privateKey
    const certificates = [leaf, ...this.#chain]
    const keyDer = key.export({ format: 'der', type: 'pkcs8' })
    return {
      spiffeId,
      certificates,
      certChainDer: Buffer.concat(certificates.map((c) => c.raw)),
      privateKey: key,
      keyDer,
      certChainPem: certificates.map((c) => c.toString()).join(''),
      keyPem: key.export({ format: 'pem', type: 'pkcs8' }).toString(),
    }
  }

  /**
   * This root re-issued with the same key and name and a new validity window, as a CA
   * renewed without a new key (cert-manager's default rotation policy before v1.18) is.
   * Certificates either one signs chain to both.
   */
  renew(opts: { notBefore?: Date; notAfter?: Date; ttlMs?: number } = {}): DevCa {
    if (this.certificate !== this.root)
      throw new Error('renew() re-issues a root; this CA is an intermediate')
    const signer = this.#signer
    const publicKey = createPublicKey(signer.key)
    const now = Date.now()
    const notBefore = opts.notBefore ?? new Date(now - LEAF_BACKDATE_MS)
    const notAfter = opts.notAfter ?? new Date(notBefore.getTime() + (opts.ttlMs ?? 24 * HOUR))
    const der = buildCertificate({
      issuer: signer,
      subject: signer.name,
      publicKey,
      notBefore,
      notAfter,
      extensions: [
        ext(OID.bc, true, seq([bool(true)])),
        ext(OID.ku, true, keyUsage({ keyCertSign: true, cRLSign: true })),
        ext(OID.ski, false, octets(signer.ski)),
        ext(OID.san, false, seq([implicitIa5(6, `spiffe://${this.trustDomain}`)])),
      ],
    })
    const cert = new X509Certificate(der)
    return new DevCa(this.trustDomain, cert, cert, this.keyType, signer, [])
  }

  /** The root as DER, the Workload API's bundle encoding. */
  bundleDer(): Buffer {
    return Buffer.from(this.root.raw)
  }

  bundlePem(): string {
    return this.root.toString()
  }

  /** @internal the CA key, for tests that must sign something unusual. */
  get privateKey(): KeyObject {
    return this.#signer.key
  }
}

/** Parses a PKCS#8 DER key (handy when re-reading keyDer). */
export function privateKeyFromDer(der: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' })
}

function sanExtension(uris: string[]): Asn1Node[] {
  return uris.length === 0 ? [] : [ext(OID.san, false, seq(uris.map((u) => implicitIa5(6, u))))]
}

function caName(cn: string): Asn1Node[] {
  return [rdn(OID.C, printable('US')), rdn(OID.O, utf8('SPIFFE')), rdn(OID.CN, utf8(cn))]
}

function rdn(type: string, value: Asn1Node): Asn1Node {
  return set([seq([oid(type), value])])
}

function ext(id: string, critical: boolean, value: Asn1Node): Asn1Node {
  const items = [oid(id)]
  // DER omits a DEFAULT FALSE value.
  if (critical) items.push(bool(true))
  items.push(octets(toDer(value)))
  return seq(items)
}

function implicitOctets(n: number, b: Uint8Array): Asn1Node {
  return fromDer(Buffer.concat([Buffer.of(0x80 | n, b.length), b]))
}

/** KeyUsage BIT STRING with DER's minimal length and unused-bit count. */
function keyUsage(flags: Partial<Record<KeyUsageName, boolean>>): Asn1Node {
  const order = [
    'digitalSignature',
    'nonRepudiation',
    'keyEncipherment',
    'dataEncipherment',
    'keyAgreement',
    'keyCertSign',
    'cRLSign',
  ]
  let byte = 0
  let last = -1
  order.forEach((name, i) => {
    if (flags[name as KeyUsageName]) {
      byte |= 0x80 >> i
      last = i
    }
  })
  return last < 0 ? bits(new Uint8Array(0)) : bits(Uint8Array.of(byte), 7 - last)
}

function keyId(publicKey: KeyObject): Buffer {
  return createHash('sha1')
    .update(publicKey.export({ format: 'der', type: 'spki' }))
    .digest()
}

function signatureAlgorithm(key: KeyObject, sha1 = false): { node: Asn1Node; hash: string } {
  if (sha1) {
    return key.asymmetricKeyType === 'rsa'
      ? { node: seq([oid(OID.rsaSha1), nul()]), hash: 'sha1' }
      : { node: seq([oid(OID.ecdsaSha1)]), hash: 'sha1' }
  }
  if (key.asymmetricKeyType === 'rsa') return { node: seq([oid(OID.rsaSha256), nul()]), hash: 'sha256' }
  const curve = key.asymmetricKeyDetails?.namedCurve
  return curve === 'secp384r1'
    ? { node: seq([oid(OID.ecdsaSha384)]), hash: 'sha384' }
    : { node: seq([oid(OID.ecdsaSha256)]), hash: 'sha256' }
}

interface CertSpec {
  issuer: Signer
  subject: Asn1Node[]
  publicKey: KeyObject
  notBefore: Date
  notAfter: Date
  extensions: Asn1Node[]
  hash?: 'sha1'
}

function buildCertificate(spec: CertSpec): Buffer {
  const alg = signatureAlgorithm(spec.issuer.key, spec.hash === 'sha1')
  const serial = randomBytes(16)
  serial[0] = (serial[0] as number) & 0x7f
  // The key's SubjectPublicKeyInfo and the signed TBS are spliced in as
  // bytes: re-parsing them into ASN.1 trees could re-encode them.
  const tbsDer = derSequence([
    toDer(explicit(0, smallInt(2))),
    toDer(uint(serial)),
    toDer(alg.node),
    toDer(seq(spec.issuer.name)),
    toDer(seq([time(spec.notBefore), time(spec.notAfter)])),
    toDer(seq(spec.subject)),
    spec.publicKey.export({ format: 'der', type: 'spki' }),
    toDer(explicit(3, seq(spec.extensions))),
  ])
  const signature = sign(alg.hash, tbsDer, spec.issuer.key)
  return derSequence([tbsDer, toDer(alg.node), toDer(bits(signature))])
}
