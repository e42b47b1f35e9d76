# syntax=docker/dockerfile:1
# One image for Berth, two entry points: `berth server` (the default) and `berth operator`.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY server ./server
COPY operator ./operator
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV BERTH_STORAGE_FILESYSTEM_ROOT=/var/lib/berth
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
RUN mkdir -p /var/lib/berth && chown node:node /var/lib/berth
USER node
VOLUME /var/lib/berth
EXPOSE 5000
# A 4 MiB young generation (V8's semi-space; Node's default is 16 MiB): streams make
# short-lived garbage, and a smaller nursery keeps RSS down at no measured cost (ADR 0009).
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/server/cli.js"]
CMD ["server"]
