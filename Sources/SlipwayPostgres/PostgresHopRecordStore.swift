import Foundation
import Logging
import NIOCore
import PostgresNIO
import SlipwayCore
import SlipwayStores
import ServiceLifecycle
import SlipwayTransport
import Synchronization

/// The hop record in PostgreSQL, shared by every instance of a step on every host: a hop recorded by one instance is
/// recognised by all, and a claim keeps two instances from running one hop at the same time.
///
/// Rows are keyed by step, slip and sequence, so the steps of a deployment may share one database. Saves from
/// concurrent hops go to the database together, one statement for a batch (`PostgresRecordWriter`). A commit is durable
/// when it returns (PostgreSQL's `synchronous_commit`, on by default).
///
/// Records are kept for `keepFor` (7 days by default), then pruned by the store's `run()`: every instance prunes its
/// step's old rows, which is harmless to do twice.
///
/// The store runs as two services, `services`: postgres-nio's client (the connections), then the store itself, whose
/// `run()` prunes until graceful shutdown or cancellation. A processor runs them in its `ServiceGroup`
/// (`HopRecordStoreFactory.Opened.services`), which stops them in reverse order: at graceful shutdown the store writes
/// the saves, marks and claims queued, and only then does the client close the connections. Nothing reaches the
/// database before the client runs (a call waits for it); once the store has stopped every call fails with
/// `PostgresStoreError` code `stopped`.
///
/// Why not the client as a child task of the store's `run()`: graceful shutdown reaches every task under a service, and
/// the client closes its connections at once when it does (a forced shutdown, failing the queries in flight), before
/// the store could write what is queued.
public final class PostgresHopRecordStore: HopRecordStore, Service {
    public let step: String
    /// The URL with the password replaced, for logs.
    public let redactedURL: String
    let client: PostgresClient
    let logger: Logger
    private let writer: PostgresRecordWriter
    private let claimWriter: PostgresClaimWriter
    private let keepFor: Duration?
    private let pruneEvery: Duration
    private let phase = Mutex(Phase.new)

    private enum Phase: Comparable {
        case new, running, stopping, stopped
    }

    public static let defaultKeepFor = Duration.seconds(7 * 24 * 3600)

