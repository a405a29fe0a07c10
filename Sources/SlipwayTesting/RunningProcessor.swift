import Logging
import ServiceLifecycle
import Slipway
import SlipwayStores
import SlipwayTransport

/// A processor running over an `InMemoryBroker` for a test, as `ProcessorMain` runs one over RabbitMQ: its
/// `ProcessorRuntime` in a `ServiceGroup` of its own (without signal handling), with a connection of its own (one
/// simulated process) and a hop record.
///
/// ```swift
/// let broker = InMemoryBroker()
/// let processor = RunningProcessor(ChargeCard(), broker: broker)
/// let sender = SlipSender(transport: InMemoryTransport(broker: broker))
/// let event = try await sender.sendAndWait(slip, timeout: .seconds(10))
/// try await processor.stop()
/// ```
///
/// `stop()` is the SIGTERM: a graceful shutdown that finishes the hops in flight. `transport.crash()` is the SIGKILL:
/// the broker requeues what the processor had not acknowledged, and the runtime returns.
public struct RunningProcessor: Sendable {
    /// The processor's connection to the broker.
    public let transport: InMemoryTransport
    /// The processor's hop record: keep it to start the same "process" again after a crash.
    public let store: any HopRecordStore
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    /// Starts `processor` on a new connection to `broker`.
    ///
    /// - Parameters:
    ///   - store: the hop record; a new, empty one unless given (pass an earlier one's to restart after a crash).
    ///   - logger: silent unless given.
    ///   - wrap: puts a transport of the test's own between the runtime and its connection, e.g. to fail or delay
    ///     some calls.
    public init(
        _ processor: any StepProcessor, broker: InMemoryBroker, store: any HopRecordStore = InMemoryHopRecordStore(),
        configuration: ProcessorConfiguration = ProcessorConfiguration(),
        logger: Logger = Logger(label: "slipway.test", factory: { _ in SwiftLogNoOpLogHandler() }),
        wrap: (InMemoryTransport) -> any MessageTransport = { $0 }
    ) {
        let transport = InMemoryTransport(broker: broker)
        let runtime = ProcessorRuntime(
            processor: processor, transport: wrap(transport), store: store, configuration: configuration, logger: logger)
        self.init(runtime: runtime, transport: transport, store: store, logger: logger)
    }

    /// Runs a runtime built by the test over `transport` (or a transport wrapping it) and `store`.
    public init(runtime: ProcessorRuntime, transport: InMemoryTransport, store: any HopRecordStore, logger: Logger) {
        self.transport = transport
        self.store = store
        // A runtime also returns on its own when its transport "crashes": that ends its group without an error.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: runtime, successTerminationBehavior: .gracefullyShutdownGroup)],
                logger: logger))
        self.group = group
        task = Task { try await group.run() }
    }

    /// Shuts the processor down gracefully and waits until it has; rethrows what ended its runtime with an error.
    public func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}
