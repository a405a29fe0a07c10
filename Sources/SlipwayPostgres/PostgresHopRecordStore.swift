import Foundation
import Logging
import NIOCore
import PostgresNIO
import SlipwayCore
import SlipwayStores
import SlipwayTransport

/// The hop record in PostgreSQL, shared by every instance of a step on every host: a hop recorded by one instance is
/// recognised by all, and a claim keeps two instances from running one hop at the same time.
///
/// Rows are keyed by step, slip and sequence, so the steps of a deployment may share one database. Saves from
/// concurrent hops go to the database together, one statement for a batch (`PostgresRecordWriter`). A commit is durable
/// when it returns (PostgreSQL's `synchronous_commit`, on by default).
///
/// Records are kept for `keepFor` (7 days by default), then pruned by a task of the store: every instance prunes its
/// step's old rows, which is harmless to do twice.
public final class PostgresHopRecordStore: HopRecordStore {
    public let step: String
    /// The URL with the password replaced, for logs.
    public let redactedURL: String
    let client: PostgresClient
    let logger: Logger
    private let writer: PostgresRecordWriter
    private let claimWriter: PostgresClaimWriter
    private let runTask: Task<Void, Never>
    private let pruneTask: Task<Void, Never>?

    public static let defaultKeepFor = Duration.seconds(7 * 24 * 3600)

    /// Connects, migrates the schema (refusing one newer than this build), and starts pruning.
    /// - Parameters:
    ///   - url: `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=...` (`PostgresStoreURL`).
    ///   - keepFor: how long a hop's record is kept; nil keeps every record for ever.
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
        runTask = Task { await client.run() }
        writer = PostgresRecordWriter(client: client, step: step, logger: logger)
        claimWriter = PostgresClaimWriter(client: client, step: step, logger: logger)
        pruneTask = keepFor.map { keepFor in
            Task { [weak client] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: pruneEvery)
                    guard let client, !Task.isCancelled else { return }
                    let cutoff = Date().addingTimeInterval(-keepFor.seconds)
                    do {
                        _ = try await Self.prune(client, step: step, before: cutoff, logger: logger)
                    } catch {
                        logger.warning("pruning the hop record failed", metadata: ["error": "\(describe(error))"])
                    }
                }
            }
        }
    }

    deinit {
        pruneTask?.cancel()
        runTask.cancel()
    }

    /// Closes the connections. The store is unusable after.
    public func close() async {
        pruneTask?.cancel()
        runTask.cancel()
        await runTask.value
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
        try await writer.save(record)
    }

    /// Not awaited to the database: the mark goes with the next batch. Lost in a crash, it costs only a harmless second
    /// forward of the hop's result.
    public func markForwarded(slipID: String, sequence: Int) async throws {
        writer.markForwarded(slipID: slipID, sequence: sequence)
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
        try await claimWriter.claim(.init(slipID: slipID, sequence: sequence, owner: owner, lease: lease))
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
        try await database("releasing a claim") {
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
