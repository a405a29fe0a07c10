import Foundation
import Synchronization
import SlipwayCore
import SlipwayTransport

/// Publishes hop events from concurrent hops together: one broker message carries every event that came while the
/// previous batch waited for its confirm (up to `maxEvents`). Without it every hop costs the broker two messages.
///
/// `publish` returns only once the batch holding the events is confirmed, and a hop is acknowledged only after that,
/// so a crash loses no event. Nothing waits for a batch to fill: an idle processor sends a batch of one at once.
final class HopEventBatcher: Sendable {
    private struct Waiting {
        var events: [[UInt8]]
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var waiting: [Waiting] = []
        var flushing = false
    }

    private let transport: any MessageTransport
    private let exchange: String
    private let routingKey: String
    private let maxEvents: Int
    private let state = Mutex(State())

    init(transport: any MessageTransport, topology: Topology, step: String, maxEvents: Int = 256) {
        self.transport = transport
        self.exchange = topology.eventsExchange
        self.routingKey = SlipEventWire.batchRoutingKey(step: step)
        self.maxEvents = maxEvents
    }

    /// Events already encoded (one JSON object each); returns once the broker has confirmed them.
    func publish(_ events: [[UInt8]]) async throws {
        guard !events.isEmpty else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let startFlushing = state.withLock { state in
                state.waiting.append(Waiting(events: events, continuation: continuation))
                defer { state.flushing = true }
                return !state.flushing
            }
            if startFlushing { Task { await self.flush() } }
        }
    }

    /// Sends batches until nothing waits: whatever accumulated while a batch was on the wire goes out next.
    private func flush() async {
        while true {
            let batch = state.withLock { state -> [Waiting] in
                var count = 0
                var taken = 0
                while taken < state.waiting.count, taken == 0 || count + state.waiting[taken].events.count <= maxEvents {
                    count += state.waiting[taken].events.count
                    taken += 1
                }
                if taken == 0 { state.flushing = false }
                defer { state.waiting.removeFirst(taken) }
                return Array(state.waiting.prefix(taken))
            }
            if batch.isEmpty { return }
            let message = OutgoingMessage(
                exchange: exchange, routingKey: routingKey, body: SlipEventWire.batchBody(batch.flatMap(\.events)),
                contentType: SlipEventWire.batchContentType)
            do {
                try await transport.publish([message])
                for waiting in batch { waiting.continuation.resume() }
            } catch {
                for waiting in batch { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}
