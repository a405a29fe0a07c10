import Foundation
import GRDB
import Slipway
import SlipwayCore
import SlipwayTransport

/// A producer's outbox in its own SQLite database: the app writes its business row and the slip in one transaction,
/// and an `OutboxRelay` publishes the slip once the transaction has committed. A rolled-back transaction leaves no
/// slip; a committed one is published even if the process dies right after the commit (the relay of the next start
/// publishes it).
///
/// ```swift
/// let outbox = try SlipOutbox(database: dbPool, topology: topology)
/// try dbPool.write { db in
///     try db.execute(sql: "INSERT INTO orders (id) VALUES (?)", arguments: [orderID])
///     try outbox.enqueue(slip, in: db)
/// }
/// ```
public final class SlipOutbox: Sendable {
    public let database: any DatabaseWriter
    public let topology: Topology
    public let codec: SlipCodec
    /// Signs every slip enqueued, when signing is on (the signature is stored with the slip).
    public let signing: SigningKeys?
    public let wakeUp = WakeSignal()

    /// Creates the outbox's table in `database` if it is not there (migration `slipway-outbox 1: ...`).
    public init(
        database: any DatabaseWriter, topology: Topology = Topology(), limits: SlipLimits = SlipLimits(),
        signing: SigningKeys? = nil
    ) throws {
        self.database = database
        self.topology = topology
        self.codec = SlipCodec(limits: limits)
        self.signing = signing
        try OutboxSchema.migrate(database)
    }

    /// Stores the slip, validated and encoded as `SlipSender.send` would publish it, in the caller's transaction:
    /// it is relayed only if that transaction commits. A slip id already in the outbox (pending or sent) is left as
    /// it is: enqueueing the same slip twice sends it once. Throws, like `send`, for an invalid or too large slip.
    /// When the transaction commits, this process's relay wakes at once.
    public func enqueue(_ slip: Slip, in db: Database, at now: Date = Date()) throws {
        let columns = try OutboxColumns(slip, topology: topology, codec: codec, signing: signing)
        let millis = outboxMillis(now)
        try db.execute(
            sql: """
                INSERT INTO slipway_outbox (slip_id, template, queue, body, headers, message_id, correlation_id,
                    content_type, created_at, next_attempt_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (slip_id) DO NOTHING
                """,
            arguments: [
                columns.slipID, columns.template, columns.queue, Data(columns.body), columns.headers,
                columns.messageID, columns.correlationID, columns.contentType, millis, millis,
            ])
        let wakeUp = self.wakeUp
        db.afterNextTransaction { _ in wakeUp.signal() }
    }

    /// Enqueues each slip, in one transaction of its own: for slips with no business row to go with them.
    public func enqueue(_ slips: [Slip]) throws {
        try database.write { db in
            for slip in slips { try enqueue(slip, in: db) }
        }
    }

    /// Wakes this process's relay now (an enqueue does when its transaction commits).
    public func notify() { wakeUp.signal() }
}
