import Foundation
import SlipwayTransport
import Synchronization

/// A message as the broker holds it in a queue: what was published, and whether the broker delivered it before.
public struct BrokerMessage: Sendable, Hashable {
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    public var headers: [String: String]
    public var messageID: String?
    public var correlationID: String?
    public var contentType: String?
    /// Set once the message went back to the queue after a delivery (a release or a dropped connection).
    public var redelivered: Bool

    init(_ message: OutgoingMessage) {
        exchange = message.exchange
        routingKey = message.routingKey
        body = message.body
        headers = message.headers
        messageID = message.messageID
        correlationID = message.correlationID
        contentType = message.contentType
        redelivered = false
    }
}

/// AMQP topic matching, as the broker routes through topic exchanges.
extension InMemoryBroker {
    static func words(_ key: String) -> [Substring] {
        key.split(separator: ".", omittingEmptySubsequences: false)
    }

    /// AMQP topic matching: `*` matches exactly one word, `#` zero or more.
    static func matches(_ pattern: ArraySlice<Substring>, _ words: ArraySlice<Substring>) -> Bool {
        guard let first = pattern.first else { return words.isEmpty }
        if first == "#" {
            let rest = pattern.dropFirst()
            if rest.isEmpty { return true }
            var remaining = words
            while true {
                if matches(rest, remaining) { return true }
                if remaining.isEmpty { return false }
                remaining = remaining.dropFirst()
            }
        }
        guard let word = words.first, first == "*" || first == word else { return false }
        return matches(pattern.dropFirst(), words.dropFirst())
    }

    /// Whether a routing key matches a binding key (for tests of the matching itself).
    public static func topic(_ routingKey: String, matches bindingKey: String) -> Bool {
        matches(words(bindingKey)[...], words(routingKey)[...])
    }
}

/// Shared between a consumer's `DeliveryStream.stop()` (called from anywhere, synchronously) and the broker.
final class ConsumerHandle: Sendable {
    private let stop = Atomic<Bool>(false)
    var stopRequested: Bool { stop.load(ordering: .acquiring) }
    func requestStop() { stop.store(true, ordering: .releasing) }
}

struct Acknowledger: DeliveryAcknowledger {
    let broker: InMemoryBroker
    let connection: UUID
    func ack(_ tag: UInt64) async { await broker.settle(tag: tag, ack: true, connection: connection) }
    func release(_ tag: UInt64) async { await broker.settle(tag: tag, ack: false, connection: connection) }
}
