import Foundation
import GRDB
import SlipwayStores

/// The example saga's "external systems" (a payment provider, a carrier, a mailer) keep their effects in one small
/// SQLite file, so anyone can check that a completed order was charged exactly once and that a compensated one left
/// no net effect.
///
/// Every effect is keyed by the hop's idempotency key, the way a real payment API takes an idempotency key: applying
/// it twice changes nothing. (The warehouse is no external system: `reserve-stock` keeps its stock in its hop record's
/// database, see `Warehouse`.)
public final class Ledger: Sendable {
    private let pool: DatabasePool
    public let path: String

    /// The payment provider declines this card (faults at charge-card).
    public static let declinedCard = "4000-0000-0000-0002"
    /// The carrier ships to these countries only (anything else faults at ship-order).
    public static let shippableCountries: Set<String> = ["DE", "FR", "NL", "BE", "GB", "US", "CA", "ES", "IT"]

    public init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(
            at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        pool = try openDatabasePool(path: path, configuration: configuration)
        try migrateSharedFile(Self.migrator, pool)
    }

    /// The ledger at `SLIPWAY_EXAMPLE_LEDGER`, or `.slipway/example-ledger.sqlite`.
    public static func openDefault() throws -> Ledger {
        try Ledger(path: defaultPath)
    }

    public static var defaultPath: String {
        ProcessInfo.processInfo.environment["SLIPWAY_EXAMPLE_LEDGER"] ?? ".slipway/example-ledger.sqlite"
    }

