import Foundation
import GRDB
import Slipway
import SlipwayOutbox
import SlipwayTemplates

/// The app's orders, in its own SQLite file beside the outbox: an order's row and its slip are written in one
/// transaction, so a crash leaves both or neither, and the relay publishes the slip only once it has committed.
struct OrderStore: Sendable {
    enum Placed: Sendable {
        /// Written now, with its slip.
        case created(OrderReply)
        /// There already, with the same content: nothing written.
        case existing(OrderReply)
        /// There already, with other content: nothing written.
        case conflict(OrderReply)
    }

    let database: DatabasePool
    let outbox: SlipOutbox
    let template: SlipTemplate
    /// Test-only (`--commit-delay-ms`): how long a transaction waits before its commit.
    var commitDelayMs = 0

    static func migrate(_ database: DatabasePool) throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("order-api 1: orders") { db in
            try db.execute(
                sql: """
                    CREATE TABLE orders (id TEXT PRIMARY KEY NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL,
                        card TEXT NOT NULL, country TEXT NOT NULL, email TEXT NOT NULL, slip_id TEXT NOT NULL,
                        created_at TEXT NOT NULL)
                    """)
        }
        try migrator.migrate(database)
    }

    /// Writes the order and its slip, unless the order is there already. Throws for a slip the template cannot make.
    func place(_ order: Order) async throws -> Placed {
        // Built before the transaction: a template error is the caller's, and costs no write lock.
        let slip = try template.makeSlip(values: order.variables, id: order.slipID)
        let delayMs = commitDelayMs
        return try await database.write { db in
            if let existing = try Self.find(order.orderId, in: db) {
                return existing.order == order ? .existing(existing) : .conflict(existing)
            }
            try db.execute(
                sql: """
                    INSERT INTO orders (id, sku, quantity, card, country, email, slip_id, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, datetime('now'))
                    """,
                arguments: [order.orderId, order.sku, order.quantity, order.card, order.country, order.email, slip.id])
            try outbox.enqueue(slip, in: db)
            // Blocks the writer's thread on purpose: the transaction stays open, as a slow one would.
            if delayMs > 0 { Thread.sleep(forTimeInterval: Double(delayMs) / 1000) }
            return .created(OrderReply(order: order, slipId: slip.id))
        }
    }

    func find(_ orderID: String) async throws -> OrderReply? {
        try await database.read { db in try Self.find(orderID, in: db) }
    }

    private static func find(_ orderID: String, in db: Database) throws -> OrderReply? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM orders WHERE id = ?", arguments: [orderID]) else {
            return nil
        }
        return OrderReply(
            order: Order(
                orderId: row["id"], sku: row["sku"], quantity: row["quantity"], card: row["card"], country: row["country"],
                email: row["email"]),
            slipId: row["slip_id"])
    }
}
