import Foundation

/// What the framework says about a slip as it moves: published to the events exchange (`Topology.eventsExchange`).
///
/// Carries no variables (size and privacy): a subscriber that needs a slip's data reads it from the audit trail.
public struct SlipEvent: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case execute, compensate, parked, terminal
    }

    public var formatVersion: Int
    /// Unique per event and stable when the same event is published again (after a crash or a broker outage), so the
    /// audit trail stores each once: `<slip>.<sequence>.<kind>.<attempt>` for hops, `<slip>.<sequence>.terminal` for
    /// an end (a compensation-failed slip replayed later ends again, at a later sequence).
    public var id: String
    public var slipID: String
    public var template: String
    public var kind: Kind
    /// The hop's step; for a terminal event, the last step that ran.
    public var step: String
    public var sequence: Int
    public var attempt: Int
    /// The hop's outcome, or for a terminal event the slip's final state.
    public var outcome: String
    /// The slip's state after the hop.
    public var state: SlipState
    public var processor: String
    /// When the hop's handler started, and how long it ran (hops only).
    public var startedAt: Date?
    public var durationMicros: Int64?
    /// When the event was made.
    public var at: Date
    public var reason: String?
    public var fault: Fault?
    /// On terminal events: when the slip was created and every hop it took (timings and outcomes, no variables), so a
    /// waiting producer sees where the time went without querying the audit trail.
    public var createdAt: Date?
    public var log: [LogEntry]?

    public init(
        id: String? = nil, slipID: String, template: String, kind: Kind, step: String, sequence: Int, attempt: Int,
        outcome: String, state: SlipState, processor: String, startedAt: Date? = nil, durationMicros: Int64? = nil,
        at: Date = Date(), reason: String? = nil, fault: Fault? = nil, createdAt: Date? = nil, log: [LogEntry]? = nil
    ) {
        self.formatVersion = 1
        self.id = id ?? SlipEvent.defaultID(slipID: slipID, kind: kind, sequence: sequence, attempt: attempt)
        self.startedAt = startedAt
        self.durationMicros = durationMicros
        self.slipID = slipID
        self.template = template
        self.kind = kind
        self.step = step
        self.sequence = sequence
        self.attempt = attempt
        self.outcome = outcome
        self.state = state
        self.processor = processor
        self.at = at
        self.reason = reason
        self.fault = fault
        self.createdAt = createdAt
        self.log = log
    }

    public static func defaultID(slipID: String, kind: Kind, sequence: Int, attempt: Int) -> String {
        kind == .terminal ? "\(slipID).\(sequence).terminal" : "\(slipID).\(sequence).\(kind.rawValue).\(attempt)"
    }

    /// The event of one hop, from its log entry and the slip after it.
    /// `at`: when the event is sent.
    public init(hop entry: LogEntry, slip: Slip, at: Date = Date()) {
        self.init(
            slipID: slip.id, template: slip.template, kind: entry.kind == .execute ? .execute : .compensate,
            step: entry.step, sequence: entry.sequence, attempt: entry.attempt, outcome: entry.outcome.rawValue,
            state: slip.state, processor: entry.processor, startedAt: entry.startedAt,
            durationMicros: entry.durationMicros, at: at, reason: entry.reason)
    }

    /// Routing key on the events exchange: `<kind>.<step>.<slip id>`; for terminal events `terminal.<state>.<slip id>`.
    public var routingKey: String {
        switch kind {
        case .terminal: "terminal.\(state.rawValue).\(slipID)"
        case .execute, .compensate, .parked: "\(kind.rawValue).\(step).\(slipID)"
        }
    }
}

/// How events travel: one event per message, or hop events in batches (a JSON array of events in one message), which
/// halves what the broker does per hop. Consumers of the events exchange read both.
public enum SlipEventWire {
    public static let contentType = "application/vnd.slipway.event+json; version=1"
    public static let batchContentType = "application/vnd.slipway.event-batch+json; version=1"

    /// Routing key of a batch of one step's hop events: `batch.<step>.hops`, so that `#` and `*.<step>.*` match it.
    public static func batchRoutingKey(step: String) -> String { "batch.\(step).hops" }

    /// A batch body from events already encoded one by one: their bytes between brackets, nothing encoded again.
    public static func batchBody(_ events: [[UInt8]]) -> [UInt8] {
        var body: [UInt8] = [UInt8(ascii: "[")]
        body.reserveCapacity(events.reduce(2) { $0 + $1.count + 1 })
        for (index, event) in events.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: event)
        }
        body.append(UInt8(ascii: "]"))
        return body
    }

    /// The events of a message body: a batch (a JSON array) or a single event. Nesting is checked before parsing.
    public static func decode(_ body: [UInt8], decoder: JSONDecoder = SlipCodec.makeDecoder()) throws -> [SlipEvent] {
        // The byte reader for what processors write; Foundation's decoder for the rest, and for every refusal.
        if let events = body.withUnsafeBufferPointer(fastDecode) { return events }
        return try decodeWithFoundation(body, decoder: decoder)
    }

    static func decodeWithFoundation(_ body: [UInt8], decoder: JSONDecoder) throws -> [SlipEvent] {
        let data = Data(body)
        try SlipCodec.checkNesting(data)
        let first = body.first { ![UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t")].contains($0) }
        if first == UInt8(ascii: "[") { return try decoder.decode([SlipEvent].self, from: data) }
        return [try decoder.decode(SlipEvent.self, from: data)]
    }
}
