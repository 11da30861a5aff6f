# Hub's image: one image, four roles (web, worker, beat, gunicorn), picked by boot.sh.
#   docker build -t hub .
#   docker run --rm -e HUB_SECRET_KEY=... -e HUB_JWT_SECRET=... -e DATABASE_URL=... \
#              -e REDIS_URL=... -p 5000:5000 hub [web|worker|beat|gunicorn]

# Browser assets the hub serves itself (no CDN at run time), exactly as the Makefile's
# hub/static/vendor/.installed target lays them out, from the locked npm versions.
FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error \
 && mkdir -p vendor/swagger-ui \
 && cp node_modules/socket.io-client/dist/socket.io.esm.min.js vendor/socket.io.esm.min.js \
 && cp node_modules/socket.io-client/dist/socket.io.min.js vendor/socket.io.min.js \
 && cp node_modules/swagger-ui-dist/swagger-ui-bundle.js \
       node_modules/swagger-ui-dist/swagger-ui-standalone-preset.js \
       node_modules/swagger-ui-dist/swagger-ui.css vendor/swagger-ui/ \
 && touch vendor/.installed

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HUB_ENV=production \
    HUB_HOST=0.0.0.0 \
    HUB_PORT=5000 \
    HUB_INSTANCE_DIR=/app/instance

# Runtime dependencies only (pyproject.toml's [project] dependencies, no dev extra, no
# embedded Redis), at the tested versions of constraints.txt. On x86_64 every compiled
# dependency (psycopg[binary], gevent, greenlet) ships a wheel: no compiler needed.
WORKDIR /app
# The code and the assets stay owned by root (read-only to the server); only the instance
# directory is the hub user's.
COPY . .
RUN pip install -c constraints.txt -e .
COPY --from=assets /build/vendor/ hub/static/vendor/
RUN chmod 0755 boot.sh \
 && useradd --create-home --uid 1000 --user-group hub \
 && mkdir -p instance \
 && chown hub:hub instance
USER hub

EXPOSE 5000
ENTRYPOINT ["/app/boot.sh"]
CMD ["web"]