    /// Connects once to migrate the schema (refusing one newer than this build); the store's connections open when its
    /// `run()` starts.
    /// - Parameters:
    ///   - url: `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=...` (`PostgresStoreURL`).
    ///   - keepFor: how long a hop's record is kept; nil keeps every record for ever.
    ///   - pruneEvery: how often `run()` deletes the records past `keepFor`.
    ///   - maximumConnections: the pool's size; hops share few connections, since their saves are batched.
    public static func open(
        url: String, step: String, keepFor: Duration? = defaultKeepFor, pruneEvery: Duration = .seconds(60),
        maximumConnections: Int = 4, logger: Logger = Logger(label: "slipway.store")
    ) async throws -> PostgresHopRecordStore {
        let parsed = try PostgresStoreURL(url)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                configuration: try parsed.connectionConfiguration(), id: 1, logger: logger)
        } catch let error as PostgresStoreError {
            throw error
        } catch {
            throw PostgresStoreError(
                "database", "cannot connect to PostgreSQL at \(parsed.redacted): \(describe(error))")
        }
        do {
            try await PostgresSchema.migrate(connection, logger: logger)
            try? await connection.close()
        } catch let error as PostgresStoreError {
            try? await connection.close()
            throw error
        } catch {
            try? await connection.close()
            throw PostgresStoreError("database", "migrating the hop record schema failed: \(describe(error))")
        }
        var configuration = try parsed.clientConfiguration()
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(10)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return PostgresHopRecordStore(
            step: step, redactedURL: parsed.redacted, client: client, keepFor: keepFor, pruneEvery: pruneEvery,
            logger: logger)
    }

    private init(
        step: String, redactedURL: String, client: PostgresClient, keepFor: Duration?, pruneEvery: Duration,
        logger: Logger
    ) {
        self.step = step
        self.redactedURL = redactedURL
        self.client = client
        self.logger = logger
        self.keepFor = keepFor
        self.pruneEvery = pruneEvery
        writer = PostgresRecordWriter(client: client, step: step, logger: logger)
        claimWriter = PostgresClaimWriter(client: client, step: step, logger: logger)
    }

    /// What a `ServiceGroup` runs for the store, in this order: the client, then the store.
    public var services: [any Service] { [client, self] }

    /// Prunes until graceful shutdown or cancellation; then writes what was queued, refuses what comes after, and
    /// returns. Runs once: a store that has stopped stays stopped. The client (`services`) must be running.
    public func run() async {
        let first = phase.withLock { phase in
            defer { if phase == .new { phase = .running } }
            return phase == .new
        }
        precondition(first, "PostgresHopRecordStore.run() runs once")
        await withTaskGroup(of: Void.self) { group in
            if let keepFor { group.addTask { await self.prune(every: self.pruneEvery, keepFor: keepFor) } }
            try? await gracefulShutdown()
            phase.withLock { $0 = .stopping }
            await writer.close(stopped("saving a hop record"))
            await claimWriter.close(stopped("claiming a hop"))
            group.cancelAll()
        }
        phase.withLock { $0 = .stopped }
    }

    /// Throws once the store is stopping: what comes after its shutdown would otherwise wait or fail obscurely.
    private func ensureRunning(_ doing: String) throws {
        if phase.withLock({ $0 }) >= .stopping { throw stopped(doing) }
    }

    private func stopped(_ doing: String) -> PostgresStoreError {
        PostgresStoreError("stopped", "\(doing) in PostgreSQL (\(redactedURL)) failed: the hop record store has stopped")
    }

    // MARK: records

    public func record(slipID: String, sequence: Int) async throws -> HopRecord? {
        try await database("reading a hop record") {
            let rows = try await client.query(
                """
                SELECT slip_id, sequence, kind, outcome, outgoing, forwarded, recorded_at FROM hop_record
                WHERE step = \(step) AND slip_id = \(slipID) AND sequence = \(sequence)
                """, logger: logger)
            for try await row in rows { return try decode(row) }
            return nil
        }
    }

    @discardableResult
    public func save(_ record: HopRecord) async throws -> HopRecord {
        try ensureRunning("saving a hop record")
        return try await writer.save(record)
    }

    /// Not awaited to the database when a batch is being written: the mark goes with the next one (an idle store writes
    /// it at once). Lost in a crash, it costs only a harmless second forward of the hop's result.
    public func markForwarded(slipID: String, sequence: Int) async throws {
        try ensureRunning("marking a hop forwarded")
        try await writer.markForwarded(slipID: slipID, sequence: sequence)
    }

    /// Waits until every save and mark queued so far is written (tests, shutdown).
    public func flush() async {
        await writer.drain()
    }

    public func noteRedelivery(slipID: String, sequence: Int, attempt: Int) async throws -> Int {
        try await database("counting a redelivery") {
            let rows = try await client.query(
                """
                INSERT INTO hop_redelivery (step, slip_id, sequence, attempt, count, noted_at)
                VALUES (\(step), \(slipID), \(sequence), \(attempt), 1, \(Date().timeIntervalSince1970))
                ON CONFLICT (step, slip_id, sequence, attempt)
                DO UPDATE SET count = hop_redelivery.count + 1, noted_at = excluded.noted_at
                RETURNING count
                """, logger: logger)
            for try await count in rows.decode(Int.self) { return count }
            return 1
        }
    }

    // MARK: claims

    /// One call of `slipway_claim` (`PostgresSchema.claimFunction`), batched with the claims of concurrent hops: one
    /// round trip and one commit take the claim, or find the hop's record, or who holds it.
    public func claim(slipID: String, sequence: Int, owner: String, lease: Duration) async throws -> HopClaimResult {
        try ensureRunning("claiming a hop")
        return try await claimWriter.claim(.init(slipID: slipID, sequence: sequence, owner: owner, lease: lease))
    }

    public func renewClaim(slipID: String, sequence: Int, owner: String, lease: Duration) async throws -> Bool {
        try await database("renewing a claim") {
            try await client.query(
                """
                UPDATE hop_claim SET expires_at = clock_timestamp() + make_interval(secs => \(lease.seconds))
                WHERE step = \(step) AND slip_id = \(slipID) AND sequence = \(sequence) AND owner = \(owner)
                RETURNING 1
                """, logger: logger
            ).collect().count == 1
        }
    }

    public func releaseClaim(slipID: String, sequence: Int, owner: String) async throws {
        _ = try await database("releasing a claim") {
            try await client.query(
                """
                DELETE FROM hop_claim
                WHERE step = \(step) AND slip_id = \(slipID) AND sequence = \(sequence) AND owner = \(owner)
                """, logger: logger)
        }
    }

    // MARK: pruning

    /// Deletes this step's records and redelivery counts older than `cutoff`, and claims that ran out before it, a
    /// chunk per statement (rows another instance is deleting are skipped); returns how many records went.
    @discardableResult
    public func prune(recordedBefore cutoff: Date) async throws -> Int {
        try await database("pruning") { try await Self.prune(client, step: step, before: cutoff, logger: logger) }
    }

    private func prune(every interval: Duration, keepFor: Duration) async {
        while (try? await Task.sleep(for: interval)) != nil {
            do {
                _ = try await Self.prune(client, step: step, before: Date().addingTimeInterval(-keepFor.seconds), logger: logger)
            } catch where !Task.isCancelled {
                logger.warning("pruning the hop record failed", metadata: ["error": "\(describe(error))"])
            } catch {
                return
            }
        }
    }

    static func prune(_ client: PostgresClient, step: String, before cutoff: Date, logger: Logger) async throws -> Int {
        let time = cutoff.timeIntervalSince1970
        try await client.query(
            "DELETE FROM hop_redelivery WHERE step = \(step) AND noted_at < \(time)", logger: logger)
        try await client.query(
            "DELETE FROM hop_claim WHERE step = \(step) AND expires_at < \(cutoff)", logger: logger)
        var total = 0
        while true {
            let deleted = try await client.query(
                """
                DELETE FROM hop_record WHERE ctid IN (
                    SELECT ctid FROM hop_record WHERE step = \(step) AND recorded_at < \(time)
                    LIMIT 1000 FOR UPDATE SKIP LOCKED)
                RETURNING 1
                """, logger: logger
            ).collect().count
            total += deleted
            if deleted < 1000 { return total }
        }
    }

    // MARK: helpers

    func decode(_ row: PostgresRow) throws -> HopRecord {
        let (slipID, sequence, kind, outcome, outgoing, forwarded, recordedAt) = try row.decode(
            (String, Int, String, String, Data, Bool, Double).self)
        let messages: [OutgoingMessage]
        do {
            messages = try OutgoingMessageBlob.decode(outgoing)
        } catch {
            throw PostgresStoreError("corrupt-record", "the record of hop \(sequence) of slip \(slipID) cannot be read")
        }
        return HopRecord(
            slipID: slipID, sequence: sequence, step: step, kind: HopKind(rawValue: kind) ?? .execute, outcome: HopRecordOutcome(rawValue: outcome),
            outgoing: messages, forwarded: forwarded, recordedAt: Date(timeIntervalSince1970: recordedAt))
    }

    /// Runs `body`, turning postgres-nio's errors (whose text is deliberately vague) into ones that say what failed.
    func database<T>(_ doing: String, _ body: () async throws -> T) async throws -> T {
        try ensureRunning(doing)
        do {
            return try await body()
        } catch let error as PostgresStoreError {
            throw error
        } catch {
            throw PostgresStoreError("database", "\(doing) in PostgreSQL failed: \(describe(error))")
        }
    }
}

/// What went wrong, from the server's message or the client's error code; never the connection's password.
func describe(_ error: any Error) -> String {
    guard let error = error as? PSQLError else { return "\(error)" }
    if let info = error.serverInfo, let message = info[.message] {
        return "\(message) (SQLSTATE \(info[.sqlState] ?? "?"))"
    }
    if let underlying = error.underlying { return "\(error.code): \(underlying)" }
    return "\(error.code)"
}
