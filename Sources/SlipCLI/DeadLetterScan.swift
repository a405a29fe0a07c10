import ArgumentParser
import Foundation
import Slipway
import SlipwayAMQP

// MARK: - Reading the queue

/// One parked message as the commands show it.
struct ParkedSummary: Encodable {
    var parkedId: String
    var reasonCode: String?
    var reason: String?
    var originalQueue: String?
    var slipId: String?
    var processor: String?
    var parkedAt: String?
    var size: Int

    init(_ delivery: Delivery) {
        parkedId = DeadLetterScan.parkedID(of: delivery)
        reasonCode = delivery.headers[ParkedHeaders.reasonCode]
        reason = delivery.headers[ParkedHeaders.reason]
        originalQueue = delivery.headers[ParkedHeaders.originalQueue]
        slipId = delivery.headers[ParkedHeaders.slipID]
        processor = delivery.headers[ParkedHeaders.processor]
        parkedAt = delivery.headers[ParkedHeaders.parkedAt]
        size = delivery.body.count
    }
}

/// A consumer of the dead-letter queue that holds what it received until told what to ack and what to give back.
final class DeadLetterScan: @unchecked Sendable {
    // Safe: `received` and `lastArrival` are only touched under `lock`.
    /// How long without a delivery means "that was all" (after the first delivery; the first is waited for longer).
    static let idle = Duration.milliseconds(300)
    static let firstDelivery = Duration.milliseconds(1_000)

    let queue: String
    private let transport: AMQPTransport
    private let stream: DeliveryStream
    private var reader: Task<Void, Never>?
    private let lock = NSLock()
    private var received: [Delivery] = []
    private var lastArrival: ContinuousClock.Instant?

    /// Connects and starts consuming; a broker that cannot be reached is reported and exits 3.
    static func open(_ broker: BrokerOptions, limit: Int?) async throws -> DeadLetterScan {
        let transport = try broker.makeTransport(logLevel: .error)
        let queue = broker.topology.deadLetterQueue
        do {
            // Prefetch 0 is unlimited in AMQP: every message can be held unacked at once, so none is missed.
            let stream = try await transport.consume(queue: queue, prefetch: min(limit ?? 0, Int(UInt16.max)))
            return DeadLetterScan(queue: queue, transport: transport, stream: stream)
        } catch {
            await transport.shutdown()
            printError("cannot read '\(queue)': \(error)")
            throw ExitCodes.unavailable
        }
    }

    private init(queue: String, transport: AMQPTransport, stream: DeliveryStream) {
        self.queue = queue
        self.transport = transport
        self.stream = stream
        reader = Task { [self] in
            do {
                for try await delivery in stream {
                    lock.withLock {
                        received.append(delivery)
                        lastArrival = .now
                    }
                }
            } catch {}
        }
    }

    /// The deliveries received until `limit` of them, or until none came for `idle`. They stay unacknowledged.
    func collect(limit: Int? = nil) async -> [Delivery] {
        let start = ContinuousClock.now
        while true {
            let (count, last) = lock.withLock { (received.count, lastArrival) }
            if let limit, count >= limit { break }
            if let last {
                if last.duration(to: .now) >= Self.idle { break }
            } else if start.duration(to: .now) >= Self.firstDelivery {
                break
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let all = lock.withLock { received }
        return limit.map { Array(all.prefix($0)) } ?? all
    }

    /// Publishes with confirms on the same connection set (the replay).
    func publish(_ messages: [OutgoingMessage]) async throws {
        for queue in Set(messages.map(\.routingKey)) { try await transport.declareQueue(queue) }
        try await transport.publish(messages)
    }

    /// Acks `ack`, gives everything else back, and closes: the acks and releases reach the broker before the
    /// connection closes (anything received but not settled is requeued by the broker when it does).
    func finish(ack: [Delivery]) async {
        let acked = Set(ack.map(\.tag))
        let all = lock.withLock { received }
        for delivery in all where !acked.contains(delivery.tag) { await delivery.release() }
        for delivery in ack { await delivery.ack() }
        await transport.shutdown()
        // The stream ends once the consumer has settled what it was given and closed its connection.
        // (If that takes unreasonably long, stop waiting: the broker requeues whatever was not settled.)
        guard let reader else { return }
        let timeout = Task {
            try? await Task.sleep(for: .seconds(10))
            reader.cancel()
        }
        await reader.value
        timeout.cancel()
    }

    /// The parked id: the `x-slipway-parked-id` header, else (older versions) the message id, else "-".
    static func parkedID(of delivery: Delivery) -> String {
        delivery.headers[ParkedHeaders.parkedID] ?? delivery.messageID ?? "-"
    }

    /// The one delivery named `id`; otherwise a one-line error and exit 2 (after giving everything back).
    func single(_ id: String, in deliveries: [Delivery]) async throws -> Delivery {
        let matches = deliveries.filter { Self.parkedID(of: $0) == id }
        guard matches.count == 1 else {
            await finish(ack: [])
            printError(
                matches.isEmpty
                    ? "no parked message with id '\(id)' in '\(queue)'"
                    : "'\(id)' names \(matches.count) parked messages in '\(queue)' (an old message id); nothing done")
            throw ExitCodes.badInput
        }
        return matches[0]
    }
}

/// The parked id, or --all, for replay and drop.
struct ParkedSelection: ParsableArguments {
    @Argument(help: "The parked id (see `slip dlq list`).")
    var parkedID: String?

    @Flag(help: "Every parked message.")
    var all = false

    func validate() throws {
        guard (parkedID != nil) != all else { throw ValidationError("give a parked id or --all, not both or neither") }
    }
}
