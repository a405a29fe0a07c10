import Logging
import PostgresNIO

/// The PostgreSQL outbox's table, `slipway_outbox`, in the app's own database. The statements may run again (`IF NOT
/// EXISTS`): a later change must be written so too (`ADD COLUMN IF NOT EXISTS`), since there is no version table.
/// Instances starting together migrate one at a time, under an advisory lock of the outbox's own, as
/// `PostgresInboxStep`'s tables do.
enum PostgresOutboxSchema {
    static let table = "slipway_outbox"

    /// The message is stored as `SlipSender` would publish it (queue, body, headers, ids), so the relay publishes
    /// exactly that. `position` is the relay's order (oldest first). The partial index holds only pending slips, so
    /// the relay's read stays small however many sent slips the retention keeps.
    static let statements = [
        """
        CREATE TABLE IF NOT EXISTS slipway_outbox (
            position BIGSERIAL NOT NULL,
            slip_id TEXT PRIMARY KEY,
            template TEXT NOT NULL,
            queue TEXT NOT NULL,
            body BYTEA NOT NULL,
            headers TEXT NOT NULL,
            message_id TEXT,
            correlation_id TEXT,
            content_type TEXT,
            created_at TIMESTAMPTZ NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt_at TIMESTAMPTZ NOT NULL,
            sent_at TIMESTAMPTZ
        )
        """,
        "CREATE INDEX IF NOT EXISTS slipway_outbox_pending ON slipway_outbox (position) WHERE sent_at IS NULL",
        "CREATE INDEX IF NOT EXISTS slipway_outbox_sent ON slipway_outbox (sent_at) WHERE sent_at IS NOT NULL",
    ]

    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query(
                "SELECT pg_advisory_xact_lock(hashtext(\("slipway-outbox-migration")))", logger: logger)
            for statement in statements {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
    }

    /// Whether the database holds the table (`slip outbox` refuses a database without it rather than create it).
    static func exists(_ connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query("SELECT to_regclass(\(table)) IS NOT NULL", logger: logger)
        for try await exists in rows.decode(Bool.self) { return exists }
        return false
    }
}
