# syntax=docker/dockerfile:1
# dbfleet: one image for the controller and the REST façade
# (`dbfleet controller`, `dbfleet api`, or both with `dbfleet run`).
#
#   docker build -t ghcr.io/dbfleet/dbfleet:0.1.0 .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and build artifacts between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin dbfleet \
 && cp target/release/dbfleet /usr/local/bin/dbfleet

# distroless/cc: glibc and CA certificates, no shell, a nonroot user (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/dbfleet /usr/local/bin/dbfleet
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/dbfleet"]
CMD ["run"]
