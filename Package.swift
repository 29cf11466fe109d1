// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "segmenter",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "segmenter", targets: ["segmenter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // C libraries, each behind a shim header.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // The only module that imports librdkafka.
        .target(name: "KafkaIO", dependencies: ["CRdKafka"]),
        // Pure: decoding, time, money, user state, features. No I/O, `now` is a parameter.
        .target(name: "SegmenterCore"),
        // SQLite: schema, migrations, per-partition state, offsets, outbox.
        .target(name: "SegmenterStore", dependencies: ["CSQLite", "SegmenterCore"]),
        // Warehouses behind one protocol (SQLite file, PostgreSQL/Redshift wire protocol).
        .target(name: "Warehouse", dependencies: [
            "SegmenterCore", "SegmenterStore",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Config, ingest loop, outbox relay, generator: where Kafka meets the store.
        .target(name: "SegmenterService", dependencies: [
            "KafkaIO", "SegmenterCore", "SegmenterStore", "Warehouse",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .executableTarget(name: "segmenter", dependencies: [
            "SegmenterService", "KafkaIO", "SegmenterCore", "SegmenterStore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // The state path alone, for instruction counts under callgrind (scripts/bench).
        .executableTarget(name: "commit-bench", dependencies: ["SegmenterStore", "SegmenterCore"]),

        .testTarget(name: "SegmenterCoreTests", dependencies: ["SegmenterCore"]),
        .testTarget(name: "SegmenterStoreTests", dependencies: ["SegmenterStore", "SegmenterCore"]),
        .testTarget(name: "SegmenterServiceTests", dependencies: ["SegmenterService"]),
        .testTarget(name: "ReconciliationTests", dependencies: [
            "SegmenterCore", "SegmenterStore", "SegmenterService", "Warehouse",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "EndToEndTests", dependencies: ["KafkaIO", "SegmenterCore", "SegmenterStore", "SegmenterService", "Warehouse"]),
    ],
    swiftLanguageModes: [.v6]
)
