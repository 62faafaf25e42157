# syntax=docker/dockerfile:1
#
# reseal container image: a static-ish Rust binary on distroless (glibc, no
# shell, non-root). Build:  docker build -t ghcr.io/reseal/reseal:0.1.0 .
#
# The Helm chart (helm/reseal) runs exactly this image with
#   /reseal serve --config /etc/reseal/config/reseal.yaml
# as UID/GID 65532 on a read-only root filesystem.

############################ build ############################
FROM rust:1.95-bookworm AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# 1. Dependency layer: build every dependency against stub sources, so that
#    changing src/ does not rebuild the (large) dependency graph. build.rs and
#    proto/ are real: protox generates the gRPC code (no protoc needed) and
#    aws-lc-sys needs only the C compiler the rust image ships. Every workspace
#    member's manifest must be there for cargo to load the workspace; only the
#    `reseal` binary is built (the benchmark tools are not part of the image).
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY third_party ./third_party
COPY crates/esdk/Cargo.toml ./crates/esdk/
COPY crates/jwe/Cargo.toml ./crates/jwe/
COPY tools/bench ./tools/bench
RUN mkdir -p src benches crates/esdk/src crates/jwe/src crates/jwe/benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs crates/esdk/src/lib.rs crates/jwe/src/lib.rs \
 && echo 'fn main() {}' > crates/jwe/benches/jwe.rs \
 && echo 'fn main() {}' > benches/engine.rs
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo build --release --locked --bin reseal

# 2. The real sources. touch: COPY keeps the context's mtimes, which may be
#    older than the stub build, and cargo would then skip the rebuild. The
#    binary is stripped: the release profile keeps line tables for profiling,
#    which the image does not need. The context has no .git, so the commit
#    that reseal_build_info reports comes from the REVISION build argument
#    (build.rs reads RESEAL_COMMIT); it is declared here, after the
#    dependency layer, so a new revision does not rebuild the dependencies.
#      docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD) .
ARG REVISION=unknown
ENV RESEAL_COMMIT=${REVISION}
COPY src ./src
COPY crates ./crates
COPY docs/openapi.yaml ./docs/openapi.yaml
COPY benches ./benches
COPY config ./config
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    touch src/main.rs src/lib.rs crates/esdk/src/lib.rs crates/jwe/src/lib.rs \
 && cargo build --release --locked --bin reseal \
 && strip --strip-all target/release/reseal \
 && install -D -m 0755 target/release/reseal /out/reseal

############################ runtime ############################
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="reseal" \
      org.opencontainers.image.description="Re-encryption broker for AWS Encryption SDK messages (Amazon Connect, Genesys Cloud)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=build /out/reseal /reseal

USER 65532:65532
# 50051 gRPC (TLS/mTLS optional), 50052 plaintext gRPC health (probes),
# 9090 HTTP admin (/metrics, /healthz, /readyz).
EXPOSE 50051 50052 9090
ENTRYPOINT ["/reseal"]
CMD ["serve", "--config", "/etc/reseal/config/reseal.yaml"]
