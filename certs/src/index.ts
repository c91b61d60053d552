export * from './bundle-doc.ts'
export * from './jwt.ts'
