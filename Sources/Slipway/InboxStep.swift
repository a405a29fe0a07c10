import Foundation
import GRDB
import SlipwayStores

/// A step whose effect is rows in the database that keeps its hop record: its handler writes them in the transaction
/// that saves the hop's record and its outgoing messages, so they commit together or not at all. A redelivered
/// message finds the record and never runs the handler again; a crash before the commit leaves nothing. No idempotency
/// key is needed for these writes (docs/exactly-once.md).
///
/// Conform to the protocol of the store the step runs with: `SQLiteInboxStep` (the default store) or, from
/// SlipwayPostgres, `PostgresInboxStep`; a step may conform to both. Started with a store it has no handler for, the
/// processor does not start (exit 2).
public protocol InboxStep: StepProcessor {}

extension InboxStep {
    /// Not called: the runtime calls the handler of the step's store, in the hop's transaction.
    public func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome {
        throw ProcessorError(.internalError, "step '\(step)' runs in its hop record's transaction, not on its own")
    }

    public func compensate(_ hop: CompensateHop) async throws {
        throw ProcessorError(.internalError, "step '\(step)' runs in its hop record's transaction, not on its own")
    }
}

/// An inbox step on the SQLite hop record (the default): its handlers get the GRDB `Database` of the hop's
/// transaction.
///
/// ```swift
/// struct ReserveStock: SQLiteInboxStep {
///     let step = "reserve-stock"
///     func migrate(_ migrator: inout DatabaseMigrator) {
///         migrator.registerMigration("reserve-stock 1: stock") { db in
///             try db.execute(sql: "CREATE TABLE stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL)")
///         }
///     }
///     func execute(_ hop: ExecuteHop, in db: Database) throws -> ExecuteOutcome {
///         try db.execute(sql: "UPDATE stock SET available = available - 1 WHERE sku = ? AND available > 0", arguments: [sku])
///         guard db.changesCount == 1 else { return .faulted(reason: "out of stock") }
///         return .completed(compensation: ["sku": .string(sku)])
///     }
///     func compensate(_ hop: CompensateHop, in db: Database) throws { ... }
/// }
/// ```
///
/// The handler runs synchronously while the file's write lock is held (inside the group commit of concurrent hops):
/// database work only, never a wait on another system (call those from a `StepProcessor` with the idempotency key).
/// It has no timeout. A thrown error rolls back its writes and counts as transient (the hop is tried again);
/// returning `.faulted` or `.terminated` keeps what it wrote.
public protocol SQLiteInboxStep: InboxStep {
    /// Registers the step's own tables. They are migrated in the hop record's file before the first hop; name the
    /// migrations after the step (`reserve-stock 1: stock`), not `v1: ...`, which the hop record's own use.
    func migrate(_ migrator: inout DatabaseMigrator)
    /// Runs the step in the hop's transaction.
    func execute(_ hop: ExecuteHop, in db: Database) throws -> ExecuteOutcome
    /// Undoes it in the undo hop's transaction.
    func compensate(_ hop: CompensateHop, in db: Database) throws
}

extension SQLiteInboxStep {
    public func migrate(_ migrator: inout DatabaseMigrator) {}

    public func compensate(_ hop: CompensateHop, in db: Database) throws {
        throw ProcessorError("step '\(step)' returned compensation data but has no compensate handler")
    }
}
