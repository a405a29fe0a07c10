import ExampleLedger
import Foundation
import GRDB

/// What a run left in its SQLite files (and in the shared PostgreSQL hop record, when the processors used one), read
/// back for the checks: the audit trail, the processors' hop records, the example ledger and the warehouse that the
/// inbox step reserve-stock keeps in its hop record's database. Read with SQL of our own rather than the stores' APIs:
/// the checks must see exactly what is on disk, including what an API would hide (a second row for one hop, a second
/// journal line for one effect).
struct Evidence: Sendable {
    /// A row of the audit database's `hop` table (one per event: execute and compensate hops, parked, terminal).
    struct AuditRow: Sendable {
        var slipID: String
        var kind: String
        var step: String
        var sequence: Int
        var attempt: Int
        var outcome: String
        var eventID: String
    }

    /// A row of a processor's `hop_record` table: a hop that processor ran and recorded before forwarding.
    struct HopRecordRow: Sendable {
        var slipID: String
        var sequence: Int
        var step: String
        var kind: String
        var outcome: String
    }

    /// The ledger's view of one order, with the warehouse's reservations of every hop record database summed in.
    struct LedgerSlip: Sendable {
        /// Effects and undos applied (reserve, charge, ship, notify, release, refund, cancel-shipment), by count.
        var journal: [String: Int] = [:]
        /// Requests the systems received, applied or not: more than one for an action means its handler ran again.
        var calls: [String: Int] = [:]
        var reservationsInForce = 0
        var chargesInForce = 0
        var shipmentsInForce = 0
    }

    struct Stock: Sendable {
        /// The database the stock is kept in (an instance's SQLite file, or PostgreSQL).
        var source: String
        var sku: String
        var available: Int
        var reservedInForce: Int
        var initial: Int { ExampleLedger.Warehouse.initialStock[sku] ?? 0 }
    }

    /// The warehouse of the inbox step reserve-stock in one hop record's database: each SQLite file has its own
    /// (seeded with the initial stock), the PostgreSQL record one for every instance.
    struct Warehouse: Sendable {
        var source: String
        /// Per slip: reservations made, releases applied and reservations in force, in this database.
        var reservations: [String: ExampleLedger.Warehouse.Reservations] = [:]
        var stock: [Stock] = []
        /// The slips whose reserve-stock undo hop this database's record holds.
        var undone: Set<String> = []
    }

    var audit: [AuditRow] = []
    var hopRecords: [HopRecordRow] = []
    var ledger: [String: LedgerSlip] = [:]
    var warehouses: [Warehouse] = []
    /// Every warehouse's stock.
    var stock: [Stock] { warehouses.flatMap(\.stock) }
    /// Redelivered messages the processors ran because their hop had no record yet, and the most times one hop
    /// attempt came back (a processor parks it as poison at `ProcessorConfiguration.poisonRedeliveries`).
    var redeliveredHops = 0
    /// Hops recorded in more than one processor's hop record file: run to the end by two instances, each with a
    /// record of its own (instances that do not share their hop record).
    var hopsRecordedTwice: [String] = []
    /// The slips of `hopsRecordedTwice`.
    var slipsRecordedTwice: Set<String> = []
    /// Reservations in force in one database whose undo hop was recorded in another (instances that do not share
    /// their hop record keep their warehouses apart too, and an undo reaches either): slip id -> where.
    var undoneElsewhere: [String: String] = [:]
    var mostRedeliveries = 0

