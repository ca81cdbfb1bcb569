# jobwire container image.
#
#   docker build -t jobwire:0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis://redis:6379 -e REDIS_PASSWORD jobwire:0.1.0
#
# Build stage: Debian 12 with the build dependencies only (no test tools), the CMake build with
# the hardening flags (cmake/JobwireHardening.cmake), and `cmake --install` into /out, the same
# layout as a package: /usr/bin/jobwire, /etc/jobwire/jobwire.conf, /usr/share/jobwire/web.
# Runtime stage: debian:12-slim with the shared libraries the daemon links (and the libev
# plugin libwebsockets loads at run time), unprivileged numeric user, read-only friendly.
#
# The image's /etc/jobwire/jobwire.conf is conf/jobwire.conf with listen_address 0.0.0.0,
# web_root "" (the dashboard files are in /usr/share/jobwire/web, not served unless web_root
# names them) and admin_port 9090 (/healthz, /readyz, /metrics only on that port). The Helm chart
# mounts its own file there. Secrets come from the environment (REDIS_PASSWORD), never the image.
# tests/packaging/test_install.sh lints this file (paths, packages, libraries, labels).

# Pin it by digest for reproducible images: --build-arg DEBIAN_IMAGE=debian:12-slim@sha256:…
ARG DEBIAN_IMAGE=debian:12-slim

# ---- build ---------------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libwebsockets-dev libev-dev libhiredis-dev libevent-dev libjansson-dev libjwt-dev \
        libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
        -DJW_INSTALL_SYSTEMD=OFF \
    && cmake --build build -j"$(nproc)" \
    && DESTDIR=/out cmake --install build --strip \
    && /out/usr/bin/jobwire --version \
    && packaging/conf-set.sh /out/etc/jobwire/jobwire.conf \
        listen_address 0.0.0.0 web_root '""' admin_port 9090 >/tmp/jobwire.conf \
    && mv /tmp/jobwire.conf /out/etc/jobwire/jobwire.conf \
    && chmod 0644 /out/etc/jobwire/jobwire.conf \
    && env -i /out/usr/bin/jobwire --check-config --config /out/etc/jobwire/jobwire.conf >/dev/null

# ---- runtime -------------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE}
ARG DEBIAN_IMAGE
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
ARG SOURCE=""
LABEL org.opencontainers.image.title="jobwire" \
      org.opencontainers.image.description="Bridges Redis pub/sub job events to WebSocket and Server-Sent Events clients" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="jobwire maintainers" \
      org.opencontainers.image.base.name="${DEBIAN_IMAGE}"

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libwebsockets17 libwebsockets-evlib-ev libev4 libhiredis0.14 libevent-2.1-7 \
        libevent-openssl-2.1-7 libevent-pthreads-2.1-7 libjansson4 libjwt0 libssl3 \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 jobwire \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin jobwire

COPY --from=build /out/usr/bin/jobwire /usr/bin/jobwire
COPY --from=build /out/usr/share/jobwire/ /usr/share/jobwire/
COPY --from=build /out/etc/jobwire/ /etc/jobwire/

# Numeric, so Kubernetes can verify runAsNonRoot. Nothing in the image is writable by it.
USER 10001:10001
# 8080: /ws, /events (clients). 9090: /healthz, /readyz, /metrics (internal).
EXPOSE 8080 9090
# Docker and Compose use this; Kubernetes ignores it and probes over HTTP (the Helm chart).
# /readyz: 200 while subscribed to Redis and not draining.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/bin/jobwire", "--health", "http://127.0.0.1:9090/readyz"]
# SIGTERM drains the clients over drain_window_ms (10 s by default): give `docker stop` more,
# e.g. `docker stop -t 30`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/jobwire"]
CMD ["--config", "/etc/jobwire/jobwire.conf"]
