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

    /// The audit queue's binding to the events exchange: every event. The sink, the processors and
    /// `slip topology --apply` all declare the queue and this binding (see `MessageTransport.declareAuditQueue`), so
    /// an event published before the sink's first start waits in the queue instead of being dropped.
    public static let auditBindingKey = "#"
}

// MARK: - RabbitMQ permissions

/// A user's RabbitMQ permissions in one virtual host: three regular expressions over queue and exchange names.
/// `configure` lets it declare (and delete) what matches, `write` publish to matching exchanges (and bind matching
/// queues), `read` consume from matching queues (and bind from matching exchanges). RabbitMQ does not anchor them;
/// these are anchored with `^…$`.
public struct BrokerPermissions: Sendable, Hashable, Codable {
    public var configure: String
    public var write: String
    public var read: String

    public init(configure: String, write: String, read: String) {
        self.configure = configure
        self.write = write
        self.read = read
    }
}

extension Topology {
    /// The default exchange, as RabbitMQ names it in permissions. Publishing to a queue by name goes through it, so
    /// whoever forwards a slip needs `write` on it; RabbitMQ cannot narrow that to some queues.
    public static let defaultExchangePermissionName = "amq.default"

    /// The permissions of the processors of `step`: they read only their own step's queues.
    ///
    /// - configure: the events exchange, the dead-letter queue, the audit queue, and every step's execute and
    ///   compensate queue and their delay queues. The runtime declares every queue before its first publish to it (a
    ///   message to a queue that does not exist is confirmed and dropped), and a slip may go to any step (itinerary
    ///   revisions, compensation addresses); a delay queue expires when unused, so whoever publishes to it declares
    ///   it. The audit queue is declared so that events sent before the sink's first start are kept.
    /// - write: the default exchange (forwards, retries, parking), the events exchange, and the audit queue (binding
    ///   a queue needs `write` on it).
    /// - read: the step's own queues and their delay queues, and the delay queues in front of other steps' execute
    ///   queues: RabbitMQ asks for `read` on a queue to declare it with a dead-letter exchange, and a step that
    ///   completes with a wait (`continueAfter`) declares the next step's delay queue. And the events exchange:
    ///   binding the audit queue to it needs `read` on it.
    public func processorPermissions(step: String) -> BrokerPermissions {
        let p = Self.escaped(prefix)
        let s = Self.escaped(step)
        let stepQueue = #"[^.]+\.(execute|compensate)"#
        let delay = #"\.delay-[0-9]+ms"#
        return BrokerPermissions(
            configure: "^\(p)\\.(events|dead-letters|audit|\(stepQueue)(\(delay))?)$",
            write: "^(\(Self.escaped(Self.defaultExchangePermissionName))|\(p)\\.(events|audit))$",
            read: "^\(p)\\.(events|\(s)\\.(execute|compensate)(\(delay))?|[^.]+\\.execute\(delay))$")
    }

    /// The permissions of producers: send slips to any step's execute queue (declaring it first) and follow slip
    /// events through a private server-named queue (`amq.gen-…`, exclusive to the connection that declared it).
    public var producerPermissions: BrokerPermissions {
        let p = Self.escaped(prefix)
        return BrokerPermissions(
            configure: #"^(\#(p)\.(events|[^.]+\.execute)|amq\.gen-.*)$"#,
            write: #"^(amq\.default|amq\.gen-.*)$"#,
            read: #"^(\#(p)\.events|amq\.gen-.*)$"#)
    }

    /// The permissions of the audit sink: its queue, bound to every event; parks undecodable events.
    public var auditSinkPermissions: BrokerPermissions {
        let p = Self.escaped(prefix)
        return BrokerPermissions(
            configure: #"^\#(p)\.(events|audit|dead-letters)$"#,
            write: #"^(amq\.default|\#(p)\.audit)$"#,
            read: #"^\#(p)\.(events|audit)$"#)
    }

    /// The permissions of the operator's `slip dlq`: read the dead-letter queue, replay to the queue a message was
    /// parked from (declaring it first).
    public var operatorPermissions: BrokerPermissions {
        let p = Self.escaped(prefix)
        return BrokerPermissions(
            configure: #"^\#(p)\.(dead-letters|audit|[^.]+\.(execute|compensate))$"#,
            write: #"^amq\.default$"#,
            read: #"^\#(p)\.dead-letters$"#)
    }

    /// `name` as a regular expression that matches exactly it.
    public static func escaped(_ name: String) -> String {
        var out = ""
        for character in name {
            if #"\^$.|?*+()[]{}"#.contains(character) { out.append("\\") }
            out.append(character)
        }
        return out
    }
}
