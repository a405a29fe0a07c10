import Foundation
import Logging
import SlipwayCore
import SlipwayStores
import SlipwayTransport

/// What one hop does, decided by `HopPlanner` without I/O; `ProcessorRuntime` carries it out.
struct HopPlan: Sendable {
    enum Disposition: Sendable, Hashable {
        /// The handler threw with attempts left: the slip goes back to its queue for the next attempt (after
        /// `delayMs`, through a delay queue). Nothing is recorded; the claim is released after the ack.
        case retry(delayMs: Int)
        /// The hop is done: record it, then publish, then acknowledge.
        case record(HopRecordOutcome)
        /// The message is not run: it goes to the dead-letter queue with its reason, and an event tells the audit
        /// trail. Nothing is recorded.
        case park(ParkCode, reason: String)
    }

    var disposition: Disposition
    /// The hop's own event, which the runtime may send in a batch with other hops' events. Nil for a park, and for
    /// a forward from the record (whose events are among `messages`).
    var hopEvent: OutgoingMessage?
    /// Everything else the hop publishes, in order: the slip to its next queue, a terminal event, a parked copy and
    /// its event.
    var messages: [OutgoingMessage]
    /// The queues `messages` go to, with the arguments to declare them with: a message sent to a queue that does not
    /// exist is confirmed and dropped by the broker.
    var queues: [QueueDeclaration]
    /// What the runtime logs of the plan, beyond its debug line.
    var notice: Notice?

    /// What the hop record keeps: every message, in the order they are published.
    var outgoing: [OutgoingMessage] {
        guard let hopEvent else { return messages }
        return [hopEvent] + messages
    }

    struct Notice: Sendable {
        var level: Logger.Level
        var message: Logger.Message
        var metadata: Logger.Metadata = [:]
    }
}

/// A queue a hop publishes to, and the arguments it is declared with (a delay queue's wait and target).
struct QueueDeclaration: Sendable, Hashable {
    var name: String
    var arguments: QueueArguments?

    init(_ name: String, arguments: QueueArguments? = nil) {
        self.name = name
        self.arguments = arguments
    }
}

/// What a hop's handler came to: the runtime runs it (with its timeout), the planner decides what follows.
public enum HandlerResult: Sendable {
    case executed(ExecuteOutcome)
    case compensated
    /// The handler threw (a timeout too): the error as the slip's log tells it.
    case threw(String)
}

/// When and for how long the handler ran, for the slip's log.
public struct HopTiming: Sendable {
    public var startedAt: Date
    public var durationMicros: Int64

    public init(startedAt: Date, durationMicros: Int64) {
        self.startedAt = startedAt
        self.durationMicros = durationMicros
    }

    /// Measured from `startedAt` and `started` (on `clock`) to now.
    public init(startedAt: Date, since started: ContinuousClock.Instant, clock: ContinuousClock = ContinuousClock()) {
        let elapsed = started.duration(to: clock.now).components
        self.init(
            startedAt: startedAt, durationMicros: elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000)
    }

    /// A hop decided without running its handler (a deadline that passed).
    static func notRun(at now: Date) -> HopTiming { HopTiming(startedAt: now, durationMicros: 0) }
}
