import Foundation

/// What the framework says about a slip as it moves: published to the events exchange (`Topology.eventsExchange`).
///
/// Carries no variables (size and privacy): a subscriber that needs a slip's data reads it from the audit trail.
public struct SlipEvent: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case execute, compensate, parked, terminal
    }

    public var formatVersion: Int
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
    public var at: Date
    public var reason: String?
    public var fault: Fault?
    /// On terminal events: when the slip was created and every hop it took (timings and outcomes, no variables), so a
    /// waiting producer sees where the time went without querying the audit trail.
    public var createdAt: Date?
    public var log: [LogEntry]?

    public init(
        slipID: String, template: String, kind: Kind, step: String, sequence: Int, attempt: Int, outcome: String,
        state: SlipState, processor: String, at: Date = Date(), reason: String? = nil, fault: Fault? = nil,
        createdAt: Date? = nil, log: [LogEntry]? = nil
    ) {
        self.formatVersion = 1
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
}
