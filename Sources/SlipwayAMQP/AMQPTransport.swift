import Foundation
import Logging
import ServiceLifecycle
import SlipwayTransport
import Synchronization

/// `MessageTransport` over RabbitMQ through librabbitmq: one connection publishes (with confirms, pipelined), and each
/// consumer has a connection of its own, so waiting for deliveries never delays a publish.
///
/// The connections run on a thread each, or all on one `AMQPLoop` that also runs the tasks preferring it
/// (`taskExecutor`): a processor's hops, so that a hop never changes threads (docs/performance.md).
///
/// A `Service`: in a `ServiceGroup`, `run()` holds the transport open until the group shuts down gracefully (or is
/// cancelled), then closes it (`shutdown()`) and returns once its connections are closed and its threads have ended.
/// List it before the services that use it: a group shuts its services down in reverse order, so those finish their
/// publishes and acks before the connections close. Nothing starts before first use: a program that never runs the
/// service uses the transport as it is and calls `shutdown()` at the end.
public final class AMQPTransport: MessageTransport, Service {
    public let configuration: AMQPConfiguration
    private let logger: Logger
    private let nodes: AMQPNodeRotation
    private let loop: AMQPLoop?
    private let state = Mutex(State())

    private struct State {
        /// Made on first use: its connection (and, without a shared loop, its thread) starts then.
        var publisher: AMQPPublisher?
        var consumers: [AMQPConsumer] = []
        /// Without a shared loop, the loop of each connection: `shutdown()` waits for their threads to end.
        var ownLoops: [AMQPLoop] = []
        var isShutDown = false

        /// A loop for one connection, ending with it.
        mutating func ownLoop(_ name: String) -> AMQPLoop {
            let loop = AMQPLoop(name: name, endsWithLastSource: true)
            ownLoops.append(loop)
            return loop
        }
    }

    /// - Parameter loop: one thread for every connection of this transport, and for the tasks that prefer it; nil
    ///   for a thread per connection.
    public init(configuration: AMQPConfiguration, logger: Logger = Logger(label: "slipway.amqp"), loop: AMQPLoop? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.loop = loop
        configuration.warnIfUnverified(logger)
        nodes = AMQPNodeRotation(configuration)
    }

    public var taskExecutor: (any TaskExecutor)? { loop }

    public func declareQueue(_ name: String) async throws {
        _ = try await publisher().withConnection("declaring queue '\(name)'") { try $0.declareQueue(name) }
    }

    public func declareQueue(_ name: String, arguments: QueueArguments) async throws {
        _ = try await publisher().withConnection("declaring queue '\(name)'") {
            try $0.declareQueue(name, arguments: arguments)
        }
    }

    public func declareTopicExchange(_ name: String) async throws {
        try await publisher().withConnection("declaring exchange '\(name)'") { try $0.declareTopicExchange(name) }
    }

    public func bindQueue(_ queue: String, exchange: String, bindingKey: String) async throws {
        try await publisher().withConnection("binding '\(queue)' to '\(exchange)'") {
            try $0.bindQueue(queue, exchange: exchange, bindingKey: bindingKey)
        }
    }

    public func publish(_ messages: [OutgoingMessage]) async throws {
        try await publisher().publish(messages)
    }

    public func waitWhilePublishingBlocked() async {
        // No publisher yet: nothing published, so nothing the broker could block.
        await state.withLock { $0.publisher }?.waitWhileBlocked()
    }

    public func consume(queue: String, prefetch: Int) async throws -> DeliveryStream {
        try await start(.queue(queue), prefetch: prefetch)
    }

    public func subscribe(exchange: String, bindingKeys: [String]) async throws -> DeliveryStream {
        try await start(.subscription(exchange: exchange, bindingKeys: bindingKeys), prefetch: 100)
    }

    /// Holds the transport open until a graceful shutdown (or cancellation), then closes it: returns once its
    /// connections are closed and its threads have ended. Starts the shared loop's thread, if the transport has one.
    public func run() async throws {
        loop?.start()
        // Cancelled rather than shut down gracefully: close all the same, and return.
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Refuses new work, waits for the publishes asked for (up to their deadline), closes every connection, and
    /// returns once the transport's threads have ended (the shared loop's too: work that comes later starts it again).
    public func shutdown() async {
        let (publisher, consumers, ownLoops) = state.withLock { state in
            state.isShutDown = true
            return (state.publisher, state.consumers, state.ownLoops)
        }
        for consumer in consumers { consumer.close() }
        await publisher?.shutdown()
        for loop in ownLoops + (loop.map { [$0] } ?? []) { await loop.stop() }
    }

    private func publisher() throws -> AMQPPublisher {
        try state.withLock { state in
            try Self.refuseIfShutDown(state)
            if let publisher = state.publisher { return publisher }
            let publisher = AMQPPublisher(nodes: nodes, logger: logger, loop: loop ?? state.ownLoop("amqp-publisher"))
            state.publisher = publisher
            return publisher
        }
    }

    private func start(_ source: AMQPConsumer.Source, prefetch: Int) async throws -> DeliveryStream {
        // Listed before it starts, so that a shutdown meanwhile closes it.
        let (consumer, ownLoop) = try state.withLock { state in
            try Self.refuseIfShutDown(state)
            let consumerLoop = loop ?? state.ownLoop("amqp-consumer")
            let consumer = AMQPConsumer(
                nodes: nodes, source: source, prefetch: prefetch, logger: logger, loop: consumerLoop)
            state.consumers.append(consumer)
            return (consumer, consumerLoop === loop ? nil : consumerLoop)
        }
        do {
            try await consumer.start()
        } catch {
            // Forgotten, with its loop (and the loop's eventfd): a processor tries again and again through an outage.
            state.withLock { state in
                state.consumers.removeAll { $0 === consumer }
                state.ownLoops.removeAll { $0 === ownLoop }
            }
            throw error
        }
        return DeliveryStream(stream: consumer.stream, onStop: { consumer.stop() })
    }

    private static func refuseIfShutDown(_ state: State) throws {
        guard !state.isShutDown else { throw TransportError(.shutDown, "the transport is shut down") }
    }
}
