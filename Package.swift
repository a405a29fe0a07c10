// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Slipway",
    products: [
        .library(name: "Slipway", targets: ["Slipway"]),
        .library(name: "SlipwayCore", targets: ["SlipwayCore"]),
        .library(name: "SlipwayTesting", targets: ["SlipwayTesting"]),
        // For producers that build slips from templates (Slips/*.yaml); processors do not link it, nor YAML.
        .library(name: "SlipwayTemplates", targets: ["SlipwayTemplates"]),
        // The hop record shared by a step's instances on several hosts: `ProcessorMain.run(..., stores: [.sqlite, .postgres])`;
        // its inbox steps, and the outbox on PostgreSQL.
        .library(name: "SlipwayPostgres", targets: ["SlipwayPostgres"]),
        // The audit store, its queries, and the audit sink as a Service for a program of one's own.
        .library(name: "SlipwayAudit", targets: ["SlipwayAudit"]),
        // A producer's outbox: its row and its slip in one transaction of its own database (SQLite through GRDB here,
        // PostgreSQL through SlipwayPostgres's `PostgresOutbox`), and the relay that publishes them.
        .library(name: "SlipwayOutbox", targets: ["SlipwayOutbox"]),
        .executable(name: "slip", targets: ["SlipCLI"]),
        // The example order-fulfillment saga: one executable per step.
        .executable(name: "reserve-stock", targets: ["ReserveStock"]),
        .executable(name: "charge-card", targets: ["ChargeCard"]),
        .executable(name: "ship-order", targets: ["ShipOrder"]),
        .executable(name: "notify-customer", targets: ["NotifyCustomer"]),
        // Tools (slipway-bench, slipway-chaos, probe-step, bench-forwarder) are executable targets, not products: `swift build` still
        // builds them under their own names, and a package that depends on Slipway does not see them.
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // Processor settings: the environment and in-memory providers only (no JSON, no YAML: every processor links it).
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0", traits: []),
        // Running rabbitmqctl (SlipwayOperations). Without its default SubprocessFoundation trait: no Data overloads.
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2", traits: []),
        // The example order API's HTTP server (Processors/order-api only).
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        // librabbitmq, the AMQP 0-9-1 C client (Debian: librabbitmq-dev).
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // Slip model, wire format and validation. No I/O.
        .target(name: "SlipwayCore"),
        // What the runtime needs from a message broker, as protocols and values (the queues by SlipwayCore's
        // topology names). No C.
        .target(name: "SlipwayTransport", dependencies: ["SlipwayCore"]),
        // The transport over RabbitMQ through librabbitmq.
        .target(
            name: "SlipwayAMQP",
            dependencies: [
                "CRabbitMQ", "SlipwayTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Local stores: the idempotency record of hops, in SQLite.
        .target(
            name: "SlipwayStores",
            dependencies: [
                "SlipwayCore", "SlipwayTransport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The hop record shared by several instances and hosts, in PostgreSQL. A target of its own, so that only the
        // processors that use it link postgres-nio (and its minutes of build).
        .target(
            name: "SlipwayPostgres",
            dependencies: [
                "SlipwayCore", "SlipwayTransport", "SlipwayStores", "Slipway", "SlipwayOutbox",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The audit trail: hop events in SQLite, the queries operators run on it, and the sink (a Service) that
        // records them from the audit queue, over any MessageTransport.
        .target(
            name: "SlipwayAudit",
            dependencies: [
                "SlipwayCore", "SlipwayStores", "SlipwayTransport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // A synthetic audit trail for measuring queries at scale (`slip audit generate`): a tool, not a product.
        .target(name: "SlipwayAuditGenerator", dependencies: ["SlipwayAudit", "SlipwayCore"]),
        // Processor runtime and producer API: what applications import.
        .target(
            name: "Slipway",
            dependencies: [
                "SlipwayCore", "SlipwayTransport", "SlipwayAMQP", "SlipwayStores",
                // Inbox steps' handlers write through GRDB's `Database` (SlipwayStores links it already).
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Configuration", package: "swift-configuration"),
            ]
        ),
        // The producer outbox: slips enqueued in the app's transaction, and the relay (a Service) that publishes them,
        // over an `OutboxStorage` (SQLite here; PostgreSQL in SlipwayPostgres). Not postgres-nio.
        .target(
            name: "SlipwayOutbox",
            dependencies: [
                "Slipway", "SlipwayCore", "SlipwayTransport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Slip templates in YAML, for producers (`slip send`, the chaos run): not linked by processors.
        .target(name: "SlipwayTemplates", dependencies: ["SlipwayCore", .product(name: "Yams", package: "Yams")]),
        // Child processes: spawned, signalled, stopped and reaped without Foundation's Process.
        .target(name: "SlipwayProcesses"),
        // In-memory broker and stores for fast tests of processors.
        .target(
            name: "SlipwayTesting",
            dependencies: [
                "Slipway", "SlipwayStores", "SlipwayTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What operators do to a deployment, for the CLI to call: the dead-letter queue's scan, replay and drop; the
        // broker users' plan and rabbitmqctl. No argument parsing, no printing.
        .target(
            name: "SlipwayOperations",
            dependencies: ["Slipway", .product(name: "Subprocess", package: "swift-subprocess")]
        ),
        .executableTarget(
            name: "SlipCLI",
            dependencies: [
                "Slipway", "SlipwayAudit", "SlipwayAuditGenerator", "SlipwayOperations", "SlipwayOutbox",
                "SlipwayPostgres", "SlipwayTemplates",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The chain-K benchmark (make bench). Not a product: `swift build --product slipway-bench` builds it.
        .executableTarget(
            name: "slipway-bench",
            dependencies: [
                "Slipway", "SlipwayProcesses",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Sources/SlipwayBench"
        ),
        // The chaos run: the example saga under SIGKILLs and broker restarts, then checks of what it kept.
        .executableTarget(
            name: "slipway-chaos",
            dependencies: [
                "Slipway", "SlipwayAudit", "SlipwayProcesses", "ExampleLedger", "SlipwayPostgres", "SlipwayTemplates",
                "SlipwayOperations",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            path: "Sources/SlipwayChaos"
        ),

        // The example saga's "external systems": a small SQLite ledger.
        .target(
            name: "ExampleLedger",
            dependencies: ["SlipwayStores", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Processors/ExampleLedger"
        ),
        // An inbox step: its stock in its hop record's database (GRDB for SQLite, postgres-nio for PostgreSQL).
        .executableTarget(
            name: "ReserveStock",
            dependencies: [
                "Slipway", "SlipwayPostgres", "ExampleLedger", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
            ],
            path: "Processors/reserve-stock"),
        .executableTarget(name: "ChargeCard", dependencies: ["Slipway", "SlipwayPostgres", "ExampleLedger"], path: "Processors/charge-card"),
        .executableTarget(name: "ShipOrder", dependencies: ["Slipway", "SlipwayPostgres", "ExampleLedger"], path: "Processors/ship-order"),
        .executableTarget(name: "NotifyCustomer", dependencies: ["Slipway", "SlipwayPostgres", "ExampleLedger"], path: "Processors/notify-customer"),
        // A configurable step for tests and benchmarks.
        .executableTarget(
            name: "probe-step",
            dependencies: [
                "Slipway", "SlipwayPostgres", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
            ],
            path: "Processors/probe-step"),
        // A producer for the outbox's kill test and its throughput: orders and their slips in one transaction each.
        .executableTarget(
            name: "outbox-producer",
            dependencies: [
                "Slipway", "SlipwayOutbox", "SlipwayAMQP", "SlipwayPostgres",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Processors/outbox-producer"),
        // The example producer: an HTTP order API writing each order and its slip in one transaction (the outbox).
        .executableTarget(
            name: "order-api",
            dependencies: [
                "Slipway", "SlipwayOutbox", "SlipwayAMQP", "SlipwayTemplates",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Processors/order-api"),
        // The benchmark's baseline: a bare forwarder over the same AMQP layer, none of the slip logic.
        .executableTarget(
            name: "bench-forwarder",
            dependencies: ["SlipwayAMQP", "SlipwayTransport", .product(name: "Logging", package: "swift-log")],
            path: "Processors/bench-forwarder"
        ),

        .testTarget(name: "SlipwayCoreTests", dependencies: ["SlipwayCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SlipwayAuditTests", dependencies: ["SlipwayAudit", "SlipwayAuditGenerator"]),
        .testTarget(name: "SlipwayProcessesTests", dependencies: ["SlipwayProcesses"]),
        .testTarget(name: "SlipwayOperationsTests", dependencies: ["SlipwayOperations", "Slipway"]),
        .testTarget(name: "SlipwayTemplatesTests", dependencies: ["SlipwayTemplates", "SlipwayCore"]),
        .testTarget(name: "SlipwayAMQPTests", dependencies: ["SlipwayAMQP", "SlipwayTransport"]),
        .testTarget(name: "SlipwayTransportTests", dependencies: ["SlipwayTransport", "SlipwayAMQP"]),
        .testTarget(name: "SlipwayTestingTests", dependencies: ["SlipwayTesting", "Slipway", "SlipwayTransport"]),
        .testTarget(
            name: "SlipwayStoresTests",
            dependencies: ["SlipwayStores", "SlipwayTransport", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "SlipwayRuntimeTests",
            dependencies: [
                "Slipway", "SlipwayTesting", "SlipwayStores",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "SlipwayOutboxTests",
            dependencies: [
                "SlipwayOutbox", "Slipway", "SlipwayTesting", "SlipwayTransport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "SlipwayPostgresTests",
            dependencies: [
                "SlipwayPostgres", "SlipwayStores", "SlipwayProcesses", "SlipwayCore", "SlipwayTransport",
                "SlipwayOutbox", "Slipway", "SlipwayTesting",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "Slipway", "SlipwayAMQP", "SlipwayAudit", "SlipwayProcesses", "SlipwayStores", "ExampleLedger",
                "SlipwayPostgres", "SlipwayTemplates", "SlipwayOutbox",
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)

// Strict settings for every target of ours (Swift 6 language mode is the default for tools 6.x).
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    target.swiftSettings = settings
}