    /// `hopStoreURL`: the processors shared a PostgreSQL hop record; its rows of `slipIDs` (this run's slips: the
    /// database may hold earlier runs') are read instead of the SQLite files.
    static func load(
        auditPath: String, ledgerPath: String, hopStorePaths: [String], hopStoreURL: String? = nil,
        slipIDs: [String] = []
    ) async throws -> Evidence {
        var evidence = Evidence()
        if let audit = try open(auditPath) {
            evidence.audit = try await audit.read { db in
                try Row.fetchAll(db, sql: "SELECT slip_id, kind, step, sequence, attempt, outcome, event_id FROM hop")
                    .map {
                        AuditRow(
                            slipID: $0[0], kind: $0[1], step: $0[2], sequence: $0[3], attempt: $0[4], outcome: $0[5],
                            eventID: $0[6])
                    }
            }
        }
        var recordedIn: [String: Int] = [:]
        var stores: [(records: [HopRecordRow], redelivered: Int, most: Int)] = []
        if let hopStoreURL {
            stores.append(try await readPostgres(hopStoreURL, slipIDs: slipIDs))
            evidence.warehouses.append(try await readPostgresWarehouse(hopStoreURL, slipIDs: slipIDs))
        }
        for path in hopStoreURL == nil ? hopStorePaths : [] {
            guard let store = try open(path) else { continue }
            stores.append(
                try await store.read { db in
                    (
                        try Row.fetchAll(db, sql: "SELECT slip_id, sequence, step, kind, outcome FROM hop_record").map {
                            HopRecordRow(slipID: $0[0], sequence: $0[1], step: $0[2], kind: $0[3], outcome: $0[4])
                        },
                        try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(count), 0) FROM redelivery") ?? 0,
                        try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(count), 0) FROM redelivery") ?? 0
                    )
                })
            if path.hasSuffix(ExampleLedger.Warehouse.file(stateDirectory: "")) {
                evidence.warehouses.append(try await readWarehouse(store, source: path))
            }
        }
        for (records, redelivered, most) in stores {
            for record in records {
                let key = "\(record.slipID) hop \(record.sequence) (\(record.step) \(record.kind))"
                recordedIn[key, default: 0] += 1
                // One row a hop for the checks that follow hops: a hop recorded twice is counted apart (runTwice).
                if recordedIn[key] == 1 { evidence.hopRecords.append(record) } else { evidence.slipsRecordedTwice.insert(record.slipID) }
            }
            evidence.redeliveredHops += redelivered
            evidence.mostRedeliveries = max(evidence.mostRedeliveries, most)
        }
        evidence.hopsRecordedTwice = recordedIn.filter { $0.value > 1 }.map(\.key).sorted()
        if let ledger = try open(ledgerPath) {
            evidence.ledger = try await ledger.read { db in
                var slips: [String: LedgerSlip] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT slip_id, action, COUNT(*) FROM journal GROUP BY 1, 2") {
                    slips[row[0], default: LedgerSlip()].journal[row[1]] = row[2]
                }
                for row in try Row.fetchAll(db, sql: "SELECT slip_id, action, COUNT(*) FROM call GROUP BY 1, 2") {
                    slips[row[0], default: LedgerSlip()].calls[row[1]] = row[2]
                }
                for row in try Row.fetchAll(db, sql: "SELECT slip_id, SUM(refunded = 0) FROM charge GROUP BY 1") {
                    slips[row[0], default: LedgerSlip()].chargesInForce = row[1]
                }
                for row in try Row.fetchAll(db, sql: "SELECT slip_id, SUM(cancelled = 0) FROM shipment GROUP BY 1") {
                    slips[row[0], default: LedgerSlip()].shipmentsInForce = row[1]
                }
                return slips
            }
        }
        for warehouse in evidence.warehouses {
            for (slipID, reservations) in warehouse.reservations where reservations.inForce > 0 && !warehouse.undone.contains(slipID) {
                if let other = evidence.warehouses.first(where: { $0.undone.contains(slipID) }) {
                    evidence.undoneElsewhere[slipID] = "reserved in \(warehouse.source), undone in \(other.source)"
                }
            }
            for (slipID, reservations) in warehouse.reservations {
                evidence.ledger[slipID, default: LedgerSlip()].journal["reserve", default: 0] += reservations.made
                evidence.ledger[slipID, default: LedgerSlip()].journal["release", default: 0] += reservations.releases
                evidence.ledger[slipID, default: LedgerSlip()].reservationsInForce += reservations.inForce
            }
        }
        return evidence
    }

    /// The warehouse in one reserve-stock hop record file.
    private static func readWarehouse(_ store: DatabaseQueue, source: String) async throws -> Warehouse {
        try await store.read { db in
            var warehouse = Warehouse(source: source)
            // A file the step never migrated (its processor never started) has no warehouse.
            guard try db.tableExists("reservation") else { return warehouse }
            for row in try Row.fetchAll(
                db, sql: "SELECT slip_id, COUNT(*), SUM(released), SUM(released = 0) FROM reservation GROUP BY 1")
            {
                warehouse.reservations[row[0]] = .init(made: row[1], releases: row[2], inForce: row[3])
            }
            warehouse.stock = try Row.fetchAll(
                db,
                sql: """
                    SELECT sku, available,
                        (SELECT COALESCE(SUM(quantity), 0) FROM reservation r WHERE r.sku = s.sku AND released = 0)
                    FROM stock s ORDER BY sku
                    """
            ).map { row in Stock(source: source, sku: row[0], available: row[1], reservedInForce: row[2]) }
            warehouse.undone = Set(
                try String.fetchAll(
                    db, sql: "SELECT slip_id FROM hop_record WHERE step = ? AND kind = 'compensate'",
                    arguments: [ExampleLedger.Warehouse.step]))
            return warehouse
        }
    }

    /// A read-only connection, or nil if there is no such file (a store never written is an empty one).
    private static func open(_ path: String) throws -> DatabaseQueue? { try ExampleLedger.Warehouse.open(path) }

    /// Terminal and parked rows counted while the run goes on: how many slips have ended, or been parked, in the
    /// audit trail so far (0 while the sink has not created its database yet).
    static func auditProgress(auditPath: String) async -> (ended: Int, parked: Int, rows: Int) {
        guard let audit = try? open(auditPath) else { return (0, 0, 0) }
        let counts = try? await audit.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT slip_id) FROM hop WHERE kind = 'terminal'") ?? 0,
                try Int.fetchOne(
                    db,
                    sql: """
                        SELECT COUNT(DISTINCT slip_id) FROM hop p WHERE kind = 'parked' AND NOT EXISTS
                            (SELECT 1 FROM hop t WHERE t.slip_id = p.slip_id AND t.kind = 'terminal')
                        """) ?? 0,
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM hop") ?? 0
            )
        }
        return counts ?? (0, 0, 0)
    }
}
