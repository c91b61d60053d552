export * from './bundle-doc.ts'
export * from './ca.ts'
export * from './dev-workload-api.ts'
export * from './jwt.ts'
