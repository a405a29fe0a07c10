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
///
/// No task of its own making: the hop whose events make a batch due sends it (and any batch due after it) from its own
/// task, and `run()`, a child task of the processor's runtime, sends the batches whose linger ran out.
final class HopEventBatcher: Sendable {
    fileprivate struct Waiting {
        var events: [[UInt8]]
        /// Nil for the events of the hop that is sending batches itself.
        var continuation: CheckedContinuation<Delivered, any Error>?
    }

    /// What a hop's wait for its events comes to: they were confirmed, or the hop is to send batches itself.
    fileprivate enum Delivered {
        case confirmed
        case sendYourself
    }

    fileprivate struct State {
        var waiting: [Waiting] = []
        var waitingEvents = 0
        /// A task is sending batches: a hop's or the linger's.
        var sending = false
        var lingerArmed = false
        var lingerExpired = false
        /// The linger task has ended (the processor is stopping): nothing waits for company any more.
        var draining = false
        /// The linger task, waiting for a batch to time.
        var lingerWake: CheckedContinuation<Void, Never>?
        var lingerWakePending = false

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
        let delivered = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Delivered, any Error>) in
            let (sendYourself, wake) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
                state.waitingEvents += events.count
                if !state.sending && (state.draining || state.waitingEvents >= state.maxEvents || state.lingerExpired) {
                    state.sending = true
                    state.waiting.append(Waiting(events: events, continuation: nil))
                    return (true, nil)
                }
                state.waiting.append(Waiting(events: events, continuation: continuation))
                return (false, state.armIfWaiting() ? state.takeLingerWake() : nil)
            }
            wake?.resume()
            if sendYourself { continuation.resume(returning: .sendYourself) }
        }
        if case .sendYourself = delivered { try await sendDueBatches(untilOwnSent: true) }
    }

    /// Times the linger of waiting batches and sends those whose linger ran out, until cancelled: then what waits goes
    /// at once, and so does every batch after (the processor is stopping, and its last hops' acks wait for their
    /// events). The runtime runs it beside its hops, and cancels it on graceful shutdown.
    func run() async {
        timing: while !Task.isCancelled {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.lingerWakePending {
                            state.lingerWakePending = false
                            return true
                        }
                        state.lingerWake = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                state.withLock { state in
                    state.lingerWakePending = true
                    return state.takeLingerWake()
                }?.resume()
            }
            if Task.isCancelled { break timing }
            do { try await Task.sleep(for: linger) } catch { break timing }
            let sendNow = state.withLock { state -> Bool in
                state.lingerArmed = false
                state.lingerExpired = !state.waiting.isEmpty
                guard !state.sending, state.isDue else { return false }
                state.sending = true
                return true
            }
            if sendNow { try? await sendDueBatches(untilOwnSent: false) }
        }
        let sendNow = state.withLock { state -> Bool in
            state.draining = true
            guard !state.sending, state.isDue else { return false }
            state.sending = true
            return true
        }
        if sendNow { try? await sendDueBatches(untilOwnSent: false) }
    }

    /// Sends batches while one is due; throws when the batch holding the caller's own events failed. A hop sends until
    /// its own events are confirmed, then hands the next due batch to the first hop waiting in it, so that no hop's
    /// ack waits on others' batches under a steady load; the linger task sends while batches are due.
    private func sendDueBatches(untilOwnSent: Bool) async throws {
        enum Step {
            case send([Waiting])
            case handOver(CheckedContinuation<Delivered, any Error>)
            case done(wake: CheckedContinuation<Void, Never>?)
        }
        var ownPending = untilOwnSent
        var ownError: (any Error)?
        while true {
            let step = state.withLock { state -> Step in
                let mustSend = ownPending ? !state.waiting.isEmpty : state.isDue && !untilOwnSent
                guard mustSend else {
                    if state.isDue, let next = state.waiting.firstIndex(where: { $0.continuation != nil }),
                        let continuation = state.waiting[next].continuation
                    {
                        state.waiting[next].continuation = nil
                        return .handOver(continuation)
                    }
                    state.sending = false
                    return .done(wake: state.armIfWaiting() ? state.takeLingerWake() : nil)
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
                return .send(Array(state.waiting.prefix(taken)))
            }
            switch step {
            case .done(let wake):
                wake?.resume()
                if let ownError { throw ownError }
                return
            case .handOver(let next):
                next.resume(returning: .sendYourself)
                if let ownError { throw ownError }
                return
            case .send(let batch):
                let message = OutgoingMessage(
                    exchange: exchange, routingKey: routingKey, body: SlipEventWire.batchBody(batch.flatMap(\.events)),
                    contentType: SlipEventWire.batchContentType)
                var failure: (any Error)?
                do { try await transport.publish([message]) } catch { failure = error }
                for waiting in batch {
                    if let continuation = waiting.continuation {
                        if let failure {
                            continuation.resume(throwing: failure)
                        } else {
                            continuation.resume(returning: .confirmed)
                        }
                    } else {
                        ownPending = false
                        ownError = failure
                    }
                }
            }
        }
    }
}

extension HopEventBatcher.State {
    /// Arms the linger for events that wait with none running; true when the linger task must be woken for it.
    fileprivate mutating func armIfWaiting() -> Bool {
        guard !waiting.isEmpty, !lingerArmed else { return false }
        lingerArmed = true
        lingerWakePending = true
        return true
    }

    /// The linger task's wake-up, if it is waiting for one (it then finds `lingerWakePending` set).
    fileprivate mutating func takeLingerWake() -> CheckedContinuation<Void, Never>? {
        guard let wake = lingerWake else { return nil }
        lingerWake = nil
        lingerWakePending = false
        return wake
    }
}
