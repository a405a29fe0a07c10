import Foundation
import GRDB
import SlipwayCore
import SlipwayTransport

/// The SQLite outbox's statements on its table: the relay's (`SlipOutbox` as `OutboxStorage`) and the operators'
/// (`OutboxInspector`).
enum OutboxRows {
    /// Pending slips due by `now`, oldest first.
    static func due(_ db: Database, now: Date, limit: Int) throws -> [PendingSlip] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT slip_id, attempts, queue, body, headers, message_id, correlation_id, content_type
                FROM slipway_outbox WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY rowid LIMIT ?
                """,
            arguments: [outboxMillis(now), limit]
        ).map { row in
            let body: Data = row["body"]
            return PendingSlip(
                slipID: row["slip_id"], attempts: row["attempts"], queue: row["queue"], body: [UInt8](body),
                headers: row["headers"], messageID: row["message_id"], correlationID: row["correlation_id"],
                contentType: row["content_type"])
        }
    }

    /// Stores what became of a batch: sent, or each slip's failed attempt.
    static func store(_ db: Database, _ outcome: OutboxBatchOutcome, of slips: [PendingSlip]) throws {
        switch outcome {
        case .sent(let sentAt):
            for slip in slips {
                try db.execute(
                    sql: "UPDATE slipway_outbox SET sent_at = ?, last_error = NULL WHERE slip_id = ? AND sent_at IS NULL",
                    arguments: [outboxMillis(sentAt), slip.slipID])
            }
        case .failed(let error, let retries):
            for retry in retries {
                try db.execute(
                    sql: """
                        UPDATE slipway_outbox SET attempts = ?, last_error = ?, next_attempt_at = ?
                        WHERE slip_id = ? AND sent_at IS NULL
                        """,
                    arguments: [retry.attempts, error, outboxMillis(retry.nextAttemptAt), retry.slipID])
            }
        }
    }

    /// Deletes slips sent before `cutoff`; how many.
    static func pruneSent(_ db: Database, before cutoff: Date) throws -> Int {
        try db.execute(
            sql: "DELETE FROM slipway_outbox WHERE sent_at IS NOT NULL AND sent_at < ?", arguments: [outboxMillis(cutoff)])
        return db.changesCount
    }

    static func entries(_ db: Database, includingSent: Bool) throws -> [OutboxEntry] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT slip_id, template, created_at, attempts, last_error, next_attempt_at, sent_at
                FROM slipway_outbox \(includingSent ? "" : "WHERE sent_at IS NULL") ORDER BY rowid
                """
        ).map { row in
            OutboxEntry(
                slipID: row["slip_id"], template: row["template"], createdAt: outboxDate(row["created_at"]),
                attempts: row["attempts"], lastError: row["last_error"],
                nextAttemptAt: outboxDate(row["next_attempt_at"]),
                sentAt: (row["sent_at"] as Int64?).map(outboxDate))
        }
    }

    static func retry(_ db: Database, slipID: String?, now: Date) throws -> [String] {
        let filter = slipID == nil ? "" : "AND slip_id = ?"
        let arguments: StatementArguments = slipID.map { [$0] } ?? []
        let ids = try String.fetchAll(
            db, sql: "SELECT slip_id FROM slipway_outbox WHERE sent_at IS NULL \(filter) ORDER BY rowid",
            arguments: arguments)
        var updateArguments: StatementArguments = [outboxMillis(now)]
        updateArguments += arguments
        try db.execute(
            sql: "UPDATE slipway_outbox SET next_attempt_at = ? WHERE sent_at IS NULL \(filter)",
            arguments: updateArguments)
        return ids
    }
}
