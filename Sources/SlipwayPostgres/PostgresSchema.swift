import Foundation
import Logging
import PostgresNIO

/// The hop record's schema in PostgreSQL, versioned in a table of its own (`slipway_schema`, a row per migration
/// applied). Instances starting together migrate one at a time (an advisory lock held by the migrating transaction);
/// a database migrated by a newer build is refused, since this build cannot know what the newer schema means, unless
/// every newer migration says it keeps older builds working (it only adds what they do not use): then a host not yet
/// upgraded can still restart during a rolling upgrade.
enum PostgresSchema {
    /// The migrations in order; version n is `migrations[n - 1]`. Append only: never change one that shipped.
    /// `keepsOlderBuilds`: a build that knows only the versions before this one still works on the migrated database.
    static let migrations: [(name: String, keepsOlderBuilds: Bool, statements: [String])] = [
        (
            "hop records, claims and redelivery counts", false,
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
        ),
        // Adds a function; builds before it claim with their own statement, which works beside it.
        ("claims in one round trip", true, [claimFunction]),
    ]

    /// Claims a batch of hops (`PostgresClaimWriter`) in one call, so one round trip and one commit: for each hop, in
    /// the order given, the claim row is inserted, or taken over when its lease has run out (or its owner claims again);
    /// PostgreSQL locks the conflicting row, so of concurrent callers on any host exactly one gets it. A recorded hop is
    /// not claimed: its record is returned instead; a live claim of another owner is returned as held.
    ///
    /// Why the record is read again after the insert: a save that commits while the insert waits for the claim row
    /// deletes that row, PostgreSQL then inserts a new one, and the insert's snapshot, taken before the save committed,
    /// did not see the record. A VOLATILE function in READ COMMITTED (PostgreSQL's default) takes a fresh snapshot for
    /// each statement it runs ("Function Volatility Categories" in the manual), so the SELECT that follows sees every
    /// commit before it, the save's included; the claim is then given back in the same transaction. Under REPEATABLE
    /// READ or SERIALIZABLE the snapshot is the transaction's and such a race fails with a serialization error instead.
    /// A hop whose claim vanished between the statements (released, or saved) is tried again, ten times at most, then
    /// reported as 'contended'.
    static let claimFunction = """
        CREATE FUNCTION slipway_claim(
            p_step TEXT, p_slip_ids TEXT[], p_sequences INT8[], p_owners TEXT[], p_lease FLOAT8)
        RETURNS TABLE (
            claim_index INT, claim_outcome TEXT, held_by TEXT, held_until TIMESTAMPTZ, record_kind TEXT,
            record_outcome TEXT, record_outgoing BYTEA, record_forwarded BOOLEAN, record_recorded_at FLOAT8)
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            i INT;
            tries INT;
            claimed BOOLEAN;
            found_record RECORD;
        BEGIN
            FOR i IN 1 .. coalesce(array_length(p_slip_ids, 1), 0) LOOP
                claim_index := i;
                tries := 0;
                LOOP
                    claim_outcome := NULL; held_by := NULL; held_until := NULL; record_kind := NULL;
                    record_outcome := NULL; record_outgoing := NULL; record_forwarded := NULL;
                    record_recorded_at := NULL;
                    INSERT INTO hop_claim AS c (step, slip_id, sequence, owner, expires_at)
                    SELECT p_step, p_slip_ids[i], p_sequences[i], p_owners[i],
                        clock_timestamp() + make_interval(secs => p_lease)
                    WHERE NOT EXISTS (
                        SELECT 1 FROM hop_record h
                        WHERE h.step = p_step AND h.slip_id = p_slip_ids[i] AND h.sequence = p_sequences[i])
                    ON CONFLICT (step, slip_id, sequence) DO UPDATE
                        SET owner = excluded.owner, expires_at = excluded.expires_at
                        WHERE c.expires_at <= clock_timestamp() OR c.owner = excluded.owner;
                    claimed := FOUND;
                    SELECT h.kind, h.outcome, h.outgoing, h.forwarded, h.recorded_at INTO found_record
                    FROM hop_record h
                    WHERE h.step = p_step AND h.slip_id = p_slip_ids[i] AND h.sequence = p_sequences[i];
                    IF FOUND THEN
                        IF claimed THEN
                            DELETE FROM hop_claim c
                            WHERE c.step = p_step AND c.slip_id = p_slip_ids[i] AND c.sequence = p_sequences[i]
                                AND c.owner = p_owners[i];
                        END IF;
                        claim_outcome := 'recorded';
                        record_kind := found_record.kind;
                        record_outcome := found_record.outcome;
                        record_outgoing := found_record.outgoing;
                        record_forwarded := found_record.forwarded;
                        record_recorded_at := found_record.recorded_at;
                        RETURN NEXT;
                        EXIT;
                    END IF;
                    IF claimed THEN
                        claim_outcome := 'claimed';
                        RETURN NEXT;
                        EXIT;
                    END IF;
                    SELECT c.owner, c.expires_at INTO held_by, held_until FROM hop_claim c
                    WHERE c.step = p_step AND c.slip_id = p_slip_ids[i] AND c.sequence = p_sequences[i];
                    IF FOUND THEN
                        claim_outcome := 'held';
                        RETURN NEXT;
                        EXIT;
                    END IF;
                    tries := tries + 1;
                    IF tries >= 10 THEN
                        claim_outcome := 'contended';
                        RETURN NEXT;
                        EXIT;
                    END IF;
                END LOOP;
            END LOOP;
        END
        $$
        """

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
            // Added after version 2 shipped without it: a row without it (an older build's, or one this build does not
            // know) counts as breaking older builds.
            try await connection.query(
                "ALTER TABLE slipway_schema ADD COLUMN IF NOT EXISTS keeps_older_builds BOOLEAN NOT NULL DEFAULT FALSE",
                logger: logger)
            var (current, newestBreaking) = (0, 0)
            for try await row in try await connection.query(
                """
                SELECT COALESCE(MAX(version), 0)::INT8,
                    COALESCE(MAX(version) FILTER (WHERE NOT keeps_older_builds), 0)::INT8
                FROM slipway_schema
                """, logger: logger
            ).decode((Int, Int).self) {
                (current, newestBreaking) = row
            }
            if newestBreaking > latestVersion {
                throw PostgresStoreError(
                    "schema-too-new",
                    "the hop record database has schema version \(current), newer than this build knows (\(latestVersion)), "
                        + "and version \(newestBreaking) changed what older builds rely on: a newer Slipway migrated it; "
                        + "upgrade this processor, or give it a database of its own")
            }
            if current > latestVersion {
                logger.warning(
                    "the hop record database has a newer schema than this build knows; its newer migrations keep older builds working",
                    metadata: ["store.schema_version": "\(current)", "store.build_schema_version": "\(latestVersion)"])
                return
            }
            for version in (current + 1)..<(latestVersion + 1) {
                let migration = migrations[version - 1]
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    """
                    INSERT INTO slipway_schema (version, name, keeps_older_builds)
                    VALUES (\(version), \(migration.name), \(migration.keepsOlderBuilds))
                    """, logger: logger)
                logger.info("hop record schema migrated", metadata: ["store.schema_version": "\(version)"])
            }
        }
    }
}
