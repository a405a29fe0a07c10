import Foundation
import GRDB
import Logging
import PostgresNIO
import Slipway
import SlipwayPostgres

/// `probe-step --inbox`: the probe as an inbox step. Each execute adds a row to its own table `probe_effect` in the
/// hop record's database (the SQLite file, or PostgreSQL with `--store postgres://...`), in the hop's transaction, and
/// each undo a row of kind `undo`: a test counts the rows to see every effect exactly once. The table has no unique
/// key, so an effect applied twice would show as two rows. Arguments: `throwTimes: n` (writes, then throws on
/// attempts 1 to n) and `fault: "why"`.
struct InboxProbe: SQLiteInboxStep, PostgresInboxStep {
    let step: String

    func migrate(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("probe 1: effects") { db in
            try db.execute(
                sql: """
                    CREATE TABLE probe_effect (
                        id INTEGER PRIMARY KEY, slip_id TEXT NOT NULL, sequence INTEGER NOT NULL, kind TEXT NOT NULL
                    )
                    """)
        }
    }

    func execute(_ hop: ExecuteHop, in db: Database) throws -> ExecuteOutcome {
        // A statement compiled once, as a step that runs thousands of hops would.
        try db.cachedStatement(sql: "INSERT INTO probe_effect (slip_id, sequence, kind) VALUES (?, ?, 'execute')")
            .execute(arguments: [hop.slipID, hop.sequence])
        return try outcome(hop)
    }

    /// After the write: what the arguments ask for.
    private func outcome(_ hop: ExecuteHop) throws -> ExecuteOutcome {
        if let times = hop.arguments["throwTimes"]?.intValue, hop.attempt <= times {
            throw ProcessorError("\(step) throws on attempt \(hop.attempt) of \(times) (throwTimes)")
        }
        if let reason = hop.arguments["fault"]?.stringValue { return .faulted(reason: reason) }
        // The plain probe's variable too: the same slip, so that the benchmark compares the write alone.
        return .completed(
            variables: ["\(step)At": .string(SlipCodec.formatTimestamp(Date()))], compensation: ["step": .string(step)])
    }

    func compensate(_ hop: CompensateHop, in db: Database) throws {
        try db.execute(
            sql: "INSERT INTO probe_effect (slip_id, sequence, kind) VALUES (?, ?, 'undo')",
            arguments: [hop.slipID, hop.sequence])
    }

    // MARK: PostgreSQL: one table for every probe step, with the step's name in each row.

    func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS probe_effect (
                id BIGSERIAL PRIMARY KEY, step TEXT NOT NULL, slip_id TEXT NOT NULL, sequence BIGINT NOT NULL,
                kind TEXT NOT NULL
            )
            """, logger: logger)
    }

    func execute(_ hop: ExecuteHop, in connection: PostgresConnection) async throws -> ExecuteOutcome {
        try await connection.query(
            "INSERT INTO probe_effect (step, slip_id, sequence, kind) VALUES (\(step), \(hop.slipID), \(hop.sequence), 'execute')",
            logger: hop.logger)
        return try outcome(hop)
    }

    func compensate(_ hop: CompensateHop, in connection: PostgresConnection) async throws {
        try await connection.query(
            "INSERT INTO probe_effect (step, slip_id, sequence, kind) VALUES (\(step), \(hop.slipID), \(hop.sequence), 'undo')",
            logger: hop.logger)
    }
}
