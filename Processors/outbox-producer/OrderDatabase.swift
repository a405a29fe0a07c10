import Foundation
import GRDB
import Logging
import PostgresNIO
import Slipway
import SlipwayOutbox
import SlipwayPostgres

/// The app's database: its `orders` table and the outbox, on SQLite or PostgreSQL.
protocol OrderDatabase: Sendable {
    var outbox: any OutboxStorage { get }
    /// Writes the order's row and its slip in one transaction, rolled back after the enqueue when `rollBack`. Whether
    /// it committed a new order (false for one already there).
    func place(_ orderID: String, slip: Slip, rollBack: Bool) async throws -> Bool
    func pendingCount() async throws -> Int
}

/// Thrown inside an order's transaction to roll it back.
struct RolledBack: Error {}

struct SQLiteOrders: OrderDatabase {
    let database: DatabasePool
    let sqliteOutbox: SlipOutbox
    var outbox: any OutboxStorage { sqliteOutbox }

    init(path: String, topology: Topology) throws {
        database = try DatabasePool(path: path)
        try database.write { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY NOT NULL, created_at TEXT NOT NULL)")
        }
        sqliteOutbox = try SlipOutbox(database: database, topology: topology)
    }

    func place(_ orderID: String, slip: Slip, rollBack: Bool) async throws -> Bool {
        do {
            return try await database.write { db in
                guard try Int.fetchOne(db, sql: "SELECT count(*) FROM orders WHERE id = ?", arguments: [orderID]) == 0
                else { return false }
                try db.execute(
                    sql: "INSERT INTO orders (id, created_at) VALUES (?, datetime('now'))", arguments: [orderID])
                try sqliteOutbox.enqueue(slip, in: db)
                if rollBack { throw RolledBack() }
                return true
            }
        } catch is RolledBack {
            return false
        }
    }

    func pendingCount() async throws -> Int {
        try await database.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM slipway_outbox WHERE sent_at IS NULL") ?? 0
        }
    }
}

/// The app's transactions are its own: `BEGIN`, its row, the enqueue, `COMMIT`, on one pooled connection.
struct PostgresOrders: OrderDatabase {
    let client: PostgresClient
    let postgresOutbox: PostgresOutbox
    let logger: Logger
    var outbox: any OutboxStorage { postgresOutbox }

    /// The client must be running.
    init(client: PostgresClient, topology: Topology, logger: Logger) async throws {
        self.client = client
        self.logger = logger
        postgresOutbox = PostgresOutbox(client: client, topology: topology, logger: logger)
        try await postgresOutbox.migrate()
        try await client.query(
            "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            logger: logger)
    }

    func place(_ orderID: String, slip: Slip, rollBack: Bool) async throws -> Bool {
        let (outbox, logger) = (postgresOutbox, self.logger)
        let committed = try await client.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            do {
                let inserted = try await connection.query(
                    "INSERT INTO orders (id) VALUES (\(orderID)) ON CONFLICT (id) DO NOTHING RETURNING id", logger: logger
                ).collect().count == 1
                if inserted { try await outbox.enqueue(slip, in: connection) }
                let commit = inserted && !rollBack
                try await connection.query(commit ? "COMMIT" : "ROLLBACK", logger: logger)
                return commit
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
        if committed { outbox.notify() }
        return committed
    }

    func pendingCount() async throws -> Int {
        let rows = try await client.query(
            "SELECT count(*)::INT8 FROM slipway_outbox WHERE sent_at IS NULL", logger: logger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }
}
