# Shadowcat container image: a release build in a Rust image, then only the binary on a
# distroless base (glibc, CA roots, no shell), run as the non-root user 65532.
#
#   docker build -t shadowcat .
#   docker run --rm -p 8080:8080 -p 9090:9090 -v $PWD/conf:/etc/shadowcat:ro shadowcat
#
# The config is read from /etc/shadowcat/shadowcat.yaml (deploy/k8s/configmap.yaml mounts
# one); it must listen on 0.0.0.0:8080 with the admin listener on 0.0.0.0:9090, the ports
# exposed below and probed by deploy/k8s/deployment.yaml (tests/cases/deploy_manifests.rs
# checks that they agree).

FROM rust:1-bookworm AS build
# pingora-core builds zlib-ng with cmake.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin shadowcat \
 && cp target/release/shadowcat /shadowcat

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /shadowcat /usr/local/bin/shadowcat
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/shadowcat"]
CMD ["reverse", "--config", "/etc/shadowcat/shadowcat.yaml"]
