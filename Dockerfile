# svidecar container image.
#
#   docker build -t svidecar .
#   docker run --rm -v /run/spire/sockets:/run/spire/sockets:ro -v $PWD/svidecar.yaml:/etc/svidecar/svidecar.yaml:ro svidecar
#
# Three stages: compile the TypeScript workspaces, install the production
# dependencies alone, and copy both into a distroless Node.js 24 runtime that
# has no shell and runs as a non-root user. test/deploy/image.test.ts assembles
# the same production tree outside Docker and proxies traffic through it.

# ---- build: compile every workspace to dist/ -------------------------------------------------------------------
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY workload-api-client/package.json workload-api-client/
COPY certs/package.json certs/
COPY sidecar/package.json sidecar/
# The image's own Node runs everything: skip the npm `node` package's binary download.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.base.json ./
COPY workload-api-client workload-api-client
COPY certs certs
COPY sidecar sidecar
# Not `npx tsc`: npx would put node_modules/.bin first on PATH, where the npm `node` package (skipped above) lives.
RUN node node_modules/typescript/bin/tsc -b

# ---- prod: the runtime tree, production dependencies only ---------------------------------------------------
# The dev PKI workspace (certs/: dev CA, dev Workload API, node-forge) stays out: without its folder npm ci skips
# it, so the image holds no dev CA and `svidecar demo` in the image says it needs a checkout.
FROM node:24-bookworm-slim AS prod
WORKDIR /app
COPY package.json package-lock.json ./
COPY workload-api-client/package.json workload-api-client/
COPY sidecar/package.json sidecar/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY --from=build /src/workload-api-client/dist workload-api-client/dist
COPY --from=build /src/sidecar/dist sidecar/dist

# ---- runtime -----------------------------------------------------------------------------------------------------
FROM gcr.io/distroless/nodejs24-debian12:nonroot
COPY --from=prod /app /app
WORKDIR /app
ENV NODE_ENV=production
# The SPIRE agent's socket, as the Helm charts and the SPIFFE CSI driver mount it; a config may override it.
ENV SPIFFE_ENDPOINT_SOCKET=unix:///run/spire/sockets/agent.sock
# A 1 MB young generation: scavenges stay well under a millisecond instead of 10–30 ms, which is what sets
# the p99 of a Node proxy (bench/RESULTS.md). bin/svidecar.js starts with the same flag; a test keeps them equal.
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=1", "/app/sidecar/dist/cli/main.js"]
CMD ["run", "--config", "/etc/svidecar/svidecar.yaml"]
