import Foundation
import Slipway

/// A consumer of the dead-letter queue that holds what it received until told what to ack and what to give back:
/// what `slip dlq list|show|replay|drop` read the queue with.
///
/// The transport offers no way to count a queue's messages, so the scan consumes the queue with manual acks and a
/// prefetch large enough (unlimited, or the limit), collects deliveries until none arrives for a short while
/// (`idle`), and then settles them: `finish(ack:)` acks the ones given (a drop) and gives every other one back
/// (`release`, which requeues it at its original position when RabbitMQ can); `replay` publishes first and acks only
/// what the broker confirmed. A message parked while a scan runs may or may not be among those it sees.
///
/// The scan owns the transport it was opened with: `finish` shuts it down, after the acks and releases.
public final class DeadLetterScan: @unchecked Sendable {
    // Safe: `received` and `lastArrival` are only touched under `lock`.
    /// How long without a delivery means "that was all" (after the first delivery; the first is waited for longer).
    public static let idle = Duration.milliseconds(300)
    public static let firstDelivery = Duration.milliseconds(1_000)

    public let queue: String
    private let transport: any MessageTransport
    private let stream: DeliveryStream
    private var reader: Task<Void, Never>?
    private let lock = NSLock()
    private var received: [Delivery] = []
    private var lastArrival: ContinuousClock.Instant?

    /// Starts consuming `queue` (the topology's `deadLetterQueue`), at most `limit` messages unacknowledged (nil:
    /// every one). Throws what the transport throws; the transport is then still the caller's to shut down.
    public static func open(_ transport: any MessageTransport, queue: String, limit: Int?) async throws -> DeadLetterScan {
        // Prefetch 0 is unlimited in AMQP: every message can be held unacked at once, so none is missed.
        let stream = try await transport.consume(queue: queue, prefetch: min(limit ?? 0, Int(UInt16.max)))
        return DeadLetterScan(queue: queue, transport: transport, stream: stream)
    }

    private init(queue: String, transport: any MessageTransport, stream: DeliveryStream) {
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
    public func collect(limit: Int? = nil) async -> [Delivery] {
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

    /// Publishes the plan's messages back to their queues with confirms, then acks their parked copies and gives
    /// everything else back (`finish`). If the publish fails, nothing is acked: everything is given back and the
    /// error thrown. Either way the scan is finished.
    public func replay(_ plan: ReplayPlan) async throws {
        let messages = plan.replayable.map(\.message)
        do {
            if !messages.isEmpty {
                for queue in Set(messages.map(\.routingKey)) { try await transport.declareQueue(queue) }
                try await transport.publish(messages)
            }
        } catch {
            await finish(ack: [])
            throw error
        }
        await finish(ack: plan.replayable.map(\.delivery))
    }

    /// Acks `ack` (a drop), gives everything else back, and closes: the acks and releases reach the broker before the
    /// connection closes (anything received but not settled is requeued by the broker when it does).
    public func finish(ack: [Delivery]) async {
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
    public static func parkedID(of delivery: Delivery) -> String {
        delivery.headers[ParkedHeaders.parkedID] ?? delivery.messageID ?? "-"
    }

    /// The one delivery named `id`, or whose parked id starts with `id` (at least 4 characters) when no id is
    /// exactly that and one starts so. Otherwise an error naming the candidates (`unknownParkedID`,
    /// `ambiguousParkedID`); the deliveries are left as they are (`finish` gives them back).
    public func single(_ id: String, in deliveries: [Delivery]) throws(OperationsError) -> Delivery {
        switch Self.match(id, in: deliveries.map(Self.parkedID(of:))) {
        case .one(let index):
            return deliveries[index]
        case .nothing:
            throw OperationsError(.unknownParkedID, "no parked message with id '\(id)' in '\(queue)'")
        case .several(let ids):
            let listed = ids.prefix(10).joined(separator: ", ") + (ids.count > 10 ? ", ..." : "")
            throw OperationsError(
                .ambiguousParkedID,
                ids.allSatisfy { $0 == id }
                    ? "'\(id)' names \(ids.count) parked messages in '\(queue)' (an old message id); nothing done"
                    : "'\(id)' is the start of \(ids.count) parked ids in '\(queue)': \(listed); give more of it")
        }
    }

    public enum Match: Equatable, Sendable {
        case one(Int)
        case nothing
        /// The ids that match (all equal to the one asked for when an old message id names several messages).
        case several([String])
    }

    /// Which of `ids` `id` names: exactly, else as the unique start of one (4 characters at least, as `slip audit
    /// show` takes a slip id).
    public static func match(_ id: String, in ids: [String]) -> Match {
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
