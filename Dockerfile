# Colloquy in a container: `docker build -t colloquy .`, then
# `docker run -p 8080:8080 -v colloquy-data:/data -e COLLOQUY_ADMIN_TOKEN=... colloquy`.
# The SQLite file lives in the /data volume; compose.yaml runs two instances on Redis
# behind nginx. Every flag is also a COLLOQUY_* variable (`colloquy --help`).

# --- build: the release binary, from the locked dependency versions ---
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p colloquy-server \
    && cp target/release/colloquy /usr/local/bin/colloquy

# --- run: a slim Debian with the binary, as an unprivileged user ---
FROM debian:bookworm-slim
# CA certificates for rediss://, postgres:// with TLS and https model servers (not
# pinned: they must follow Debian's security updates).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin colloquy \
    && mkdir -p /data \
    && chown colloquy:colloquy /data
COPY --from=build /usr/local/bin/colloquy /usr/local/bin/colloquy
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# Listen on every interface of the container; `public` access (visitors reach only
# their own sessions, rate limits on); the SQLite file in the volume; JSON log lines.
ENV COLLOQUY_BIND=0.0.0.0:8080 \
    COLLOQUY_ACCESS=public \
    COLLOQUY_STORE=sqlite:/data/colloquy.db \
    COLLOQUY_LOG_FORMAT=json
# 8080: the API. 9090: metrics, only when COLLOQUY_METRICS_BIND=0.0.0.0:9090 is set;
# never publish it to the internet.
EXPOSE 8080 9090
# The binary checks itself: GET /healthz on COLLOQUY_BIND (no curl in the image).
HEALTHCHECK --interval=10s --timeout=6s --start-period=10s --retries=3 \
    CMD ["colloquy", "--healthcheck"]
# SIGTERM (docker stop) shuts down gracefully within --shutdown-grace (20 s by
# default; docker waits 10 s unless `--stop-timeout`/`stop_grace_period` says more).
STOPSIGNAL SIGTERM
ENTRYPOINT ["colloquy"]
