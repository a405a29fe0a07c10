import Foundation
import SlipwayTesting
import SlipwayTransport
import Synchronization

/// An in-memory transport whose first `failures` publishes fail as a broker that is down would, then work.
final class FlakyTransport: MessageTransport {
    let inner: InMemoryTransport
    private let failuresLeft: Mutex<Int>
    private let publishCalls = Mutex(0)

    init(broker: InMemoryBroker, failures: Int) {
        inner = InMemoryTransport(broker: broker)
        failuresLeft = Mutex(failures)
    }

    /// Publishes tried, failed ones included.
    var publishAttempts: Int { publishCalls.withLock { $0 } }

    func publish(_ messages: [OutgoingMessage]) async throws {
        publishCalls.withLock { $0 += 1 }
        let fail = failuresLeft.withLock { left in
            defer { left = max(left - 1, 0) }
            return left > 0
        }
        if fail { throw TransportError(.unreachable, "broker down (test)") }
        try await inner.publish(messages)
    }

    func declareQueue(_ name: String) async throws { try await inner.declareQueue(name) }
    func declareQueue(_ name: String, arguments: QueueArguments) async throws {
        try await inner.declareQueue(name, arguments: arguments)
    }
    func declareTopicExchange(_ name: String) async throws { try await inner.declareTopicExchange(name) }
    func bindQueue(_ queue: String, exchange: String, bindingKey: String) async throws {
        try await inner.bindQueue(queue, exchange: exchange, bindingKey: bindingKey)
    }
    func consume(queue: String, prefetch: Int) async throws -> DeliveryStream {
        try await inner.consume(queue: queue, prefetch: prefetch)
    }
    func subscribe(exchange: String, bindingKeys: [String]) async throws -> DeliveryStream {
        try await inner.subscribe(exchange: exchange, bindingKeys: bindingKeys)
    }
    func shutdown() async { await inner.shutdown() }
}
