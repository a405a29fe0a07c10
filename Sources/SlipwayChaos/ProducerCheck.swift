import ExampleLedger
import Foundation
import GRDB

/// The order API's database at the end of the run: its orders and its outbox.
struct ProducerEvidence: Sendable {
    /// orderId: slip id.
    var orders: [String: String] = [:]
    /// slip id: whether the relay marked it sent.
    var outbox: [String: Bool] = [:]

    static func load(path: String) async throws -> ProducerEvidence {
        guard let database = try Warehouse.open(path) else { return ProducerEvidence() }
        return try await database.read { db in
            var evidence = ProducerEvidence()
            for row in try Row.fetchAll(db, sql: "SELECT id, slip_id FROM orders") { evidence.orders[row["id"]] = row["slip_id"] }
            for row in try Row.fetchAll(db, sql: "SELECT slip_id, sent_at IS NOT NULL AS sent FROM slipway_outbox") {
                evidence.outbox[row["slip_id"]] = row["sent"]
            }
            return evidence
        }
    }
}

extension Checks {
    /// Every order the API committed has exactly one slip, relayed, that ended once; an order killed inside its
    /// transaction left no row, no slip and no hop; every order the API answered as placed is committed.
    func outbox(_ record: ProducerRecord, _ api: ProducerEvidence) -> CheckResult {
        var culprits = record.refused
        let terminal = Dictionary(grouping: evidence.audit.filter { $0.kind == "terminal" }, by: \.slipID)
        for (orderID, _) in record.placed.sorted(by: { $0.key < $1.key }) where api.orders[orderID] == nil {
            culprits.append("\(orderID): answered as placed, but not in the API's database")
        }
        for (orderID, slipID) in api.orders.sorted(by: { $0.key < $1.key }) {
            if record.placed[orderID] == nil { culprits.append("\(orderID): committed, though never answered as placed") }
            switch api.outbox[slipID] {
            case nil: culprits.append("\(orderID): committed with no slip in the outbox")
            case false?: culprits.append("\(orderID): its slip \(slipID) is still pending in the outbox")
            case true?: break
            }
            let ends = terminal[slipID]?.count ?? (self.ends[slipID] == nil ? 0 : 1)
            if ends != 1 { culprits.append("\(orderID): its slip \(slipID) ended \(ends) times") }
        }
        let orderSlips = Set(api.orders.values)
        for slipID in api.outbox.keys.sorted() where !orderSlips.contains(slipID) {
            culprits.append("\(slipID): a slip in the outbox with no order")
        }
        for orderID in record.rolledBack {
            let slipID = ProducerRecord.slipID(order: orderID)
            let hops = evidence.audit.filter { $0.slipID == slipID }.count + evidence.hopRecords.filter { $0.slipID == slipID }.count
            if api.orders[orderID] != nil || api.outbox[slipID] != nil || hops > 0 || ends[slipID] != nil {
                culprits.append("\(orderID): rolled back by a kill, yet has a row, a slip or hops (\(hops))")
            }
        }
        return CheckResult(
            name: "outbox",
            meaning: "orders through order-api without exactly one relayed slip that ended once, or a rolled-back "
                + "order with a row or a slip",
            found: culprits.count, expected: "0", passed: culprits.isEmpty, examples: Array(culprits.prefix(5)))
    }

    /// The report's line on the producer.
    static func producerSummary(_ record: ProducerRecord, _ api: ProducerEvidence) -> String {
        "orders through order-api (the outbox): \(api.orders.count) committed, \(record.rolledBack.count) rolled back "
            + "by a kill inside their transaction (the outbox check above: one slip each, none); kills: "
            + "\(record.killsInTransaction) inside a transaction, \(record.killsAfterCommit) after a commit; "
            + "POSTs sent again after no answer: \(record.askedAgain)"
    }
}
