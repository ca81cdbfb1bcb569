# jobwire container image: a Debian 12 build stage that uses the same scripts as a developer
# checkout (scripts/install-deps.sh, scripts/build.sh), and a slim runtime stage with only the
# shared libraries the daemon links, running as an unprivileged numeric user.
#
#   docker build -t jobwire:0.1.0 .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis://redis:6379 jobwire:0.1.0
#
# Configuration: /etc/jobwire/jobwire.conf (conf/jobwire.conf with listen_address 0.0.0.0 and
# web_root /app/web); the Helm chart mounts its own file there. Secrets come from the
# environment (REDIS_PASSWORD), never from the image.

# ---- build ---------------------------------------------------------------------------------------
FROM debian:12-slim AS build
WORKDIR /src
# Dependencies first, so this layer is cached while only the sources change.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN scripts/build.sh -- -DJW_BENCH=OFF -DJW_TESTS=OFF \
    && test -x build/jobwire && build/jobwire --version

# ---- runtime -------------------------------------------------------------------------------------
FROM debian:12-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libwebsockets17 libwebsockets-evlib-ev libev4 libhiredis0.14 libevent-2.1-7 \
        libevent-openssl-2.1-7 \
        libevent-pthreads-2.1-7 libjansson4 libjwt0 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 jobwire \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin jobwire

WORKDIR /app
COPY --from=build /src/build/jobwire /app/jobwire
COPY web/ /app/web/
COPY conf/jobwire.conf /app/conf/jobwire.conf
RUN mkdir -p /etc/jobwire \
    && sed -e 's/^listen_address .*/listen_address 0.0.0.0/' \
           -e 's|^web_root .*|web_root /app/web|' \
           /app/conf/jobwire.conf > /etc/jobwire/jobwire.conf \
    && /app/jobwire --check-config --config /etc/jobwire/jobwire.conf >/dev/null

# Numeric, so Kubernetes can verify runAsNonRoot. Nothing in the image is writable by it.
USER 10001:10001
EXPOSE 8080
# jobwire drains on SIGTERM (the default stop signal). Probes: /healthz and /readyz (see
# docs/OPERATIONS.md); no HEALTHCHECK, the orchestrator probes over HTTP.
ENTRYPOINT ["/app/jobwire"]
CMD ["--config", "/etc/jobwire/jobwire.conf"]
