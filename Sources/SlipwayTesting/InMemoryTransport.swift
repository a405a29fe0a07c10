import Foundation
import Slipway
import SlipwayTransport
import Synchronization

/// One simulated process's connection to an `InMemoryBroker`: a `MessageTransport` for processors and producers in
/// tests. Several transports may share one broker, as several processes share one RabbitMQ.
///
/// `crash()` simulates killing the process (see `InMemoryBroker.dropConnection(of:)`); `shutdown()` closes the
/// connection the same way, as closing an AMQP connection requeues what it left unacknowledged.
public final class InMemoryTransport: MessageTransport {
    public let broker: InMemoryBroker
    let connection = UUID()

    public init(broker: InMemoryBroker) {
        self.broker = broker
    }

    public func declareQueue(_ name: String) async throws {
        try await broker.checkOpen(connection)
        await broker.declareQueue(name)
    }

    public func declareQueue(_ name: String, arguments: QueueArguments) async throws {
        try await broker.checkOpen(connection)
        await broker.declareQueue(name, arguments: arguments)
    }

    public func declareTopicExchange(_ name: String) async throws {
        try await broker.checkOpen(connection)
        await broker.declareTopicExchange(name)
    }

    public func bindQueue(_ queue: String, exchange: String, bindingKey: String) async throws {
        try await broker.checkOpen(connection)
        try await broker.bind(queue: queue, exchange: exchange, bindingKey: bindingKey)
    }

    public func publish(_ messages: [OutgoingMessage]) async throws {
        await broker.waitWhileBlocked()
        try await broker.publish(messages, connection: connection)
    }

    public func waitWhilePublishingBlocked() async {
        await broker.waitWhileBlocked()
    }

    public func consume(queue: String, prefetch: Int) async throws -> DeliveryStream {
        try await broker.consume(queue: queue, prefetch: prefetch, connection: connection)
    }

    public func subscribe(exchange: String, bindingKeys: [String]) async throws -> DeliveryStream {
        try await broker.subscribe(exchange: exchange, bindingKeys: bindingKeys, connection: connection)
    }

    public func shutdown() async {
        await broker.closeConnection(connection)
    }

    /// Kills this "process"'s connection: its unacknowledged deliveries are redelivered to others, its streams end, and
    /// it can do nothing more. Handlers already running in this process keep running (a test cannot kill a task), but
    /// whatever they publish or acknowledge afterwards is refused or ignored.
    public func crash() async {
        await broker.dropConnection(of: self)
    }
}
