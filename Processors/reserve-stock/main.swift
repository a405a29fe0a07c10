import ExampleLedger
import Foundation
import GRDB
import Slipway
import SlipwayPostgres

/// Reserves the ordered articles in the warehouse; releases them on compensation. Faults on an unknown article or when
/// there is not enough stock (the article `sold-out` has none).
///
/// An inbox step (docs/exactly-once.md): the warehouse is the step's own tables (`stock`, `reservation`) in its hop
/// record's database, written in the hop's transaction, so a redelivery never reserves twice and no idempotency key is
/// needed. The other steps of the saga call "external" systems with a key instead.
struct ReserveStock: SQLiteInboxStep, PostgresInboxStep {
    let step = "reserve-stock"

    /// What an order asks for, or why it cannot be reserved before the stock is even looked at.
    static func order(_ hop: ExecuteHop) -> Result<(sku: String, quantity: Int), Refusal> {
        guard let sku = hop.value("sku")?.stringValue, let quantity = hop.value("quantity")?.intValue else {
            return .failure(Refusal("the order names no 'sku' and 'quantity'"))
        }
        guard quantity > 0 else { return .failure(Refusal("quantity must be positive, got \(quantity)")) }
        return .success((sku, Int(quantity)))
    }

    /// Why `quantity` of `sku` cannot be reserved from `available` (nil: the article is unknown), or nil if it can.
    static func refusal(sku: String, quantity: Int, available: Int?) -> Refusal? {
        guard let available else { return Refusal("unknown article '\(sku)'") }
        guard available >= quantity else {
            return Refusal("not enough stock of '\(sku)': \(available) available, \(quantity) ordered")
        }
        return nil
    }

    /// The outcome of a reservation made: its id as a variable, and as the undo's data.
    static func reserved(_ id: String) -> ExecuteOutcome {
        .completed(variables: ["reservationId": .string(id)], compensation: ["reservationId": .string(id)])
    }

    static func reservationID(_ hop: CompensateHop) throws -> String {
        guard let id = hop.data["reservationId"]?.stringValue else { throw ProcessorError("no reservationId to release") }
        return id
    }

    // MARK: SQLite: the tables in STATE_DIR/reserve-stock.hops.sqlite

    func migrate(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("reserve-stock 1: stock and reservations") { db in
            try db.execute(
                sql: """
                    CREATE TABLE stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL);
                    CREATE TABLE reservation (id TEXT PRIMARY KEY, slip_id TEXT NOT NULL, sku TEXT NOT NULL,
                        quantity INTEGER NOT NULL, released INTEGER NOT NULL DEFAULT 0);
                    CREATE INDEX reservation_slip ON reservation (slip_id);
                    """)
            for (sku, available) in Warehouse.initialStock {
                try db.execute(sql: "INSERT INTO stock (sku, available) VALUES (?, ?)", arguments: [sku, available])
            }
        }
    }

    func execute(_ hop: ExecuteHop, in db: Database) throws -> ExecuteOutcome {
        let order: (sku: String, quantity: Int)
        switch Self.order(hop) {
        case .success(let ordered): order = ordered
        case .failure(let refusal): return .faulted(reason: refusal.reason)
        }
        let (sku, quantity) = order
        let available = try Int.fetchOne(db, sql: "SELECT available FROM stock WHERE sku = ?", arguments: [sku])
        if let refusal = Self.refusal(sku: sku, quantity: quantity, available: available) {
            return .faulted(reason: refusal.reason)
        }
        // A new id, not one derived from the hop: the inbox alone keeps this from running twice (an effect applied
        // twice would show as two rows, which the tests and the chaos run count).
        let id = UUID().uuidString.lowercased()
        try db.execute(sql: "UPDATE stock SET available = available - ? WHERE sku = ?", arguments: [quantity, sku])
        try db.execute(
            sql: "INSERT INTO reservation (id, slip_id, sku, quantity) VALUES (?, ?, ?, ?)",
            arguments: [id, hop.slipID, sku, quantity])
        return Self.reserved(id)
    }

    func compensate(_ hop: CompensateHop, in db: Database) throws {
        let id = try Self.reservationID(hop)
        guard let row = try Row.fetchOne(db, sql: "SELECT sku, quantity FROM reservation WHERE id = ?", arguments: [id])
        else { return }  // Not in this database: nothing to undo here.
        // `released` counts releases: the inbox runs an undo once, so anything but 1 is a bug the checks would see.
        try db.execute(sql: "UPDATE reservation SET released = released + 1 WHERE id = ?", arguments: [id])
        try db.execute(
            sql: "UPDATE stock SET available = available + ? WHERE sku = ?",
            arguments: [row["quantity"] as Int, row["sku"] as String])
    }
}

/// Why an order cannot be reserved: the step faults with it.
struct Refusal: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

await ProcessorMain.run(ReserveStock(), stores: [.sqlite, .postgres])
