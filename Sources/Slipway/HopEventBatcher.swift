import Foundation
import Synchronization
import SlipwayCore
import SlipwayTransport

/// Publishes hop events from concurrent hops together, several to a broker message. Without it every hop costs the
/// broker two messages.
///
/// A batch goes out once every hop running in this processor has handed in its events, or `linger` after the first
/// event waiting, whichever comes first: concurrent hops, which finish close together, share a message, and a lone hop
/// (an idle processor) sends its event at once. `publish` returns only once the batch holding the events is
/// confirmed, and a hop is acknowledged only after that, so a crash loses no event.
final class HopEventBatcher: Sendable {
    /// One hop's part in the batching: whether it has handed in its events yet.
    final class Ticket: Sendable {
        fileprivate let handedIn = Atomic(false)
    }

    /// The ticket of the hop the current task runs, set by the runtime around each hop.
    @TaskLocal static var ticket: Ticket?

    private struct Waiting {
        var events: [[UInt8]]
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var waiting: [Waiting] = []
        var waitingEvents = 0
        /// Hops begun that have not yet handed in their events (or ended without any).
        var running = 0
        var flushing = false
        var lingerArmed = false
        var lingerExpired = false
    }

    private let transport: any MessageTransport
    private let exchange: String
    private let routingKey: String
    private let maxEvents: Int
    private let linger: Duration
    private let state = Mutex(State())

    init(
        transport: any MessageTransport, topology: Topology, step: String, maxEvents: Int = 256,
        linger: Duration = .milliseconds(2)
    ) {
        self.transport = transport
        self.exchange = topology.eventsExchange
        self.routingKey = SlipEventWire.batchRoutingKey(step: step)
        self.maxEvents = maxEvents
        self.linger = linger
    }

    /// Runs one hop: while it runs, a batch waits for its events (up to `linger`).
    func hop<T>(_ body: () async throws -> T) async rethrows -> T {
        let ticket = Ticket()
        state.withLock { $0.running += 1 }
        defer { handIn(ticket, events: nil) }
        return try await Self.$ticket.withValue(ticket) { try await body() }
    }

    /// Events already encoded (one JSON object each); returns once the broker has confirmed them.
    func publish(_ events: [[UInt8]]) async throws {
        guard !events.isEmpty else { return }
        let ticket = Self.ticket
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            handIn(ticket, events: Waiting(events: events, continuation: continuation))
        }
    }

    /// A hop hands in its events, or (nil) ends without any; either way the batch stops waiting for it.
    private func handIn(_ ticket: Ticket?, events: Waiting?) {
        let first = ticket.map { $0.handedIn.exchange(true, ordering: .relaxed) == false } ?? false
        let start = state.withLock { state -> Bool in
            if first { state.running -= 1 }
            if let events {
                state.waiting.append(events)
                state.waitingEvents += events.events.count
            }
            guard !state.flushing, !state.waiting.isEmpty else { return false }
            state.flushing = true
            return true
        }
        if start { Task { await self.flush() } }
    }

    /// Sends batches while one is due; otherwise arms the linger timer and stops.
    private func flush() async {
        while true {
            var armTimer = false
            let batch = state.withLock { state -> [Waiting] in
                let due =
                    !state.waiting.isEmpty
                    && (state.running <= 0 || state.lingerExpired || state.waitingEvents >= maxEvents)
                guard due else {
                    state.flushing = false
                    if !state.waiting.isEmpty && !state.lingerArmed {
                        state.lingerArmed = true
                        armTimer = true
                    }
                    return []
                }
                state.lingerExpired = false
                var count = 0
                var taken = 0
                while taken < state.waiting.count, taken == 0 || count + state.waiting[taken].events.count <= maxEvents {
                    count += state.waiting[taken].events.count
                    taken += 1
                }
                state.waitingEvents -= count
                defer { state.waiting.removeFirst(taken) }
                return Array(state.waiting.prefix(taken))
            }
            if batch.isEmpty {
                if armTimer { startLingerTimer() }
                return
            }
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

    private func startLingerTimer() {
        let linger = self.linger
        Task {
            try? await Task.sleep(for: linger)
            let start = self.state.withLock { state -> Bool in
                state.lingerArmed = false
                state.lingerExpired = true
                guard !state.flushing, !state.waiting.isEmpty else { return false }
                state.flushing = true
                return true
            }
            if start { await self.flush() }
        }
    }
}
