import Foundation
import Synchronization
import SlipwayCore
import SlipwayTransport

/// Publishes the hop events of a processor's hops together, many to a broker message. Without it every hop costs the
/// broker, and the audit sink, two messages.
///
/// A batch goes out `linger` after its first event, or at once when it holds `maxEvents`. A hop does not wait for its
/// batch to run the next one: its slip is forwarded and its concurrency slot freed first, and only its
/// acknowledgement waits for the batch's confirm, so a crash loses no event (the message comes back and the recorded
/// result, events included, is sent again). So the linger costs the audit trail a few milliseconds and a hop's
/// end-to-end time nothing; at low rates it is what puts several events in one message.
final class HopEventBatcher: Sendable {
    fileprivate struct Waiting {
        var events: [[UInt8]]
        var continuation: CheckedContinuation<Void, any Error>
    }

    fileprivate struct State {
        var waiting: [Waiting] = []
        var waitingEvents = 0
        var flushing = false
        var lingerArmed = false
        var lingerExpired = false
        /// Shutting down: nothing waits for company any more.
        var draining = false

        var isDue: Bool { !waiting.isEmpty && (lingerExpired || draining || waitingEvents >= maxEvents) }
        let maxEvents: Int
    }

    private let transport: any MessageTransport
    private let exchange: String
    private let routingKey: String
    private let linger: Duration
    private let state: Mutex<State>

    /// - Parameter maxEvents: a full batch goes out at once. Keep it under the prefetch: hops whose events wait in a
    ///   batch are not yet acknowledged, and the broker sends no more than `prefetch` unacknowledged deliveries.
    init(
        transport: any MessageTransport, topology: Topology, step: String, maxEvents: Int = 16,
        linger: Duration = .milliseconds(20)
    ) {
        self.transport = transport
        self.exchange = topology.eventsExchange
        self.routingKey = SlipEventWire.batchRoutingKey(step: step)
        self.linger = linger
        self.state = Mutex(State(maxEvents: max(1, maxEvents)))
    }

    /// Events already encoded (one JSON object each); returns once the broker has confirmed the batch holding them.
    func publish(_ events: [[UInt8]]) async throws {
        guard !events.isEmpty else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let (flushNow, armTimer) = state.withLock { state -> (Bool, Bool) in
                state.waiting.append(Waiting(events: events, continuation: continuation))
                state.waitingEvents += events.count
                return state.nextMove()
            }
            if flushNow { Task(executorPreference: transport.taskExecutor) { await self.flush() } }
            if armTimer { startLingerTimer() }
        }
    }

    /// From now on every batch goes at once: the processor is stopping, and its last hops' acks wait for their events.
    func drain() {
        let flushNow = state.withLock { state -> Bool in
            state.draining = true
            return state.nextMove().flush
        }
        if flushNow { Task(executorPreference: transport.taskExecutor) { await self.flush() } }
    }

    /// Sends batches while one is due.
    private func flush() async {
        while true {
            let (batch, armTimer) = state.withLock { state -> ([Waiting], Bool) in
                guard state.isDue else {
                    state.flushing = false
                    return ([], state.armIfWaiting())
                }
                state.lingerExpired = false
                var count = 0
                var taken = 0
                while taken < state.waiting.count,
                    taken == 0 || count + state.waiting[taken].events.count <= state.maxEvents
                {
                    count += state.waiting[taken].events.count
                    taken += 1
                }
                state.waitingEvents -= count
                defer { state.waiting.removeFirst(taken) }
                return (Array(state.waiting.prefix(taken)), false)
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
        Task(executorPreference: transport.taskExecutor) {
            try? await Task.sleep(for: linger)
            let flushNow = self.state.withLock { state -> Bool in
                state.lingerArmed = false
                state.lingerExpired = !state.waiting.isEmpty
                return state.nextMove().flush
            }
            if flushNow { await self.flush() }
        }
    }
}

extension HopEventBatcher.State {
    /// What to do after a change: start a flush (a batch is due and none is being sent), or arm the linger timer.
    fileprivate mutating func nextMove() -> (flush: Bool, armTimer: Bool) {
        if flushing { return (false, false) }
        if isDue {
            flushing = true
            return (true, false)
        }
        return (false, armIfWaiting())
    }

    /// Arms the timer for events that wait with no timer running; true when the caller must start it.
    fileprivate mutating func armIfWaiting() -> Bool {
        guard !waiting.isEmpty, !lingerArmed else { return false }
        lingerArmed = true
        return true
    }
}
