import Foundation
import GRDB
import SlipwayStores
import SlipwayCore

/// The audit trail in a SQLite file: one row per event (hops, parked messages, terminal events), one row per slip with
/// its current state, and the aggregates `stats` reads. See `docs/audit.md`.
///
/// One process writes (the sink, through `record`); any number of processes query at the same time (WAL mode: a
/// query reads a consistent snapshot and never waits for the writer).
public final class AuditStore: Sendable {
    /// The environment variable that names the database when `--db` is not given.
    public static let environmentVariable = "SLIPWAY_AUDIT_DB"
    /// The database when neither `--db` nor `$SLIPWAY_AUDIT_DB` names one, relative to the working directory.
    public static let defaultRelativePath = ".slipway/audit.sqlite"
    /// The slip id of a parked message that was not a readable slip: such events get a hop row but no slip row.
    public static let unknownSlipID = "unknown"

    /// `explicit` if given, else `$SLIPWAY_AUDIT_DB`, else `.slipway/audit.sqlite`.
    public static func defaultPath(
        explicit: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let path = environment[environmentVariable], !path.isEmpty { return path }
        return defaultRelativePath
    }

    public let path: String
    public let isReadOnly: Bool
    let pool: DatabasePool

    private init(path: String, pool: DatabasePool, isReadOnly: Bool) {
        self.path = path
        self.pool = pool
        self.isReadOnly = isReadOnly
    }

    /// Opens the database for writing: creates the file (and its directory) if needed and migrates the schema.
    /// Refuses a file that is not an audit database (`foreignDatabase`) or was written by a newer Slipway.
    public convenience init(path: String) throws {
        do {
            let url = URL(fileURLWithPath: path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            // Check a file that is there before touching it: opening a pool would switch a foreign file to WAL.
            if Self.fileSize(path) ?? 0 > 0 {
                var configuration = Configuration()
                configuration.readonly = true
                configuration.busyMode = .timeout(10)
                let queue = try DatabaseQueue(path: path, configuration: configuration)
                try queue.read { db in
                    let tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
                    if tables > 0, try !db.tableExists(AuditSchema.markerTable) {
                        throw AuditError(.foreignDatabase, "\(path) is not a Slipway audit database")
                    }
                }
                try queue.close()
            }
            let pool = try openDatabasePool(path: path, configuration: Self.configuration(readonly: false))
            try Self.migrate(pool, path: path)
            self.init(path: path, pool: pool, isReadOnly: false)
        } catch {
            throw Self.auditError(error, path: path)
        }
    }

    /// Opens an existing database for queries, read-only. Refuses a missing file (`missingDatabase`), a file that is
    /// not an audit database (`foreignDatabase`) and a schema this build does not read (`newerDatabase`,
    /// `outdatedDatabase`).
    public static func openForReading(path: String) throws -> AuditStore {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw AuditError(.missingDatabase, "no audit database at \(path): start `slip audit-sink` or pass --db")
        }
        guard !isDirectory.boolValue else {
            throw AuditError(.foreignDatabase, "\(path) is a directory, not a Slipway audit database")
        }
        do {
            let pool = try DatabasePool(path: path, configuration: configuration(readonly: true))
            try pool.read { db in
                guard try db.tableExists(AuditSchema.markerTable) else {
                    throw AuditError(.foreignDatabase, "\(path) is not a Slipway audit database")
                }
                let migrator = AuditSchema.migrator
                if try migrator.hasBeenSuperseded(db) {
                    throw AuditError(
                        .newerDatabase, "\(path) was written by a newer Slipway: its audit schema is unknown to this one")
                }
                guard try migrator.hasCompletedMigrations(db) else {
                    throw AuditError(
                        .outdatedDatabase,
                        "\(path) has an older audit schema: run `slip audit-sink` once with this version to migrate it")
                }
            }
            return AuditStore(path: path, pool: pool, isReadOnly: true)
        } catch {
            throw auditError(error, path: path)
        }
    }

    static func configuration(readonly: Bool) -> Configuration {
        var configuration = Configuration()
        configuration.readonly = readonly
        configuration.busyMode = .timeout(10)
        configuration.maximumReaderCount = readonly ? 2 : 4
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA cache_size = -32768")  // 32 MiB of page cache per connection, at most
            if !db.configuration.readonly {
                try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
            }
        }
        return configuration
    }

    /// Migrates, tolerating another process that migrates the same new file at the same moment.
    static func migrate(_ pool: DatabasePool, path: String) throws {
        let migrator = AuditSchema.migrator
        try pool.read { db in
            if try migrator.hasBeenSuperseded(db) {
                throw AuditError(
                    .newerDatabase, "\(path) was written by a newer Slipway: its audit schema is unknown to this one")
            }
        }
        try migrateSharedFile(migrator, pool)
    }

    static func fileSize(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue
    }

    /// Every error the store throws is an `AuditError` with a one-line message.
    static func auditError(_ error: any Error, path: String) -> AuditError {
        if let error = error as? AuditError { return error }
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_NOTADB:
                return AuditError(.foreignDatabase, "\(path) is not a Slipway audit database")
            case .SQLITE_CANTOPEN:
                return AuditError(.databaseError, "cannot open \(path): \(error.message ?? "unable to open database file")")
            default:
                let message = (error.message ?? "\(error.resultCode)").replacingOccurrences(of: "\n", with: " ")
                return AuditError(.databaseError, "\(path): \(message)")
            }
        }
        return AuditError(.databaseError, "\(path): \(String(describing: error).replacingOccurrences(of: "\n", with: " "))")
    }

    /// Runs `PRAGMA optimize` (refreshes the query planner's statistics where they are stale). Cheap; a long-running
    /// writer may call it now and then.
    public func optimize() throws {
        do { try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA optimize") } } catch {
            throw Self.auditError(error, path: path)
        }
    }

    // MARK: - Recording

    /// Records a batch of events in one transaction and returns how many were new. An event whose `id` is already
    /// stored (a redelivery, or a duplicate within the batch) adds nothing. Events may come in any order.
    @discardableResult
    public func record(_ events: [SlipEvent]) throws -> Int {
        guard !isReadOnly else { throw AuditError(.readOnly, "\(path) is open for reading only") }
        guard !events.isEmpty else { return 0 }
        do {
            return try pool.write { db in try AuditWriter.write(events, to: db) }
        } catch {
            throw Self.auditError(error, path: path)
        }
    }

    /// Records a batch of events in one transaction and returns how many were new (see the synchronous variant).
    @discardableResult
    public func record(_ events: [SlipEvent]) async throws -> Int {
        guard !isReadOnly else { throw AuditError(.readOnly, "\(path) is open for reading only") }
        guard !events.isEmpty else { return 0 }
        do {
            return try await pool.write { db in try AuditWriter.write(events, to: db) }
        } catch {
            throw Self.auditError(error, path: path)
        }
    }
}

/// Hop order within a slip: sequence, then attempt, then the kind's rank. A parked event carries the sequence of the
/// hop it refused, so it ranks before that hop's execute or compensate; a terminal event carries the last hop's
/// sequence and attempt, so it ranks after it.
public enum KindRank {
    public static func of(_ kind: SlipEvent.Kind) -> Int {
        switch kind {
        case .parked: 0
        case .execute: 1
        case .compensate: 2
        case .terminal: 3
        }
    }
}
