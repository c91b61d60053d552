export * from './bundle-set.ts'
export * from './errors.ts'
export * from './id-matcher.ts'
export * from './spiffe-id.ts'
