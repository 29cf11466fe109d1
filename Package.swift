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
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // C libraries, each behind a shim header.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // FreeTDS's db-lib (no pkg-config file: the module map links sybdb).
        .systemLibrary(name: "CFreeTDS", providers: [.apt(["freetds-dev"])]),

        // The only module that imports librdkafka.
        .target(name: "KafkaIO", dependencies: ["CRdKafka"]),
        // A VFS over SQLite's own that writes a commit's WAL frames with one system call.
        .target(name: "CSQLiteWALBuffer", dependencies: ["CSQLite"]),
        // The only module that imports SQLite: connection, statement, errors.
        .target(name: "SQLite", dependencies: ["CSQLite", "CSQLiteWALBuffer"]),
        // The only module that imports FreeTDS: a SQL Server connection that runs sp_executesql.
        .target(name: "SQLServerIO", dependencies: ["CFreeTDS"]),
        // Pure: decoding, time, money, user state, features. No I/O, `now` is a parameter.
        .target(name: "SegmenterCore"),
        // SQLite: schema, migrations, per-partition state, offsets, outbox.
        .target(name: "SegmenterStore", dependencies: ["SQLite", "SegmenterCore"]),
        // Warehouses behind one protocol, one file each: SQLite file, PostgreSQL/Redshift wire
        // protocol, BigQuery REST, SQL Server TDS.
        .target(name: "Warehouse", dependencies: [
            "SegmenterCore", "SQLite", "SQLServerIO",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        // The service, one module per flow (README, Layout). What every flow reads: the YAML
        // configuration, checked and typed.
        .target(name: "ServiceConfig", dependencies: [
            "KafkaIO", "SegmenterCore", "SegmenterStore", "Warehouse",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // What every flow shares at run time: clocks, metrics, health, the service's error.
        .target(name: "ServiceRuntime", dependencies: [
            "KafkaIO", "SegmenterCore", "SegmenterStore",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // From the commit thread out: the outbox relay, state snapshots, the KPI leader and the
        // partials exchange, the group's directory, alert delivery.
        .target(name: "Outputs", dependencies: [
            "KafkaIO", "SegmenterCore", "SegmenterStore", "Warehouse", "ServiceConfig", "ServiceRuntime",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Kafka in: the poll thread, the commit thread and its decisions, partition stores.
        .target(name: "Ingest", dependencies: [
            "KafkaIO", "SegmenterCore", "SegmenterStore", "Warehouse", "ServiceConfig", "ServiceRuntime", "Outputs",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // The warehouse joins the commit thread: scheduled and on-demand runs, corrections, rebuild.
        .target(name: "Reconciliation", dependencies: [
            "KafkaIO", "SegmenterCore", "SegmenterStore", "Warehouse", "ServiceConfig", "ServiceRuntime", "Outputs", "Ingest",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Reads beside ingest: the JSON API, the dashboard, /metrics, feature export, explain.
        .target(name: "HTTP", dependencies: [
            "SegmenterCore", "SegmenterStore", "Warehouse", "ServiceConfig", "ServiceRuntime",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // The service assembled: every flow as one lifecycle group; config preview.
        .target(name: "SegmenterService", dependencies: [
            "KafkaIO", "SegmenterCore", "SegmenterStore", "Warehouse",
            "ServiceConfig", "ServiceRuntime", "Outputs", "Ingest", "Reconciliation", "HTTP",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        // For trying and measuring, not for running: the dev broker (librdkafka's mock cluster
        // on a fixed port), the event generator and its producer.
        .target(name: "DevTools", dependencies: ["KafkaIO", "SegmenterCore"]),
        .executableTarget(name: "segmenter", dependencies: [
            "SegmenterService", "ServiceConfig", "ServiceRuntime", "Outputs", "Ingest", "Reconciliation", "HTTP",
            "DevTools", "KafkaIO", "SegmenterCore", "SegmenterStore", "SQLite", "Warehouse",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // The state path alone, for instruction counts under callgrind (scripts/bench).
        .executableTarget(name: "commit-bench", dependencies: ["SegmenterStore", "SegmenterCore", "SQLite"]),

        // What tests compare the service with: a one-record-at-a-time reference of the history.
        // ManualClock: tests advance time instead of sleeping.
        .target(name: "SegmenterTestKit", dependencies: ["SegmenterCore", "ServiceRuntime"]),

        .testTarget(name: "SegmenterCoreTests", dependencies: ["SegmenterCore"]),
        .testTarget(name: "SegmenterStoreTests", dependencies: ["SegmenterStore", "SegmenterCore", "SQLite", "SegmenterTestKit", "DevTools"]),
        // FuzzCorpus/ is read from the source tree by FuzzTests.
        .testTarget(name: "ServiceConfigTests", dependencies: ["ServiceConfig", "SegmenterCore", "KafkaIO", "Warehouse", .product(name: "Yams", package: "Yams")],
                    exclude: ["FuzzCorpus"]),
        .testTarget(name: "IngestTests", dependencies: ["Ingest", "ServiceRuntime", "ServiceConfig", "KafkaIO", "SegmenterCore", "SegmenterTestKit"]),
        .testTarget(name: "OutputsTests", dependencies: ["Outputs", "ServiceConfig", "ServiceRuntime", "SegmenterCore"]),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", "ServiceConfig", "ServiceRuntime", .product(name: "HummingbirdTesting", package: "hummingbird")]),
        .testTarget(name: "ReconciliationTests", dependencies: [
            "SegmenterCore", "SegmenterStore", "SegmenterService", "ServiceConfig", "ServiceRuntime", "Ingest", "Reconciliation", "Warehouse", "SQLite",
            "SegmenterTestKit", .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        .testTarget(name: "EndToEndTests", dependencies: ["KafkaIO", "SegmenterCore", "SegmenterStore", "SegmenterService", "ServiceConfig", "HTTP", "DevTools", "Warehouse", "SQLite",
                                                          "SegmenterTestKit", .product(name: "Crypto", package: "swift-crypto")]),
    ],
    swiftLanguageModes: [.v6]
)
