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
        // Messages parked by older versions name no slip when their body was not a valid slip: read its id here.
        slipId = delivery.headers[ParkedHeaders.slipID] ?? SlipPeek.read(delivery.body)?.slipID
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

    /// The one delivery named `id`, or whose parked id starts with `id` (at least 4 characters) when no id is
    /// exactly that and one starts so; otherwise a one-line error naming the candidates, and exit 2 (after giving
    /// everything back).
    func single(_ id: String, in deliveries: [Delivery]) async throws -> Delivery {
        switch Self.match(id, in: deliveries.map(Self.parkedID(of:))) {
        case .one(let index):
            return deliveries[index]
        case .nothing:
            await finish(ack: [])
            printError("no parked message with id '\(id)' in '\(queue)'")
            throw ExitCodes.badInput
        case .several(let ids):
            await finish(ack: [])
            let listed = ids.prefix(10).joined(separator: ", ") + (ids.count > 10 ? ", ..." : "")
            printError(
                ids.allSatisfy { $0 == id }
                    ? "'\(id)' names \(ids.count) parked messages in '\(queue)' (an old message id); nothing done"
                    : "'\(id)' is the start of \(ids.count) parked ids in '\(queue)': \(listed); give more of it")
            throw ExitCodes.badInput
        }
    }

    enum Match: Equatable {
        case one(Int)
        case nothing
        /// The ids that match (all equal to the one asked for when an old message id names several messages).
        case several([String])
    }

    /// Which of `ids` `id` names: exactly, else as the unique start of one (4 characters at least, as `slip audit
    /// show` takes a slip id).
    static func match(_ id: String, in ids: [String]) -> Match {
        let exact = ids.indices.filter { ids[$0] == id }
        if exact.count == 1 { return .one(exact[0]) }
        if exact.count > 1 { return .several(exact.map { ids[$0] }) }
        guard id.count >= 4 else { return .nothing }
        let starting = ids.indices.filter { ids[$0].hasPrefix(id) }
        switch starting.count {
        case 0: return .nothing
        case 1: return .one(starting[0])
        default: return .several(starting.map { ids[$0] }.sorted())
        }
    }
}

/// The parked id, or --all, for replay and drop.
struct ParkedSelection: ParsableArguments {
    @Argument(help: "The parked id (see `slip dlq list`), or a unique start of it (at least 4 characters).")
    var parkedID: String?

    @Flag(help: "Every parked message.")
    var all = false

    func validate() throws {
        guard (parkedID != nil) != all else { throw ValidationError("give a parked id or --all, not both or neither") }
    }
}