    /// For the example processors' `main`: the default ledger, or a one-line error and exit status 1.
    public static func openDefaultOrExit() -> Ledger {
        do {
            return try openDefault()
        } catch {
            FileHandle.standardError.write(Data("cannot open the example ledger at \(defaultPath): \(error)\n".utf8))
            exit(1)
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE charge (id TEXT PRIMARY KEY, slip_id TEXT NOT NULL, card TEXT NOT NULL,
                        amount_cents INTEGER NOT NULL, refunded INTEGER NOT NULL DEFAULT 0);
                    CREATE TABLE shipment (id TEXT PRIMARY KEY, slip_id TEXT NOT NULL, country TEXT NOT NULL,
                        address TEXT NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0);
                    CREATE TABLE notification (id TEXT PRIMARY KEY, slip_id TEXT NOT NULL, email TEXT NOT NULL,
                        message TEXT NOT NULL);
                    CREATE INDEX charge_slip ON charge (slip_id);
                    CREATE INDEX shipment_slip ON shipment (slip_id);
                    CREATE INDEX notification_slip ON notification (slip_id);
                    """)
            // Every effect and undo, in the order the systems applied them (one writer at a time: SQLite's order).
            try db.execute(
                sql: """
                    CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, slip_id TEXT NOT NULL, action TEXT NOT NULL);
                    CREATE INDEX journal_slip ON journal (slip_id);
                    CREATE TABLE call (id INTEGER PRIMARY KEY AUTOINCREMENT, slip_id TEXT NOT NULL, action TEXT NOT NULL);
                    CREATE INDEX call_slip ON call (slip_id);
                    """)
        }
        return migrator
    }

    public enum Result: Sendable, Equatable {
        case done(id: String)
        case refused(reason: String)
    }

    // MARK: Payment provider

    public func charge(key: String, slipID: String, card: String, amountCents: Int) async throws -> Result {
        try await answering { db in
            try Self.call(db, slipID, "charge")
            if card == Self.declinedCard { return .refused(reason: "card declined by the issuer") }
            guard amountCents > 0 else { return .refused(reason: "amount must be positive, got \(amountCents)") }
            try db.execute(
                sql: "INSERT OR IGNORE INTO charge (id, slip_id, card, amount_cents) VALUES (?, ?, ?, ?)",
                arguments: [key, slipID, card, amountCents])
            if db.changesCount > 0 { try Self.journal(db, slipID, "charge") }
            return .done(id: key)
        }
    }

    public func refund(chargeID: String) async throws {
        try await answering { db in
            try db.execute(sql: "UPDATE charge SET refunded = 1 WHERE id = ? AND refunded = 0", arguments: [chargeID])
            if db.changesCount > 0 {
                let slipID = try String.fetchOne(db, sql: "SELECT slip_id FROM charge WHERE id = ?", arguments: [chargeID])
                try Self.journal(db, slipID ?? "?", "refund")
            }
        }
    }

    // MARK: Carrier

    public func book(key: String, slipID: String, country: String, address: String) async throws -> Result {
        try await answering { db in
            try Self.call(db, slipID, "ship")
            guard Self.shippableCountries.contains(country.uppercased()) else {
                return .refused(reason: "cannot ship to country '\(country)'")
            }
            try db.execute(
                sql: "INSERT OR IGNORE INTO shipment (id, slip_id, country, address) VALUES (?, ?, ?, ?)",
                arguments: [key, slipID, country.uppercased(), address])
            if db.changesCount > 0 { try Self.journal(db, slipID, "ship") }
            return .done(id: key)
        }
    }

    public func cancel(shipmentID: String) async throws {
        try await answering { db in
            try db.execute(sql: "UPDATE shipment SET cancelled = 1 WHERE id = ? AND cancelled = 0", arguments: [shipmentID])
            if db.changesCount > 0 {
                let slipID = try String.fetchOne(db, sql: "SELECT slip_id FROM shipment WHERE id = ?", arguments: [shipmentID])
                try Self.journal(db, slipID ?? "?", "cancel-shipment")
            }
        }
    }

    // MARK: Mailer

    public func notify(key: String, slipID: String, email: String, message: String) async throws -> Result {
        try await answering { db in
            try Self.call(db, slipID, "notify")
            guard email.contains("@"), !email.hasPrefix("@"), !email.hasSuffix("@") else {
                return .refused(reason: "cannot notify '\(email)': not an email address")
            }
            try db.execute(
                sql: "INSERT OR IGNORE INTO notification (id, slip_id, email, message) VALUES (?, ?, ?, ?)",
                arguments: [key, slipID, email, message])
            if db.changesCount > 0 { try Self.journal(db, slipID, "notify") }
            return .done(id: key)
        }
    }

    /// Applies a request (an effect or an undo) in one transaction, then answers, as late as
    /// `SLIPWAY_EXAMPLE_ANSWER_DELAY_MS` says: the change is in force before the caller hears of it, so a processor
    /// killed meanwhile runs its handler again (the chaos run uses this to show that the idempotency key, or the undo's
    /// own check, keeps that from applying anything twice).
    private func answering<T: Sendable>(_ request: @Sendable (Database) throws -> T) async throws -> T {
        let result = try await pool.write(request)
        if let text = ProcessInfo.processInfo.environment["SLIPWAY_EXAMPLE_ANSWER_DELAY_MS"], let ms = Int(text), ms > 0 {
            try? await Task.sleep(for: .milliseconds(ms))
        }
        return result
    }

    /// Every request a system received, applied or not: shows whether a step's handler ran more than once.
    private static func call(_ db: Database, _ slipID: String, _ action: String) throws {
        try db.execute(sql: "INSERT INTO call (slip_id, action) VALUES (?, ?)", arguments: [slipID, action])
    }

    /// The requests the external systems received for one order, in order (retries and re-executions included).
    public func calls(slipID: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT action FROM call WHERE slip_id = ? ORDER BY id", arguments: [slipID])
        }
    }

    private static func journal(_ db: Database, _ slipID: String, _ action: String) throws {
        try db.execute(sql: "INSERT INTO journal (slip_id, action) VALUES (?, ?)", arguments: [slipID, action])
    }

    // MARK: Checks

    /// The effects and undos applied for one order, in the order they were applied.
    public func journal(slipID: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT action FROM journal WHERE slip_id = ? ORDER BY id", arguments: [slipID])
        }
    }

    /// What the external systems hold for one order.
    public struct Effects: Sendable, Equatable, CustomStringConvertible {
        public var charges = 0
        public var activeCharges = 0
        public var shipments = 0
        public var activeShipments = 0
        public var notifications = 0

        public init() {}

        /// Nothing left in force: every charge refunded, every shipment cancelled.
        public var hasNoNetEffect: Bool { activeCharges == 0 && activeShipments == 0 }

        public var description: String {
            "charges \(activeCharges)/\(charges) active, "
                + "shipments \(activeShipments)/\(shipments) active, notifications \(notifications)"
        }
    }

    public func effects(slipID: String) async throws -> Effects {
        try await pool.read { db in
            func count(_ sql: String) throws -> Int { try Int.fetchOne(db, sql: sql, arguments: [slipID]) ?? 0 }
            var effects = Effects()
            effects.charges = try count("SELECT COUNT(*) FROM charge WHERE slip_id = ?")
            effects.activeCharges = try count("SELECT COUNT(*) FROM charge WHERE slip_id = ? AND refunded = 0")
            effects.shipments = try count("SELECT COUNT(*) FROM shipment WHERE slip_id = ?")
            effects.activeShipments = try count("SELECT COUNT(*) FROM shipment WHERE slip_id = ? AND cancelled = 0")
            effects.notifications = try count("SELECT COUNT(*) FROM notification WHERE slip_id = ?")
            return effects
        }
    }
}

/// Lets the demo and the tests slow a step down (to keep slips in flight while a processor is killed):
/// `SLIPWAY_EXAMPLE_DELAY_MS`.
public func exampleStepDelay() async {
    if let text = ProcessInfo.processInfo.environment["SLIPWAY_EXAMPLE_DELAY_MS"], let ms = Int(text), ms > 0 {
        try? await Task.sleep(for: .milliseconds(ms))
    }
}
