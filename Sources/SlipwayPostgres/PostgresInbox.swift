import Foundation
import Logging
import PostgresNIO
import Slipway
import SlipwayStores

/// An inbox step on the PostgreSQL hop record (`--store postgres://...`): its handlers get the connection of the
/// hop's transaction, in which the hop's record is then saved. Every instance of the step, on every host, shares the
/// database, so the step's tables are shared too.
///
/// ```swift
/// struct ReserveStock: PostgresInboxStep {
///     let step = "reserve-stock"
///     func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
///         try await connection.query("CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, available INT NOT NULL)", logger: logger)
///     }
///     func execute(_ hop: ExecuteHop, in connection: PostgresConnection) async throws -> ExecuteOutcome {
///         let rows = try await connection.query(
///             "UPDATE stock SET available = available - 1 WHERE sku = \(sku) AND available > 0 RETURNING sku", logger: hop.logger)
///         ...
///     }
/// }
/// ```
///
/// The handler may await, but only the database: the transaction holds a pooled connection and its row locks until
/// the hop's record is saved. The hop's timeout applies (a handler past it is cancelled and its writes rolled back).
/// A thrown error rolls back its writes and counts as transient; `.faulted` or `.terminated` keeps them.
public protocol PostgresInboxStep: InboxStep {
    /// Creates or changes the step's tables, once at start, in a transaction that holds a lock of the step's own (so
    /// that instances starting together do not race): write it to be run again (`CREATE TABLE IF NOT EXISTS`).
    func migrate(_ connection: PostgresConnection, logger: Logger) async throws
    /// Runs the step in the hop's transaction.
    func execute(_ hop: ExecuteHop, in connection: PostgresConnection) async throws -> ExecuteOutcome
    /// Undoes it in the undo hop's transaction.
    func compensate(_ hop: CompensateHop, in connection: PostgresConnection) async throws
}

extension PostgresInboxStep {
    public func migrate(_ connection: PostgresConnection, logger: Logger) async throws {}

    public func compensate(_ hop: CompensateHop, in connection: PostgresConnection) async throws {
        throw ProcessorError("step '\(step)' returned compensation data but has no compensate handler")
    }
}

/// `PostgresInboxStep` on `PostgresHopRecordStore`: a transaction per hop on a pooled connection, holding the
/// handler's writes (in a savepoint), the record, and the end of the hop's claim.
struct PostgresHopTransactions: HopTransactions {
    let step: any PostgresInboxStep
    let store: PostgresHopRecordStore

    static func bind(_ processor: any StepProcessor, _ store: PostgresHopRecordStore) -> (any HopTransactions)? {
        (processor as? any PostgresInboxStep).map { PostgresHopTransactions(step: $0, store: store) }
    }

    func prepare() async throws {
        let step = self.step
        let logger = store.logger
        try await store.database("migrating the step's tables") {
            try await store.client.withTransaction(logger: logger) { connection in
                try await connection.query(
                    "SELECT pg_advisory_xact_lock(hashtext(\("slipway-step-migration:" + step.step)))", logger: logger)
                try await step.migrate(connection, logger: logger)
            }
        }
    }

    func run(
        _ call: HandlerCall, timeout: Duration?,
        decide: @escaping @Sendable (HandlerResult, HopTiming) throws -> HopRecord?
    ) async throws -> HopTransactionResult {
        let step = self.step
        let store = self.store
        let logger = store.logger
        return try await store.database("running the hop's transaction") {
            try await store.client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                do {
                    let result = try await Self.transact(
                        call, step: step, store: store, connection: connection, timeout: timeout, decide: decide)
                    if case .saved = result {
                        Failpoint.reach(.beforeCommit)
                        try await connection.query("COMMIT", logger: logger)
                    } else {
                        try await connection.query("ROLLBACK", logger: logger)
                    }
                    return result
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
    }

    /// Inside the transaction: `.saved` is to be committed, anything else rolled back.
    private static func transact(
        _ call: HandlerCall, step: any PostgresInboxStep, store: PostgresHopRecordStore, connection: PostgresConnection,
        timeout: Duration?, decide: @Sendable (HandlerResult, HopTiming) throws -> HopRecord?
    ) async throws -> HopTransactionResult {
        let logger = store.logger
        // Recorded already (a redelivery after the commit, a claim taken over): the handler never runs again.
        if let found = try await record(call.slipID, call.sequence, store: store, connection: connection) {
            return .found(found)
        }
        let startedAt = Date()
        let started = ContinuousClock.now
        let result: HandlerResult
        try await connection.query("SAVEPOINT handler", logger: logger)
        do {
            switch call {
            case .execute(let hop):
                result = .executed(try await withTimeout(timeout) { try await step.execute(hop, in: connection) })
            case .compensate(let hop):
                try await withTimeout(timeout, kind: .compensate) { try await step.compensate(hop, in: connection) }
                result = .compensated
            }
            try await connection.query("RELEASE SAVEPOINT handler", logger: logger)
        } catch {
            // Its writes go; a faulted record may still be saved for its last attempt.
            try await connection.query("ROLLBACK TO SAVEPOINT handler", logger: logger)
            return try await save(
                decide(.threw("\(error)"), HopTiming(startedAt: startedAt, since: started)), store: store,
                connection: connection)
        }
        return try await save(
            decide(result, HopTiming(startedAt: startedAt, since: started)), store: store, connection: connection)
    }

    private static func save(
        _ record: HopRecord?, store: PostgresHopRecordStore, connection: PostgresConnection
    ) async throws -> HopTransactionResult {
        guard let record else { return .notSaved }
        let logger = store.logger
        let step = store.step
        let outgoing = ByteBuffer(bytes: OutgoingMessageBlob.encode(record.outgoing))
        let inserted = try await connection.query(
            """
            INSERT INTO hop_record (step, slip_id, sequence, kind, outcome, outgoing, forwarded, recorded_at)
            VALUES (\(step), \(record.slipID), \(record.sequence), \(record.kind.rawValue), \(record.outcome.rawValue),
                \(outgoing), \(record.forwarded), \(record.recordedAt.timeIntervalSince1970))
            ON CONFLICT (step, slip_id, sequence) DO NOTHING
            RETURNING sequence
            """, logger: logger)
        var new = false
        for try await _ in inserted { new = true }
        guard new else {
            // Saved by another instance meanwhile (its claim taken over): theirs stands; this transaction rolls back.
            guard let found = try await store.record(slipID: record.slipID, sequence: record.sequence) else {
                throw PostgresStoreError("database", "hop \(record.sequence) of slip \(record.slipID) is recorded and cannot be read")
            }
            return .found(found)
        }
        try await connection.query(
            "DELETE FROM hop_claim WHERE step = \(step) AND slip_id = \(record.slipID) AND sequence = \(record.sequence)",
            logger: logger)
        return .saved(record)
    }

    private static func record(
        _ slipID: String, _ sequence: Int, store: PostgresHopRecordStore, connection: PostgresConnection
    ) async throws -> HopRecord? {
        let rows = try await connection.query(
            """
            SELECT slip_id, sequence, kind, outcome, outgoing, forwarded, recorded_at FROM hop_record
            WHERE step = \(store.step) AND slip_id = \(slipID) AND sequence = \(sequence)
            """, logger: store.logger)
        for try await row in rows { return try store.decode(row) }
        return nil
    }
}
