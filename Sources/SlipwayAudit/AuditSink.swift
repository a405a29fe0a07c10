import Foundation
import Logging
import ServiceLifecycle
import SlipwayCore
import SlipwayTransport

/// The audit sink: consumes the durable queue `<prefix>.audit`, bound to every event of the events exchange, and
/// writes what arrives to the audit store in batches. The batch is whatever accumulated while the previous one was
/// being committed, so a busy sink writes big transactions and an idle one writes at once. A message is acknowledged
/// only after its batch is committed; recording is idempotent, so an event delivered twice is stored once.
///
/// A `Service`: run it in a `ServiceGroup` (as `slip audit-sink` does), beside other services if you like. On graceful
/// shutdown it stops consuming, records what it received, and returns. It does not shut the transport down: whoever
/// made the transport does.
///
/// ```swift
/// let sink = AuditSink(store: try AuditStore(path: ".slipway/audit.sqlite"), transport: transport,
///                      topology: Topology(prefix: "slipway"), logger: logger)
/// let group = ServiceGroup(services: [sink], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// await transport.shutdown()
/// ```
public final class AuditSink: Service, Sendable {
    public let store: AuditStore
    public let transport: any MessageTransport
    public let topology: Topology
    /// Unacknowledged events the broker may hand the sink at once.
    public let prefetch: Int
    let logger: Logger

    public init(
        store: AuditStore, transport: any MessageTransport, topology: Topology, prefetch: Int = 1_000, logger: Logger
    ) {
        self.store = store
        self.transport = transport
        self.topology = topology
        self.prefetch = prefetch
        self.logger = logger
    }

    public func run() async throws {
        try await transport.declareAuditQueue(topology)
        try await transport.declareQueue(topology.deadLetterQueue)
        let deliveries = try await transport.consume(queue: topology.auditQueue, prefetch: prefetch)
        let pending = PendingDeliveries()
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    do {
                        for try await delivery in deliveries { await pending.add(delivery) }
                    } catch {
                        self.logger.error("audit queue stream failed", metadata: ["error": "\(error)"])
                    }
                    await pending.finish()
                }
                group.addTask {
                    while let batch = await pending.takeAll() {
                        await self.write(batch)
                    }
                }
            }
        } onGracefulShutdown: {
            deliveries.stop()
        }
        logger.info("stopped: every event received was recorded")
    }

    /// One transaction for the batch, then the acks. Undecodable events are parked, not dropped; a failed write leaves
    /// the batch unacknowledged, to be delivered again.
    private func write(_ batch: [Delivery]) async {
        var events: [SlipEvent] = []
        var recorded: [Delivery] = []
        var parked: [(Delivery, String)] = []
        let decoder = SlipCodec.makeDecoder()
        for delivery in batch {
            do {
                // One event or a processor's batch of hop events; nesting is checked before the parser.
                events.append(contentsOf: try SlipEventWire.decode(delivery.body, decoder: decoder))
                recorded.append(delivery)
            } catch let error as DecodingError {
                parked.append((delivery, SlipCodec.describe(error)))
            } catch let rejection as SlipRejection {
                parked.append((delivery, rejection.reason))
            } catch {
                parked.append((delivery, "\(error)"))
            }
        }
        do {
            if !events.isEmpty {
                let new = try await store.record(events)
                logger.debug("batch recorded", metadata: ["audit.events": "\(events.count)", "audit.new": "\(new)"])
            }
            for delivery in recorded { await delivery.ack() }
        } catch {
            logger.error("cannot write the audit batch; it will be delivered again", metadata: ["error": "\(error)"])
            try? await Task.sleep(for: .seconds(1))
            for delivery in recorded { await delivery.release() }
        }
        for (delivery, reason) in parked { await park(delivery, reason: reason) }
    }

    private func park(_ delivery: Delivery, reason: String) async {
        logger.warning("an event that is not a slip event was parked", metadata: ["park.reason": "\(reason)"])
        let message = OutgoingMessage.toQueue(
            topology.deadLetterQueue, body: delivery.body,
            headers: [
                ParkedHeaders.parkedID: UUID().uuidString.lowercased(),
                ParkedHeaders.reasonCode: "malformed-event", ParkedHeaders.reason: String(reason.prefix(1_000)),
                ParkedHeaders.originalQueue: topology.auditQueue,
                ParkedHeaders.processor: InstanceName.current(),
                ParkedHeaders.parkedAt: Date().formatted(.iso8601),
            ])
        do {
            try await transport.publish([message])
            await delivery.ack()
        } catch {
            logger.error("cannot park the event; it will be delivered again", metadata: ["error": "\(error)"])
            await delivery.release()
        }
    }
}

/// Deliveries waiting to be written. `takeAll` waits for at least one, then takes everything there is.
actor PendingDeliveries {
    private var deliveries: [Delivery] = []
    private var finished = false
    private var waiter: CheckedContinuation<Void, Never>?

    func add(_ delivery: Delivery) {
        deliveries.append(delivery)
        waiter?.resume()
        waiter = nil
    }

    func finish() {
        finished = true
        waiter?.resume()
        waiter = nil
    }

    /// Nil once the stream has finished and everything was taken.
    func takeAll() async -> [Delivery]? {
        while deliveries.isEmpty {
            if finished { return nil }
            await withCheckedContinuation { waiter = $0 }
        }
        defer { deliveries.removeAll(keepingCapacity: true) }
        return deliveries
    }
}
