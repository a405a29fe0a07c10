import Foundation
import Logging
import PostgresNIO
import SlipwayPostgres
import SlipwayProcesses
import Testing

/// The private PostgreSQL of the suite (scripts/postgres.sh), started once on `SLIPWAY_PG_PORT` (5480 by default) and
/// left running for the next run. Tests that need it run only with `SLIPWAY_POSTGRES_TESTS=1`.
enum PostgresTestServer {
    static let enabled = ProcessInfo.processInfo.environment["SLIPWAY_POSTGRES_TESTS"] == "1"
    static let port = Int(ProcessInfo.processInfo.environment["SLIPWAY_PG_PORT"] ?? "") ?? 5480
    static let url = "postgres://slipway:slipway@127.0.0.1:\(port)/slipway"

    private static let started = Task<Void, any Error> {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/postgres.sh").path
        var variables = ProcessInfo.processInfo.environment
        variables["SLIPWAY_PG_PORT"] = String(port)
        let environment = variables
        try await offThePool {
            let child = try ChildProcess.spawn("/bin/bash", arguments: [script, "start"], environment: environment, output: .inherit)
            guard child.waitBlocking() == .exited(0) else { throw PostgresTestError("scripts/postgres.sh start failed") }
        }
    }

    /// The server's URL, once it runs.
    static func ready() async throws -> String {
        try await started.value
        return url
    }

    /// A database of its own for a test that changes the schema; dropped by `dropDatabase`.
    static func createDatabase() async throws -> (name: String, url: String) {
        _ = try await ready()
        let name = "slipway_test_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await admin { try await $0.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)")) }
        return (name, "postgres://slipway:slipway@127.0.0.1:\(port)/\(name)")
    }

    static func dropDatabase(_ name: String) async {
        _ = try? await admin { try await $0.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")) }
    }

    /// Runs `body` with a client on the `slipway` database.
    static func admin<T: Sendable>(
        database: String = "slipway", _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        _ = try await ready()
        let client = PostgresClient(
            configuration: .init(
                host: "127.0.0.1", port: port, username: "slipway", password: "slipway", database: database, tls: .disable))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

struct PostgresTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a store whose services (its client, and the store) run beside it in a task group; cancels them when
/// `body` returns.
func withStore<T: Sendable>(
    url: String? = nil, step: String, keepFor: Duration? = PostgresHopRecordStore.defaultKeepFor,
    _ body: @Sendable (PostgresHopRecordStore) async throws -> T
) async throws -> T {
    let url = if let url { url } else { try await PostgresTestServer.ready() }
    let store = try await PostgresHopRecordStore.open(url: url, step: step, keepFor: keepFor)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        for service in store.services { group.addTask { try await service.run() } }
        defer { group.cancelAll() }
        return try await body(store)
    }
}

/// Two stores of one step on one database, as two processes on two hosts would have.
func withTwoStores<T: Sendable>(
    url: String? = nil, step: String = uniqueStep(),
    _ body: @Sendable (PostgresHopRecordStore, PostgresHopRecordStore) async throws -> T
) async throws -> T {
    try await withStore(url: url, step: step) { first in
        try await withStore(url: url, step: step) { second in try await body(first, second) }
    }
}
