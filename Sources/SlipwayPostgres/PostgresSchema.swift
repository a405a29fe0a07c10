import Foundation
import Logging
import PostgresNIO

/// The hop record's schema in PostgreSQL, versioned in a table of its own (`slipway_schema`, a row per migration
/// applied). Instances starting together migrate one at a time (an advisory lock held by the migrating transaction);
/// a database migrated by a newer build is refused, since this build cannot know what the newer schema means.
enum PostgresSchema {
    /// The migrations in order; version n is `migrations[n - 1]`. Append only: never change one that shipped.
    static let migrations: [(name: String, statements: [String])] = [
        (
            "hop records, claims and redelivery counts",
            [
                """
                CREATE TABLE hop_record (
                    step TEXT NOT NULL,
                    slip_id TEXT NOT NULL,
                    sequence BIGINT NOT NULL,
                    kind TEXT NOT NULL,
                    outcome TEXT NOT NULL,
                    outgoing BYTEA NOT NULL,
                    forwarded BOOLEAN NOT NULL DEFAULT FALSE,
                    recorded_at DOUBLE PRECISION NOT NULL,
                    PRIMARY KEY (step, slip_id, sequence)
                )
                """,
                "CREATE INDEX hop_record_by_age ON hop_record (step, recorded_at)",
                """
                CREATE TABLE hop_claim (
                    step TEXT NOT NULL,
                    slip_id TEXT NOT NULL,
                    sequence BIGINT NOT NULL,
                    owner TEXT NOT NULL,
                    expires_at TIMESTAMPTZ NOT NULL,
                    PRIMARY KEY (step, slip_id, sequence)
                )
                """,
                "CREATE INDEX hop_claim_by_expiry ON hop_claim (expires_at)",
                """
                CREATE TABLE hop_redelivery (
                    step TEXT NOT NULL,
                    slip_id TEXT NOT NULL,
                    sequence BIGINT NOT NULL,
                    attempt BIGINT NOT NULL,
                    count BIGINT NOT NULL,
                    noted_at DOUBLE PRECISION NOT NULL,
                    PRIMARY KEY (step, slip_id, sequence, attempt)
                )
                """,
                "CREATE INDEX hop_redelivery_by_age ON hop_redelivery (step, noted_at)",
            ]
        )
    ]

    static var latestVersion: Int { migrations.count }

    /// Any number, the same in every build: the advisory lock that serialises migrations.
    static let lockKey: Int64 = 0x536C_6970_7761_7931  // "Slipway1"

    /// Brings the schema up to this build's version; refuses a newer one.
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("BEGIN", logger: logger)
        do {
            try await migrateInTransaction(connection, logger: logger)
            try await connection.query("COMMIT", logger: logger)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    private static func migrateInTransaction(_ connection: PostgresConnection, logger: Logger) async throws {
        do {
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS slipway_schema (
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var current = 0
            for try await version in try await connection.query(
                "SELECT COALESCE(MAX(version), 0)::INT8 FROM slipway_schema", logger: logger
            ).decode(Int.self) {
                current = version
            }
            if current > latestVersion {
                throw PostgresStoreError(
                    "schema-too-new",
                    "the hop record database has schema version \(current), newer than this build knows (\(latestVersion)): "
                        + "a newer Slipway migrated it; upgrade this processor, or give it a database of its own")
            }
            for version in (current + 1)..<(latestVersion + 1) {
                let migration = migrations[version - 1]
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO slipway_schema (version, name) VALUES (\(version), \(migration.name))", logger: logger)
                logger.info("hop record schema migrated", metadata: ["store.schema_version": "\(version)"])
            }
        }
    }
}
