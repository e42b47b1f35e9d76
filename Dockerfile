# syntax=docker/dockerfile:1
# One image for Berth, two entry points: `berth server` (the default) and `berth operator`.
# Without a Docker engine, `npm run image` builds the same image (see docs/image.md): both run as
# 65532:65532 with the data volume at /var/lib/berth and carry the same OCI labels.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY server ./server
COPY operator ./operator
RUN npm run build && npm prune --omit=dev && find dist -name '*.map' -delete

FROM node:20-bookworm-slim
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="A container image registry for Kubernetes: OCI Distribution API over MinIO or a local folder, with an operator and a Helm chart." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/berth-dev/berth" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV NODE_ENV=production \
    BERTH_STORAGE_FILESYSTEM_ROOT=/var/lib/berth
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/server ./dist/server
COPY --from=build /src/dist/operator ./dist/operator
RUN mkdir -p /var/lib/berth && chown 65532:65532 /var/lib/berth && chmod 0750 /var/lib/berth
USER 65532:65532
VOLUME /var/lib/berth
EXPOSE 5000
# A 4 MiB young generation (V8's semi-space; Node's default is 16 MiB): streams make
# short-lived garbage, and a smaller nursery keeps RSS down at no measured cost (ADR 0009).
ENTRYPOINT ["node", "--max-semi-space-size=4", "/app/dist/server/cli.js"]
CMD ["server"]
