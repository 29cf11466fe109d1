# segmenter in a container: build with the Swift toolchain image, run on slim Debian.
# Untested on the build machines (no Docker engine there); `docker compose config` validates the compose file.
FROM swift:6.0-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka-dev libsqlite3-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product segmenter \
    && cp "$(swift build -c release --show-bin-path)/segmenter" /usr/local/bin/segmenter

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka1 libsqlite3-0 ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/segmenter /usr/local/bin/segmenter
VOLUME /state
EXPOSE 8080
ENTRYPOINT ["segmenter"]
CMD ["run", "--config", "/config/segmenter.yaml"]
