/// Where messages go, by convention, so that producers and processors agree without configuration.
public struct Topology: Sendable, Hashable {
    /// Prepended to every queue and exchange name; lets several deployments share one virtual host.
    public var prefix: String

    public init(prefix: String = "slipway") {
        self.prefix = prefix
    }

    /// The queue a step's processors consume to run the step, e.g. `slipway.charge-card.execute`.
    public func executeQueue(step: String) -> String { "\(prefix).\(step).execute" }

    /// The queue a step's processors consume to undo the step, e.g. `slipway.charge-card.compensate`.
    public func compensateQueue(step: String) -> String { "\(prefix).\(step).compensate" }

    public func queue(for hop: HopKind, step: String) -> String {
        switch hop {
        case .execute: executeQueue(step: step)
        case .compensate: compensateQueue(step: step)
        }
    }

    /// Parked messages, from every step, with their reason in headers.
    public var deadLetterQueue: String { "\(prefix).dead-letters" }

    /// Topic exchange of slip events. Routing key: `<kind>.<step or state>.<slip id>`; a slip's terminal event is
    /// `terminal.<state>.<slip id>`, so `terminal.#` follows every slip's end and `*.*.<id>` one slip.
    public var eventsExchange: String { "\(prefix).events" }

    public func terminalRoutingKey(state: SlipState, slipID: String) -> String { "terminal.\(state.rawValue).\(slipID)" }

    public func terminalBindingKey(slipID: String) -> String { "terminal.*.\(slipID)" }

    /// The queue that holds a message `delayMs` (rounded up on the delay grid), then hands it to `queue`:
    /// `<queue>.delay-<ms>ms`. Its name says its arguments, so whoever publishes to it can declare it.
    public func delayQueue(for queue: String, delayMs: Int) -> String {
        "\(queue).delay-\(DelayGrid.level(forMs: delayMs))ms"
    }

    /// The target queue and delay of a delay queue's name, or nil for any other queue.
    public func parseDelayQueue(_ name: String) -> (queue: String, delayMs: Int)? {
        guard name.hasSuffix("ms"), let marker = name.range(of: ".delay-", options: .backwards) else { return nil }
        guard let delay = Int(name[marker.upperBound...].dropLast(2)), delay > 0 else { return nil }
        return (String(name[..<marker.lowerBound]), delay)
    }

    /// The durable queue the audit sink consumes: bound to every event.
    public var auditQueue: String { "\(prefix).audit" }
}
