import Foundation
import Logging
import PostgresNIO
import Slipway
import SlipwayOutbox
import SlipwayPostgres

/// A database of its own for an outbox test (the outbox's table is one per database), dropped after `body`.
func withOutboxDatabase<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
    let (name, url) = try await PostgresTestServer.createDatabase()
    do {
        let result = try await body(url)
        await PostgresTestServer.dropDatabase(name)
        return result
    } catch {
        await PostgresTestServer.dropDatabase(name)
        throw error
    }
}

/// An outbox at `url` on a client of its own (as one process of the app has), migrated, its client running during
/// `body`; an `orders` table beside it.
func withOutbox<T: Sendable>(
    url: String, topology: Topology, _ body: @Sendable (PostgresOutbox) async throws -> T
) async throws -> T {
    let logger = Logger(label: "test.outbox")
    let client = try PostgresOutbox.client(url: url, logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        defer { group.cancelAll() }
        let outbox = PostgresOutbox(client: client, topology: topology, logger: logger)
        try await outbox.migrate()
        try await client.query("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY)", logger: logger)
        return try await body(outbox)
    }
}

extension PostgresOutbox {
    /// The order's row and its slip in one transaction of the test's own (BEGIN ... COMMIT, or ROLLBACK).
    func placeOrder(_ id: String, slip: Slip, rollBack: Bool = false) async throws {
        let logger = Logger(label: "test.app")
        try await client.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            try await connection.query("INSERT INTO orders (id) VALUES (\(id))", logger: logger)
            try await enqueue(slip, in: connection)
            try await connection.query(rollBack ? "ROLLBACK" : "COMMIT", logger: logger)
        }
    }

    func orderIDs() async throws -> [String] {
        var ids: [String] = []
        for try await id in try await client.query("SELECT id FROM orders ORDER BY id", logger: Logger(label: "test"))
            .decode(String.self)
        {
            ids.append(id)
        }
        return ids
    }
}

/// Made at a fixed time, so that the same arguments make the same bytes.
func outboxSlip(_ id: String, steps: [String] = ["a", "b"], variables: [String: JSONValue] = [:]) -> Slip {
    Slip(
        id: id, template: "order", itinerary: steps.map { ItineraryStep(step: $0) }, variables: variables,
        createdAt: Date(timeIntervalSince1970: 1_800_000_000))
}
