# swimkv node image. The binary is built outside, on a glibc host compatible
# with Debian bookworm (it needs libc, libm and libgcc_s, all in the base image):
#
#   cargo build --release
#   scripts/docker-base.sh          # only where debian:bookworm-slim cannot be pulled
#   docker build -t swimkv:local .
#   docker run --rm -p 8080:8080 swimkv:local            # a single node
#   docker compose up -d --build                         # a 5-node cluster (compose.yaml)
#
# Arguments are those of `swimkv` (default: port 8080). Other nodes reach a node
# at its advertised address, so give each one `--advertise <its hostname or IP>`.
FROM debian:bookworm-slim

RUN groupadd --system --gid 10001 swimkv \
 && useradd --system --uid 10001 --gid swimkv --home-dir /var/lib/swimkv \
      --no-create-home --shell /usr/sbin/nologin swimkv \
 && mkdir -p /var/lib/swimkv \
 && chown swimkv:swimkv /var/lib/swimkv \
 && chmod 0750 /var/lib/swimkv

COPY target/release/swimkv /usr/local/bin/swimkv

ENV SWIMKV_DATA_DIR=/var/lib/swimkv \
    SWIMKV_BIND=0.0.0.0
VOLUME /var/lib/swimkv
WORKDIR /var/lib/swimkv

# HTTP API, SWIM (UDP, same port number), peer RPC (HTTP port + 10000).
EXPOSE 8080/tcp 8080/udp 18080/tcp

HEALTHCHECK --interval=5s --timeout=3s --start-period=10s CMD ["swimkv", "healthcheck", "8080"]

# SIGTERM stops the node with its data kept (--leave-on-terminate to leave for good).
STOPSIGNAL SIGTERM
USER swimkv
ENTRYPOINT ["swimkv"]
CMD ["8080"]
