# syntax=docker/dockerfile:1
# hoard: build the TypeScript once, then ship only what runs (dist/, production node_modules and
# the system tools hoard drives: git, tar, zstd). Runs as an unprivileged user; state lives on a
# volume at /var/lib/hoard.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
# `npm ci` runs the `prepare` build; then drop the dev dependencies from the tree we copy on.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git tar zstd ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 hoard \
 && useradd --system --uid 10001 --gid hoard --home-dir /var/lib/hoard --shell /usr/sbin/nologin hoard \
 && mkdir -p /var/lib/hoard /etc/hoard \
 && chown hoard:hoard /var/lib/hoard
WORKDIR /opt/hoard
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY deploy/docker/hoard.hcl /etc/hoard/hoard.hcl
ENV NODE_ENV=production HOARD_CONFIG=/etc/hoard/hoard.hcl
USER 10001:10001
VOLUME ["/var/lib/hoard"]
EXPOSE 8080 9102
# The image has no curl: ask Node itself. Liveness only (readiness is 503 during warm-up and drain,
# which must not restart the container).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/_liveness').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# tini reaps git's grandchildren and forwards SIGTERM, so hoard's graceful drain runs.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/opt/hoard/dist/src/cli/main.js"]
CMD ["serve"]
