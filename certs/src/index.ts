export * from './bundle-doc.ts'
export * from './ca.ts'
export * from './jwt.ts'
