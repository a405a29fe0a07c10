import Foundation
import Slipway
import SlipwayCore
import SlipwayTransport

/// What `slip outbox list|retry` needs of an outbox, whatever its database: `OutboxInspector` (a SQLite file), every
/// `OutboxStorage`.
public protocol OutboxInspecting: Sendable {
    /// Pending slips (and sent ones, with `includingSent`), oldest first.
    func entries(includingSent: Bool) async throws -> [OutboxEntry]
    /// Makes pending slips due now: `slipID`'s, or all of them when nil; the slip ids changed.
    func retry(slipID: String?, now: Date) async throws -> [String]
}

/// Where an outbox keeps its slips, as `OutboxRelay` uses it: `SlipOutbox` (SQLite through GRDB), `PostgresOutbox`
/// (SlipwayPostgres). It also says how its slips were encoded (topology, limits, signing), so that the relay declares
/// and publishes as `SlipSender` would.
public protocol OutboxStorage: OutboxInspecting {
    var topology: Topology { get }
    var codec: SlipCodec { get }
    var signing: SigningKeys? { get }
    /// Signalled when slips were enqueued and committed in this process: the relay wakes before its next poll.
    var wakeUp: WakeSignal { get }

    /// Takes the slips due by `now` (oldest first, at most `limit`), hands them to `publish`, and stores what it
    /// returns. A storage that several relays share keeps the batch claimed from the read to the store, so that no
    /// other relay publishes the same slips meanwhile (PostgreSQL: row locks, `FOR UPDATE SKIP LOCKED`). `publish` is
    /// not called when nothing is due. Returns how many slips were marked sent.
    func relayDue(
        now: Date, limit: Int, _ publish: @escaping @Sendable ([PendingSlip]) async -> OutboxBatchOutcome
    ) async throws -> Int

    /// Deletes the slips sent before `cutoff`; how many.
    func pruneSent(before cutoff: Date) async throws -> Int
}

/// A pending slip as the relay reads it: its message, ready to publish.
public struct PendingSlip: Sendable {
    public var slipID: String
    /// Failed attempts so far.
    public var attempts: Int
    public var message: OutgoingMessage

    public init(slipID: String, attempts: Int, message: OutgoingMessage) {
        self.slipID = slipID
        self.attempts = attempts
        self.message = message
    }

    /// From the columns an outbox stores (`OutboxColumns`).
    public init(
        slipID: String, attempts: Int, queue: String, body: [UInt8], headers: String, messageID: String?,
        correlationID: String?, contentType: String?
    ) {
        let decoded = (try? JSONDecoder().decode([String: String].self, from: Data(headers.utf8))) ?? [:]
        self.init(
            slipID: slipID, attempts: attempts,
            message: .toQueue(
                queue, body: body, headers: decoded, messageID: messageID, correlationID: correlationID,
                contentType: contentType))
    }
}

/// What became of a batch the relay published.
public enum OutboxBatchOutcome: Sendable {
    /// Confirmed by the broker: every slip of the batch is sent.
    case sent(at: Date)
    /// Not published (or not confirmed): each slip's attempt is counted, with the error and its next attempt's time.
    case failed(error: String, retries: [OutboxRetry])
}

public struct OutboxRetry: Sendable {
    public var slipID: String
    /// Failed attempts, this one included.
    public var attempts: Int
    public var nextAttemptAt: Date

    public init(slipID: String, attempts: Int, nextAttemptAt: Date) {
        self.slipID = slipID
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
    }
}

/// A slip as an outbox stores it: the message `SlipSender.send` would publish, in columns. Both outboxes' enqueues.
public struct OutboxColumns: Sendable {
    public var slipID: String
    public var template: String
    public var queue: String
    public var body: [UInt8]
    /// The message's headers as JSON, keys sorted.
    public var headers: String
    public var messageID: String?
    public var correlationID: String?
    public var contentType: String?

    /// Validates and encodes the slip; throws, like `send`, for an invalid or too large slip.
    public init(_ slip: Slip, topology: Topology, codec: SlipCodec, signing: SigningKeys?) throws {
        let message = try SlipSender.message(for: slip, topology: topology, codec: codec, signing: signing)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        slipID = slip.id
        template = slip.template
        queue = message.routingKey
        body = message.body
        headers = String(decoding: try encoder.encode(message.headers), as: UTF8.self)
        messageID = message.messageID
        correlationID = message.correlationID
        contentType = message.contentType
    }
}
