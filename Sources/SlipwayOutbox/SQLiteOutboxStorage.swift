import Foundation
import GRDB

/// The SQLite outbox as the relay's storage. One relay per database file: the read of a batch claims nothing (a second
/// relay on the same file would publish the same slips; harmless, but twice the work).
extension SlipOutbox: OutboxStorage {
    public func relayDue(
        now: Date, limit: Int, _ publish: @escaping @Sendable ([PendingSlip]) async -> OutboxBatchOutcome
    ) async throws -> Int {
        let slips = try await database.read { db in try OutboxRows.due(db, now: now, limit: limit) }
        guard !slips.isEmpty else { return 0 }
        let outcome = await publish(slips)
        try await database.write { db in try OutboxRows.store(db, outcome, of: slips) }
        if case .sent = outcome { return slips.count }
        return 0
    }

    public func pruneSent(before cutoff: Date) async throws -> Int {
        try await database.write { db in try OutboxRows.pruneSent(db, before: cutoff) }
    }

    public func entries(includingSent: Bool) async throws -> [OutboxEntry] {
        try await database.read { db in try OutboxRows.entries(db, includingSent: includingSent) }
    }

    public func retry(slipID: String?, now: Date) async throws -> [String] {
        try await database.write { db in try OutboxRows.retry(db, slipID: slipID, now: now) }
    }
}
