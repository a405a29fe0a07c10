import Foundation
import Logging
import SlipwayTransport

/// `MessageTransport` over RabbitMQ through librabbitmq: one connection publishes (with confirms, pipelined), and each
/// consumer has a connection of its own, so waiting for deliveries never delays a publish.
///
/// The connections run on a thread each, or all on one `AMQPLoop` that also runs the tasks preferring it
/// (`taskExecutor`): a processor's hops, so that a hop never changes threads (docs/performance.md).
public final class AMQPTransport: MessageTransport {
    public let configuration: AMQPConfiguration
    private let logger: Logger
    private let nodes: AMQPNodeRotation
    private let publisher: AMQPPublisher
    private let consumers = Consumers()
    private let loop: AMQPLoop?

    /// - Parameter loop: one thread for every connection of this transport, and for the tasks that prefer it; nil
    ///   for a thread per connection.
    public init(configuration: AMQPConfiguration, logger: Logger = Logger(label: "slipway.amqp"), loop: AMQPLoop? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.loop = loop
        configuration.warnIfUnverified(logger)
        nodes = AMQPNodeRotation(configuration)
        self.publisher = AMQPPublisher(nodes: nodes, logger: logger, loop: loop)
    }

    public var taskExecutor: (any TaskExecutor)? { loop }

    public func declareQueue(_ name: String) async throws {
        _ = try await publisher.withConnection("declaring queue '\(name)'") { try $0.declareQueue(name) }
    }

    public func declareQueue(_ name: String, arguments: QueueArguments) async throws {
        _ = try await publisher.withConnection("declaring queue '\(name)'") {
            try $0.declareQueue(name, arguments: arguments)
        }
    }

    public func declareTopicExchange(_ name: String) async throws {
        try await publisher.withConnection("declaring exchange '\(name)'") { try $0.declareTopicExchange(name) }
    }

    public func bindQueue(_ queue: String, exchange: String, bindingKey: String) async throws {
        try await publisher.withConnection("binding '\(queue)' to '\(exchange)'") {
            try $0.bindQueue(queue, exchange: exchange, bindingKey: bindingKey)
        }
    }

    public func publish(_ messages: [OutgoingMessage]) async throws {
        try await publisher.publish(messages)
    }

    public func waitWhilePublishingBlocked() async {
        await publisher.waitWhileBlocked()
    }

    public func consume(queue: String, prefetch: Int) async throws -> DeliveryStream {
        try await start(AMQPConsumer(nodes: nodes, source: .queue(queue), prefetch: prefetch, logger: logger, loop: loop))
    }

    public func subscribe(exchange: String, bindingKeys: [String]) async throws -> DeliveryStream {
        try await start(
            AMQPConsumer(
                nodes: nodes, source: .subscription(exchange: exchange, bindingKeys: bindingKeys),
                prefetch: 100, logger: logger, loop: loop))
    }

    private func start(_ consumer: AMQPConsumer) async throws -> DeliveryStream {
        try await consumer.start()
        await consumers.add(consumer)
        return DeliveryStream(stream: consumer.stream, onStop: { consumer.stop() })
    }

    public func shutdown() async {
        for consumer in await consumers.all { consumer.close() }
        await publisher.shutdown()
    }

    private actor Consumers {
        var all: [AMQPConsumer] = []
        func add(_ consumer: AMQPConsumer) { all.append(consumer) }
    }
}
