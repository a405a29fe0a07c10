import Foundation
import GRDB
import SlipwayCore
import SlipwayTransport

/// A pending slip as the relay reads it: its message, ready to publish.
struct PendingSlip: Sendable {
    var slipID: String
    var attempts: Int
    var message: OutgoingMessage
}

/// The relay's statements on the outbox table.
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
            let headersText: String = row["headers"]
            let headers = (try? JSONDecoder().decode([String: String].self, from: Data(headersText.utf8))) ?? [:]
            let body: Data = row["body"]
            return PendingSlip(
                slipID: row["slip_id"], attempts: row["attempts"],
                message: .toQueue(
                    row["queue"], body: [UInt8](body), headers: headers, messageID: row["message_id"],
                    correlationID: row["correlation_id"], contentType: row["content_type"]))
        }
    }

    static func markSent(_ db: Database, _ slipIDs: [String], at now: Date) throws {
        for slipID in slipIDs {
            try db.execute(
                sql: "UPDATE slipway_outbox SET sent_at = ?, last_error = NULL WHERE slip_id = ? AND sent_at IS NULL",
                arguments: [outboxMillis(now), slipID])
        }
    }

    /// Counts a failed attempt for each slip and puts its next one off by `backoff(attempts)`.
    static func recordFailure(
        _ db: Database, _ slips: [PendingSlip], error: String, at now: Date, backoff: (Int) -> Duration
    ) throws {
        for slip in slips {
            let attempts = slip.attempts + 1
            let next = now.addingTimeInterval(backoff(attempts).seconds)
            try db.execute(
                sql: """
                    UPDATE slipway_outbox SET attempts = ?, last_error = ?, next_attempt_at = ?
                    WHERE slip_id = ? AND sent_at IS NULL
                    """,
                arguments: [attempts, error, outboxMillis(next), slip.slipID])
        }
    }

    /// Deletes slips sent before `cutoff`; how many.
    static func pruneSent(_ db: Database, before cutoff: Date) throws -> Int {
        try db.execute(
            sql: "DELETE FROM slipway_outbox WHERE sent_at IS NOT NULL AND sent_at < ?", arguments: [outboxMillis(cutoff)])
        return db.changesCount
    }
}
