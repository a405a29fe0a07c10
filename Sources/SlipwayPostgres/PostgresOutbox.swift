import Foundation
import Logging
import PostgresNIO
import Slipway
import SlipwayCore
import SlipwayOutbox

/// A producer's outbox in its own PostgreSQL database: the app writes its business row and the slip in one transaction
/// of its own (the connection it ran `BEGIN` on), and an `OutboxRelay` publishes the slip once that transaction has
/// committed. A rolled-back transaction leaves no slip; a committed one is published even if the process dies right
/// after the commit (a relay, of this process's next start or of another process, publishes it).
///
/// ```swift
/// let outbox = PostgresOutbox(client: client, topology: topology)   // the app's PostgresClient, which it runs
/// try await outbox.migrate()                                         // once at start: the table slipway_outbox
/// try await client.withConnection { connection in
///     try await connection.query("BEGIN", logger: logger)
///     try await connection.query("INSERT INTO orders (id) VALUES (\(orderID))", logger: logger)
///     try await outbox.enqueue(slip, in: connection)
///     try await connection.query("COMMIT", logger: logger)
/// }
/// outbox.notify()   // wakes this process's relay now, rather than at its next poll
/// ```
///
/// Several relays may share the database (one per instance of the app): each claims its batch with row locks taken by
/// `SELECT ... FOR UPDATE SKIP LOCKED` and held while it publishes, so no two relays publish one pending slip at the
/// same time (`PostgresOutboxStorage.swift`).
public final class PostgresOutbox: OutboxStorage {
    /// The connections of the relay and of `slip outbox`-like reads; the app's enqueues use the app's own connection.
    public let client: PostgresClient
    public let topology: Topology
    public let codec: SlipCodec
    /// Signs every slip enqueued, when signing is on (the signature is stored with the slip).
    public let signing: SigningKeys?
    public let wakeUp = WakeSignal()
    let logger: Logger

    /// On a client the app runs (`client.run()`, or in its `ServiceGroup`). Call `migrate()` before the first enqueue.
    public init(
        client: PostgresClient, topology: Topology = Topology(), limits: SlipLimits = SlipLimits(),
        signing: SigningKeys? = nil, logger: Logger = Logger(label: "slipway.outbox")
    ) {
        self.client = client
        self.topology = topology
        self.codec = SlipCodec(limits: limits)
        self.signing = signing
        self.logger = logger
    }

    /// A client for `url`, written as the processors' `--store` (`postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=...`,
    /// `PostgresStoreURL`). The caller runs it.
    public static func client(url: String, maximumConnections: Int = 4, logger: Logger) throws -> PostgresClient {
        var configuration = try PostgresStoreURL(url).clientConfiguration()
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(10)
        return PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    /// Creates the outbox's table if it is not there (`PostgresOutboxSchema`). The client must be running.
    public func migrate() async throws {
        let logger = self.logger
        try await outboxDatabase("migrating the outbox's table") {
            try await client.withConnection { connection in
                try await PostgresOutboxSchema.migrate(connection, logger: logger)
            }
        }
    }

    /// Stores the slip, validated and encoded as `SlipSender.send` would publish it, in the transaction the caller has
    /// begun on `connection`: it is relayed only if that transaction commits. A slip id already in the outbox (pending
    /// or sent) is left as it is: enqueueing the same slip twice sends it once. Throws, like `send`, for an invalid or
    /// too large slip (the caller then rolls its transaction back). Call `notify()` after the commit to wake this
    /// process's relay at once.
    public func enqueue(_ slip: Slip, in connection: PostgresConnection, at now: Date = Date()) async throws {
        let columns = try OutboxColumns(slip, topology: topology, codec: codec, signing: signing)
        try await connection.query(
            """
            INSERT INTO slipway_outbox (slip_id, template, queue, body, headers, message_id, correlation_id,
                content_type, created_at, next_attempt_at)
            VALUES (\(columns.slipID), \(columns.template), \(columns.queue), \(ByteBuffer(bytes: columns.body)),
                \(columns.headers), \(columns.messageID), \(columns.correlationID), \(columns.contentType), \(now), \(now))
            ON CONFLICT (slip_id) DO NOTHING
            """, logger: logger)
    }

    /// Wakes this process's relay now. An enqueue cannot: the commit is the app's.
    public func notify() { wakeUp.signal() }

    /// Runs `body`, turning postgres-nio's errors (whose text is deliberately vague) into ones that say what failed.
    func outboxDatabase<T>(_ doing: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresStoreError {
            throw error
        } catch let error as PostgresTransactionError {
            let cause = error.closureError ?? error.commitError ?? error.beginError ?? error.rollbackError
            throw PostgresStoreError("database", "\(doing) in PostgreSQL failed: \(cause.map(describe) ?? "\(error)")")
        } catch {
            throw PostgresStoreError("database", "\(doing) in PostgreSQL failed: \(describe(error))")
        }
    }
}
