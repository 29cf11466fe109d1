# segmenter in a container: build with the Swift toolchain image, run on slim Debian.
# No Docker engine runs on the build machines: `scripts/container-check` builds this file's runtime
# stage with debootstrap (the packages read from the apt-get line below), puts a
# --static-swift-stdlib release build in it and runs `demo` and `run` inside it with chroot.
FROM swift:6.0-bookworm AS build
# librdkafka (Kafka), SQLite (state), FreeTDS (SQL Server warehouses); the image has libcurl's.
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka-dev libsqlite3-dev freetds-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product segmenter \
    && cp "$(swift build -c release --show-bin-path)/segmenter" /usr/local/bin/segmenter

FROM debian:bookworm-slim
# What the binary links beyond the C library (ldd): librdkafka1, libsqlite3-0, libsybdb5 (FreeTDS),
# libcurl4 (Foundation's networking); tzdata for time_zone:, ca-certificates for TLS to Kafka
# and warehouses, curl for the HEALTHCHECK.
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka1 libsqlite3-0 libsybdb5 libcurl4 tzdata ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /state --shell /usr/sbin/nologin segmenter \
    && mkdir -p /state && chown segmenter:segmenter /state
COPY --from=build /usr/local/bin/segmenter /usr/local/bin/segmenter
USER segmenter
VOLUME /state
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["segmenter"]
CMD ["run", "--config", "/config/segmenter.yaml"]
