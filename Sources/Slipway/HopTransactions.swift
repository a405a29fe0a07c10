import Foundation
import GRDB
import SlipwayStores

/// A hop's handler, ready to be called with the hop's transaction.
public enum HandlerCall: Sendable {
    case execute(ExecuteHop)
    case compensate(CompensateHop)

    public var slipID: String {
        switch self {
        case .execute(let hop): hop.slipID
        case .compensate(let hop): hop.slipID
        }
    }

    public var sequence: Int {
        switch self {
        case .execute(let hop): hop.sequence
        case .compensate(let hop): hop.sequence
        }
    }
}

/// Runs an inbox step's handler in the transaction that saves its hop record: one kind per store (SQLite here,
/// PostgreSQL in SlipwayPostgres). The runtime gives it the call and how to decide the record from the result.
public protocol HopTransactions: Sendable {
    /// Creates or changes the step's tables: once, before the first hop.
    func prepare() async throws
    /// Runs `call` in a transaction, then `decide` with its result in the same transaction, and commits the handler's
    /// writes with the record `decide` returns; nil rolls the writes back. A hop recorded already is `.found`, and the
    /// handler does not run. `timeout` is the hop's, for handlers that can be cancelled (nil: none).
    func run(
        _ call: HandlerCall, timeout: Duration?,
        decide: @escaping @Sendable (HandlerResult, HopTiming) throws -> HopRecord?
    ) async throws -> HopTransactionResult
}

/// `SQLiteInboxStep` on `SQLiteHopRecordStore`: the handler and its record in a savepoint of the group commit.
struct SQLiteHopTransactions: HopTransactions {
    let step: any SQLiteInboxStep
    let store: SQLiteHopRecordStore

    func prepare() async throws {
        var migrator = DatabaseMigrator()
        step.migrate(&migrator)
        try store.migrate(migrator)
    }

    /// `timeout` does not apply: a synchronous handler holding the file's write lock cannot be cancelled.
    func run(
        _ call: HandlerCall, timeout: Duration?,
        decide: @escaping @Sendable (HandlerResult, HopTiming) throws -> HopRecord?
    ) async throws -> HopTransactionResult {
        let step = self.step
        return try await store.transact(slipID: call.slipID, sequence: call.sequence) { db in
            let startedAt = Date()
            let started = ContinuousClock.now
            let result: HandlerResult
            do {
                // A savepoint of its own: a handler that throws loses its writes, and a faulted record may still be
                // saved for its last attempt.
                var outcome: ExecuteOutcome?
                try db.inCachedSavepoint("handler") {
                    switch call {
                    case .execute(let hop): outcome = try step.execute(hop, in: db)
                    case .compensate(let hop): try step.compensate(hop, in: db)
                    }
                    return true
                }
                result = outcome.map(HandlerResult.executed) ?? .compensated
            } catch {
                result = .threw("\(error)")
            }
            Failpoint.reach(.beforeCommit)
            return try decide(result, HopTiming(startedAt: startedAt, since: started))
        }
    }
}

extension SQLiteHopTransactions {
    /// The binding for `processor` on `store`, if it is an inbox step of this kind.
    static func bind(_ processor: any StepProcessor, _ store: any HopRecordStore) -> (any HopTransactions)? {
        guard let step = processor as? any SQLiteInboxStep, let store = store as? SQLiteHopRecordStore else { return nil }
        return SQLiteHopTransactions(step: step, store: store)
    }
}
