import Foundation
import GRDB

/// The outbox's table, in the app's own database. Its migrations are named after it (`slipway-outbox N: ...`), so they
/// never collide with the app's own in the same `grdb_migrations`.
enum OutboxSchema {
    static let table = "slipway_outbox"

    static func migrate(_ writer: any DatabaseWriter) throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("slipway-outbox 1: slips to relay") { db in
            // The message is stored as SlipSender would publish it (queue, body, headers, ids), so the relay publishes
            // exactly that. Times are milliseconds since 1970. Insertion order (rowid) is the relay's order.
            try db.execute(
                sql: """
                    CREATE TABLE slipway_outbox (
                        slip_id TEXT PRIMARY KEY NOT NULL,
                        template TEXT NOT NULL,
                        queue TEXT NOT NULL,
                        body BLOB NOT NULL,
                        headers TEXT NOT NULL,
                        message_id TEXT,
                        correlation_id TEXT,
                        content_type TEXT,
                        created_at INTEGER NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        last_error TEXT,
                        next_attempt_at INTEGER NOT NULL,
                        sent_at INTEGER
                    );
                    CREATE INDEX slipway_outbox_pending ON slipway_outbox(next_attempt_at) WHERE sent_at IS NULL;
                    CREATE INDEX slipway_outbox_sent ON slipway_outbox(sent_at) WHERE sent_at IS NOT NULL;
                    """)
        }
        try migrator.migrate(writer)
    }
}

/// Milliseconds since 1970, the outbox's time column unit.
func outboxMillis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }

func outboxDate(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }
