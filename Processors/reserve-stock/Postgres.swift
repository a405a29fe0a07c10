import ExampleLedger
import Foundation
import Logging
import PostgresNIO
import Slipway
import SlipwayPostgres

/// The same warehouse on the shared PostgreSQL hop record (`--store postgres://...`): one `stock` and one
/// `reservation` table for every instance on every host.
extension ReserveStock {
    func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, available BIGINT NOT NULL)", logger: logger)
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS reservation (
                id TEXT PRIMARY KEY, slip_id TEXT NOT NULL, sku TEXT NOT NULL, quantity BIGINT NOT NULL,
                released BIGINT NOT NULL DEFAULT 0
            )
            """, logger: logger)
        try await connection.query("CREATE INDEX IF NOT EXISTS reservation_slip ON reservation (slip_id)", logger: logger)
        // Seeded once: a later start (or another instance) keeps the stock as the hops left it.
        for (sku, available) in Warehouse.initialStock {
            try await connection.query(
                "INSERT INTO stock (sku, available) VALUES (\(sku), \(available)) ON CONFLICT (sku) DO NOTHING",
                logger: logger)
        }
    }

    func execute(_ hop: ExecuteHop, in connection: PostgresConnection) async throws -> ExecuteOutcome {
        let order: (sku: String, quantity: Int)
        switch Self.order(hop) {
        case .success(let ordered): order = ordered
        case .failure(let refusal): return .faulted(reason: refusal.reason)
        }
        let (sku, quantity) = order
        // FOR UPDATE: concurrent hops reserving the same article take turns, so none reserves stock another took.
        var available: Int?
        let rows = try await connection.query(
            "SELECT available FROM stock WHERE sku = \(sku) FOR UPDATE", logger: hop.logger)
        for try await value in rows.decode(Int.self) { available = value }
        if let refusal = Self.refusal(sku: sku, quantity: quantity, available: available) {
            return .faulted(reason: refusal.reason)
        }
        let id = UUID().uuidString.lowercased()
        try await connection.query(
            "UPDATE stock SET available = available - \(quantity) WHERE sku = \(sku)", logger: hop.logger)
        try await connection.query(
            "INSERT INTO reservation (id, slip_id, sku, quantity) VALUES (\(id), \(hop.slipID), \(sku), \(quantity))",
            logger: hop.logger)
        return Self.reserved(id)
    }

    func compensate(_ hop: CompensateHop, in connection: PostgresConnection) async throws {
        let id = try Self.reservationID(hop)
        let rows = try await connection.query(
            "UPDATE reservation SET released = released + 1 WHERE id = \(id) RETURNING sku, quantity", logger: hop.logger)
        var released: [(sku: String, quantity: Int)] = []  // Read to the end before the next query.
        for try await row in rows.decode((String, Int).self) { released.append(row) }
        for (sku, quantity) in released {
            try await connection.query(
                "UPDATE stock SET available = available + \(quantity) WHERE sku = \(sku)", logger: hop.logger)
        }
    }
}
