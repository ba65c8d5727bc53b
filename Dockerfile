# The image the install manifests run (`kubectl zen install lead|reconcile-controller`):
# the plugin's static binary (scripts/build-static.sh, musl) on distroless/static, as the
# non-root user 65532 the Deployment's securityContext names. No shell, no libc, no package
# manager: the binary and CA certificates only.
#
#   docker build -t ghcr.io/kubectl-zen/kubectl-zen:v0.1.0 .
#
# The build stage runs the same script as `make dist`, so the image's binary is the krew
# archive's. docs/install.md tells how the recipe is tested.

FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY . .
RUN bash scripts/build-static.sh > /tmp/binary \
 && install -D -m 0755 "$(cat /tmp/binary)" /out/kubectl-zen \
 && /out/kubectl-zen --version

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kubectl-zen /kubectl-zen
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/kubectl-zen"]
CMD ["--help"]
