import Foundation
import GRDB

/// The example's warehouse, unlike the other "external systems", is no system of its own: the `reserve-stock` step
/// keeps its stock and reservations in its hop record's database (an inbox step, docs/exactly-once.md), with the
/// default SQLite record in `STATE_DIR/reserve-stock.hops.sqlite`. This reads that file back, for the tests.
public enum Warehouse {
    /// Stock the warehouse starts with (the step's migration seeds it). `sold-out` has none: ordering it faults at
    /// reserve-stock.
    public static let initialStock: [String: Int] = [
        "widget": 1_000_000, "gadget": 1_000_000, "gizmo": 1_000_000, "sold-out": 0,
    ]

    public static let step = "reserve-stock"

    /// The step's hop record file in a state directory.
    public static func file(stateDirectory: String) -> String { "\(stateDirectory)/\(step).hops.sqlite" }

    /// One order's reservations.
    public struct Reservations: Sendable, Equatable, CustomStringConvertible {
        /// Reservations made (a reservation made twice would be two).
        public var made = 0
        /// Releases applied (each reservation's `released` counts them: a release applied twice would be 2).
        public var releases = 0
        /// Reservations not released.
        public var inForce = 0

        public init(made: Int = 0, releases: Int = 0, inForce: Int = 0) {
            self.made = made
            self.releases = releases
            self.inForce = inForce
        }

        public var description: String { "reservations \(inForce)/\(made) active, \(releases) releases" }
    }

    /// One order's reservations in the step's file (none while the file does not exist).
    public static func reservations(slipID: String, file: String) async throws -> Reservations {
        guard let queue = try open(file) else { return Reservations() }
        return try await queue.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*), COALESCE(SUM(released), 0), COALESCE(SUM(released = 0), 0)
                    FROM reservation WHERE slip_id = ?
                    """, arguments: [slipID])
            return Reservations(made: row?[0] ?? 0, releases: row?[1] ?? 0, inForce: row?[2] ?? 0)
        }
    }

    /// The stock of an article in the step's file (nil: unknown article, or no file yet).
    public static func available(sku: String, file: String) async throws -> Int? {
        guard let queue = try open(file) else { return nil }
        return try await queue.read { db in
            try Int.fetchOne(db, sql: "SELECT available FROM stock WHERE sku = ?", arguments: [sku])
        }
    }

    /// Read-only, as the processor writes the file meanwhile; nil when there is no file (a store never written).
    public static func open(_ path: String) throws -> DatabaseQueue? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        return try DatabaseQueue(path: path, configuration: configuration)
    }
}
