# syntax=docker/dockerfile:1
# cardata-gateway container image. TypeScript runs directly through tsx (a runtime
# dependency), so there is no build step: one stage installs the production
# dependencies, the final stage copies them and the sources and runs as `node`.

# ---- deps: production node_modules only (tsx is a runtime dependency, so it stays) ----
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

# ---- runtime ----
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    MQTT_PORT=1883 \
    HTTP_PORT=8080 \
    DATA_DIR=/app/data

# Code is owned by root and read-only for the process; only DATA_DIR (the embedded
# database, used when DATABASE_URL is unset) belongs to the `node` user.
COPY package.json package-lock.json tsconfig.json main.ts ./
COPY --from=deps /app/node_modules ./node_modules
COPY app/ ./app/
COPY config/ ./config/
COPY identity/ ./identity/
COPY proto/ ./proto/
COPY gateway/ ./gateway/
COPY filters/ ./filters/
COPY access/ ./access/
COPY stream/ ./stream/
COPY storage/ ./storage/
COPY api/ ./api/
COPY web/ ./web/
COPY metrics/ ./metrics/
COPY cli/ ./cli/
COPY simulator/ ./simulator/
COPY bin/ ./bin/
RUN mkdir -p /app/data && chown node:node /app/data

USER node
EXPOSE 1883 8080

# Ready = broker listening and database answering (GET /readyz → 200). No curl in the
# slim image, so node's own fetch does the request.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# node itself is PID 1 (no npm/npx wrapper), so SIGTERM reaches the gateway's
# orderly shutdown: stop MQTT intake, drain, flush the writer, close.
CMD ["node", "--import", "tsx", "main.ts"]
