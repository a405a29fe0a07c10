import Foundation
import GRDB
import ServiceLifecycle
import SlipwayCore
import SlipwayTransport

/// The hop record in a local SQLite file (WAL mode), through GRDB.
///
/// A record is committed before the hop's result is published; with `synchronous = NORMAL` in WAL mode a commit
/// survives the process being killed (it can only be lost with the whole machine, which the broker's redelivery and the
/// idempotency key passed to handlers cover).
///
/// Records are kept for `keepFor` (7 days by default), then pruned by the store's maintenance: a message redelivered
/// later than that runs its step again, with the same idempotency key.
///
/// The store is a `Service`: `run()` is its maintenance (WAL checkpoints off the hops' threads, and pruning), until
/// graceful shutdown or cancellation. A processor runs it in its `ServiceGroup`; a store used without it still works,
/// with SQLite's own checkpoints (at about 40 MB of WAL) and no pruning.
public final class SQLiteHopRecordStore: HopRecordStore, Service {
    private let pool: DatabasePool
    private let writer: HopRecordWriter
    private let checkpointer: WALCheckpointer
    public let path: String

    public static let defaultKeepFor = Duration.seconds(7 * 24 * 3600)

    /// - Parameters:
    ///   - keepFor: how long a hop's record is kept; nil keeps every record for ever.
    ///   - pruneEvery: how often the maintenance (`run()`) looks for records past `keepFor`.
    public init(
        path: String, keepFor: Duration? = SQLiteHopRecordStore.defaultKeepFor, pruneEvery: Duration = .seconds(60)
    ) throws {
        self.path = path
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(WALCheckpointer.fallbackAutocheckpointPages)")
            // Hops look up recent records by key: a small cache per connection does (the default is 2 MB each).
            try db.execute(sql: "PRAGMA cache_size = -512")
        }
        configuration.busyMode = .timeout(10)
        // Hops read on the writer's connection (`recordNow`); no reader connection is opened in use.
        configuration.maximumReaderCount = 1
        pool = try openDatabasePool(path: path, configuration: configuration)
        try migrateSharedFile(Self.migrator, pool)
        writer = HopRecordWriter(pool: pool)
        let pruning = keepFor.map { keepFor in
            WALCheckpointer.Pruning(keepFor: keepFor, every: pruneEvery) { queue, cutoff in
                try Self.prune(queue, before: cutoff)
            }
        }
        checkpointer = WALCheckpointer(path: path, pruning: pruning)
    }

    /// Checkpoints the WAL four times a second and prunes old records, until graceful shutdown or cancellation.
    public func run() async {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await checkpointer.run()
            } onGracefulShutdown: {
                self.checkpointer.stop()
            }
        } onCancel: {
            self.checkpointer.stop()
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: hop records") { db in
            try db.execute(
                sql: """
                    CREATE TABLE hop_record (
                        slip_id TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        step TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        outcome TEXT NOT NULL,
                        outgoing BLOB NOT NULL,
                        forwarded INTEGER NOT NULL DEFAULT 0,
                        recorded_at REAL NOT NULL,
                        PRIMARY KEY (slip_id, sequence)
                    ) WITHOUT ROWID
                    """)
        }
        migrator.registerMigration("v2: redeliveries") { db in
            try db.execute(
                sql: """
                    CREATE TABLE redelivery (
                        slip_id TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        attempt INTEGER NOT NULL,
                        count INTEGER NOT NULL,
                        PRIMARY KEY (slip_id, sequence, attempt)
                    ) WITHOUT ROWID
                    """)
        }
        migrator.registerMigration("v3: pruning by age") { db in
            try db.execute(sql: "CREATE INDEX hop_record_by_age ON hop_record (recorded_at)")
            try db.execute(sql: "ALTER TABLE redelivery ADD COLUMN noted_at REAL NOT NULL DEFAULT 0")
        }
        // A record (about 1.5 KB: the forwarded slip and its event) is too big for a WITHOUT ROWID table, whose rows
        // keep at most about 1 KB in the B-tree page: every record spilled into an overflow page of its own, 4 KB
        // written for it and three quarters of it empty, and its leaf page sat at a random place in the key order. In
        // an ordinary table the row stays in its page, rows are appended in the order hops are recorded (the commits
        // of a batch touch the same few pages), and the key is a small index beside it.
        migrator.registerMigration("v4: hop records in a rowid table") { db in
            try db.execute(
                sql: """
                    CREATE TABLE hop_record_rowid (
                        slip_id TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        step TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        outcome TEXT NOT NULL,
                        outgoing BLOB NOT NULL,
                        forwarded INTEGER NOT NULL DEFAULT 0,
                        recorded_at REAL NOT NULL,
                        PRIMARY KEY (slip_id, sequence)
                    );
                    INSERT INTO hop_record_rowid (slip_id, sequence, step, kind, outcome, outgoing, forwarded, recorded_at)
                        SELECT slip_id, sequence, step, kind, outcome, outgoing, forwarded, recorded_at
                        FROM hop_record ORDER BY recorded_at;
                    DROP TABLE hop_record;
                    ALTER TABLE hop_record_rowid RENAME TO hop_record;
                    CREATE INDEX hop_record_by_age ON hop_record (recorded_at);
                    """)
        }
        // One row per hop in flight, while its handler runs: processors sharing the file see each other's claims.
        migrator.registerMigration("v5: hop claims") { db in
            try db.execute(
                sql: """
                    CREATE TABLE hop_claim (
                        slip_id TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        owner TEXT NOT NULL,
                        until REAL NOT NULL,
                        PRIMARY KEY (slip_id, sequence)
                    ) WITHOUT ROWID
                    """)
        }
        return migrator
    }

    /// Deletes the records (and redelivery counts) older than `cutoff`, a chunk per transaction so that hops never wait
    /// long for the file; returns how many records went.
    @discardableResult
    public func prune(recordedBefore cutoff: Date) throws -> Int {
        try Self.prune(pool, before: cutoff)
    }

    static func prune(_ writer: some DatabaseWriter, before cutoff: Date) throws -> Int {
        let time = cutoff.timeIntervalSince1970
        try writer.write { db in
            try db.execute(sql: "DELETE FROM redelivery WHERE noted_at < ?", arguments: [time])
            // Claims released or saved are gone already; these are the ones whose holder died and nobody took over.
            try db.execute(sql: "DELETE FROM hop_claim WHERE until < ?", arguments: [time])
        }
        var total = 0
        while true {
            let deleted = try writer.write { db in
                try db.execute(
                    sql: """
                        DELETE FROM hop_record WHERE (slip_id, sequence) IN
                            (SELECT slip_id, sequence FROM hop_record WHERE recorded_at < ? ORDER BY recorded_at LIMIT 500)
                        """,
                    arguments: [time])
                return db.changesCount
            }
            total += deleted
            if deleted < 500 { return total }
        }
    }

    public func noteRedelivery(slipID: String, sequence: Int, attempt: Int) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO redelivery (slip_id, sequence, attempt, count, noted_at) VALUES (?, ?, ?, 1, ?)
                    ON CONFLICT (slip_id, sequence, attempt) DO UPDATE SET count = count + 1, noted_at = excluded.noted_at
                    """,
                arguments: [slipID, sequence, attempt, Date().timeIntervalSince1970])
            return try Int.fetchOne(
                db, sql: "SELECT count FROM redelivery WHERE slip_id = ? AND sequence = ? AND attempt = ?",
                arguments: [slipID, sequence, attempt]) ?? 1
        }
    }

    /// A synchronous read on the calling thread, tens of microseconds of work: cheaper than the two thread switches of
    /// an asynchronous read.
    public func record(slipID: String, sequence: Int) async throws -> HopRecord? {
        try recordNow(slipID: slipID, sequence: sequence)
    }

    private func recordNow(slipID: String, sequence: Int) throws -> HopRecord? {
        // On the writer's connection, whose page cache outlives its own commits. A reader connection's cache is dropped
        // whenever another connection has committed, which here is every few milliseconds, so each lookup read its
        // B-tree pages from the file again: four `pread`s a hop instead of one (docs/performance.md). It waits for a
        // batch commit in progress, which takes about as long as those reads did.
        // One statement reads one row, atomically on its own: no BEGIN/COMMIT around it.
        try pool.writeWithoutTransaction { db in
            let statement = try db.cachedStatement(sql: "SELECT * FROM hop_record WHERE slip_id = ? AND sequence = ?")
            return try Row.fetchOne(statement, arguments: [slipID, sequence]).map(Self.decode)
        }
    }

    @discardableResult
    public func save(_ record: HopRecord) async throws -> HopRecord {
        try await writer.save(record)
    }

    /// Not awaited to disk, unless no batch is being written (the mark then starts one): it goes with the next batch of
    /// writes. Lost in a crash, it costs only a harmless second forward of the hop's result (which the next step
    /// recognises).
    public func markForwarded(slipID: String, sequence: Int) async throws {
        await writer.markForwarded(slipID: slipID, sequence: sequence)
    }

    /// Runs `work` (an inbox step's handler, and the planning of its record) in the transaction that saves the record
    /// it returns, in a savepoint of its own within the group commit: the step's rows and the record commit together
    /// or not at all. When the hop is recorded already, `work` does not run. `work` runs on the writing hop's thread
    /// while the file's write lock is held: database work only, no waiting on other systems.
    public func transact(
        slipID: String, sequence: Int, _ work: @escaping @Sendable (Database) throws -> HopRecord?
    ) async throws -> HopTransactionResult {
        try await writer.transact(slipID: slipID, sequence: sequence, work)
    }

    /// Applies an inbox step's own migrations to this file (GRDB records them beside the hop record's, in
    /// `grdb_migrations`). Their names must not look like the hop record's (`v1: ...`), which a newer Slipway adds.
    public func migrate(_ migrator: DatabaseMigrator) throws {
        if let clash = migrator.migrations.first(where: Self.isOwnMigration) {
            throw StepMigrationNameError(name: clash)
        }
        try migrateSharedFile(migrator, pool, isOwn: { !Self.isOwnMigration($0) })
    }

    /// The hop record's own migrations (and the audit store's) are named `v<number>: ...`.
    public static func isOwnMigration(_ identifier: String) -> Bool {
        guard identifier.first == "v", let colon = identifier.firstIndex(of: ":") else { return false }
        let number = identifier[identifier.index(after: identifier.startIndex)..<colon]
        return !number.isEmpty && number.allSatisfy { $0.isASCII && $0.isNumber }
    }

    public func claim(slipID: String, sequence: Int, owner: String, lease: Duration) async throws -> HopClaimResult {
        let answer = try await writer.claim(
            .init(slipID: slipID, sequence: sequence, owner: owner, change: .claim(lease: lease.seconds)))
        guard case .claim(let result) = answer else { preconditionFailure("claim answered out of order") }
        return result
    }

    public func renewClaim(slipID: String, sequence: Int, owner: String, lease: Duration) async throws -> Bool {
        let answer = try await writer.claim(
            .init(slipID: slipID, sequence: sequence, owner: owner, change: .renew(lease: lease.seconds)))
        guard case .renewed(let held) = answer else { preconditionFailure("renewal answered out of order") }
        return held
    }

    public func releaseClaim(slipID: String, sequence: Int, owner: String) async throws {
        _ = try await writer.claim(.init(slipID: slipID, sequence: sequence, owner: owner, change: .release))
    }

    static func decode(_ row: Row) throws -> HopRecord {
        HopRecord(
            slipID: row["slip_id"], sequence: row["sequence"], step: row["step"],
            kind: HopKind(rawValue: row["kind"]) ?? .execute, outcome: HopRecordOutcome(rawValue: row["outcome"]),
            outgoing: try OutgoingMessageBlob.decode(row["outgoing"] as Data),
            forwarded: row["forwarded"], recordedAt: Date(timeIntervalSince1970: row["recorded_at"]))
    }
}



/// Opens a pool, retrying while another process is creating the same file: switching a new file to WAL mode answers
/// SQLITE_BUSY at once (without the busy handler) when two processes do it together.
public func openDatabasePool(path: String, configuration: Configuration, attempts: Int = 50) throws -> DatabasePool {
    var attempt = 1
    while true {
        do {
            return try DatabasePool(path: path, configuration: configuration)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && attempt < attempts {
            attempt += 1
            Thread.sleep(forTimeInterval: 0.05 * Double(attempt))
        }
    }
}

/// Migrates a file that other processes may be migrating at the same moment (instances sharing a state directory, the
/// example's shared ledger): the loser of that race fails (its tables exist already, or the file is busy) and is
/// retried, by which time the winner's commit shows the migration as applied.
///
/// A file a newer build migrated (it holds migrations this build does not know) is refused: this build cannot know
/// what the newer schema means, and writing to it could break what the newer build relies on.
/// `isOwn` tells this migrator's names from others' in the same file (an inbox step's): only an unknown name of its own
/// means a newer version migrated the file.
public func migrateSharedFile(
    _ migrator: DatabaseMigrator, _ pool: DatabasePool, attempts: Int = 10,
    isOwn: (String) -> Bool = SQLiteHopRecordStore.isOwnMigration
) throws {
    var attempt = 1
    while true {
        do {
            let unknown = try pool.read { db in
                try migrator.hasBeenSuperseded(db)
                    ? try Set(String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")).subtracting(migrator.migrations)
                        .filter(isOwn).sorted() : []
            }
            if !unknown.isEmpty { throw SchemaTooNewError(path: pool.path, unknownMigrations: unknown) }
            try migrator.migrate(pool)
            return
        } catch is DatabaseError where attempt < attempts {
            attempt += 1
            Thread.sleep(forTimeInterval: 0.05 * Double(attempt))
        }
    }
}

/// A database file migrated by a newer Slipway than this one.
public struct SchemaTooNewError: Error, CustomStringConvertible, Sendable {
    public let path: String
    /// The migrations the file records and this build does not know, by name.
    public let unknownMigrations: [String]

    public var description: String {
        "\(path) was migrated by a newer Slipway (it has \(unknownMigrations.map { "'\($0)'" }.joined(separator: ", ")), "
            + "which this build does not know): upgrade this program, or give it a file of its own [schema-too-new]"
    }
}

/// An inbox step's migration named like the hop record's own (`v<number>: ...`): a later Slipway could add a migration of
/// that name, and the file would then look migrated by a newer version.
public struct StepMigrationNameError: Error, CustomStringConvertible, Sendable {
    public let name: String
    public var description: String {
        "the step's migration '\(name)' is named like the hop record's own (v<number>: ...): name it after the step, e.g. 'reserve-stock 1: stock'"
    }
}
