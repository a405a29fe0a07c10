import Foundation

/// The document that travels with every message: what is still to run, what ran, how to undo it, and the shared variables.
///
/// The slip is the source of truth of a saga; there is no central orchestrator. Its JSON form is the wire format
/// (`docs/slip-format.md`, `docs/slip.schema.json`).
public struct Slip: Sendable, Hashable {
    /// The wire format version this build writes and the highest it reads.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// The tracking number: unique per slip, `[A-Za-z0-9_-]`, 1 to 64 characters (no dots: it is part of routing keys).
    public var id: String
    /// The template (or producer-chosen name) the slip was built from, for the audit.
    public var template: String
    public var createdAt: Date
    /// Sequence number of the next hop. Hop sequences, not clocks, order a slip's history.
    public var sequence: Int
    /// Attempt number of the next hop, from 1. Starts again at 1 at every new hop.
    public var attempt: Int
    public var state: SlipState
    /// Steps still to run; the head is the next one.
    public var itinerary: [ItineraryStep]
    /// Hops done, oldest first.
    public var log: [LogEntry]
    /// Undo records, a stack: the last element is the newest and is compensated first.
    public var compensations: [CompensationRecord]
    /// Shared variables: every step reads them, and a step's completion may set or remove some.
    public var variables: [String: JSONValue]
    /// Why the slip stopped running forward, once it did.
    public var fault: Fault?
    /// No step starts after this instant: an execute hop that finds it passed faults the step, and the slip
    /// compensates. Compensations still run after it.
    public var deadline: Date?

    public init(
        id: String = Slip.newID(),
        template: String,
        itinerary: [ItineraryStep],
        variables: [String: JSONValue] = [:],
        deadline: Date? = nil,
        createdAt: Date = Date()
    ) {
        self.formatVersion = Slip.currentFormatVersion
        self.id = id
        self.template = template
        self.createdAt = createdAt
        self.sequence = 0
        self.attempt = 1
        self.state = .running
        self.itinerary = itinerary
        self.log = []
        self.compensations = []
        self.variables = variables
        self.fault = nil
        self.deadline = deadline
    }

    /// A new random slip id: a lowercase UUID.
    public static func newID() -> String {
        UUID().uuidString.lowercased()
    }
}

public enum SlipState: String, Sendable, Hashable, Codable, CaseIterable {
    case running
    case compensating
    case completed
    case compensated
    /// A step faulted before any step with an undo had completed: nothing to compensate.
    case faulted
    /// A compensation kept failing: the slip is parked in the dead-letter queue, visible and replayable.
    case compensationFailed = "compensation-failed"
    /// A step ended the slip early on purpose, without compensation.
    case terminated

    public var isTerminal: Bool {
        switch self {
        case .running, .compensating: false
        case .completed, .compensated, .faulted, .compensationFailed, .terminated: true
        }
    }
}

/// One entry of the itinerary. In format 1 every entry is a step; a later format version adds parallel branches as
/// another kind of entry (`{"fork": ...}`), which a version-1 reader refuses through the version check.
public struct ItineraryStep: Sendable, Hashable, Codable {
    public var step: String
    public var arguments: [String: JSONValue]
    /// How this step's execute is retried when its handler throws (else the processor's default).
    public var retry: RetryPolicy?
    /// How long this step's execute may run before it is cancelled and counts as a failed attempt (else the
    /// processor's default).
    public var timeoutMs: Int?
    /// The same for the step's compensation, should it ever run. It travels on in the step's compensation record
    /// (`CompensationRecord.timeoutMs`), since the entry leaves the itinerary when the step completes.
    public var compensateTimeoutMs: Int?

    public init(
        step: String, arguments: [String: JSONValue] = [:], retry: RetryPolicy? = nil, timeoutMs: Int? = nil,
        compensateTimeoutMs: Int? = nil
    ) {
        self.step = step
        self.arguments = arguments
        self.retry = retry
        self.timeoutMs = timeoutMs
        self.compensateTimeoutMs = compensateTimeoutMs
    }
}

public enum HopKind: String, Sendable, Hashable, Codable {
    case execute
    case compensate
}

public enum HopOutcome: String, Sendable, Hashable, Codable {
    /// An execute that completed its step, or a compensation that undid it.
    case completed
    /// An execute that failed for a business reason.
    case faulted
    /// An attempt that threw; the hop runs again.
    case retried
    /// A compensation that failed for good: the slip is parked.
    case failed
    /// An execute that ended the slip on purpose, without compensation.
    case terminated
}

public struct LogEntry: Sendable, Hashable, Codable {
    public var sequence: Int
    public var step: String
    public var kind: HopKind
    public var outcome: HopOutcome
    public var attempt: Int
    public var startedAt: Date
    public var durationMicros: Int64
    /// Which processor instance ran the hop: `host:pid`.
    public var processor: String
    public var reason: String?

    public init(
        sequence: Int, step: String, kind: HopKind, outcome: HopOutcome, attempt: Int, startedAt: Date,
        durationMicros: Int64, processor: String, reason: String? = nil
    ) {
        self.sequence = sequence
        self.step = step
        self.kind = kind
        self.outcome = outcome
        self.attempt = attempt
        self.startedAt = startedAt
        self.durationMicros = durationMicros
        self.processor = processor
        self.reason = reason
    }
}

public struct CompensationRecord: Sendable, Hashable, Codable {
    public var step: String
    /// The queue that undoes the step, e.g. `slipway.charge-card.compensate`.
    public var address: String
    /// What the step left for its undo (a charge id, a reservation id...).
    public var data: JSONValue
    /// The hop that completed the step.
    public var sequence: Int
    /// How long the compensation may run before it is cancelled and counts as a failed attempt (else the
    /// processor's default): the step's `compensateTimeoutMs`, copied here when the step completed.
    public var timeoutMs: Int?

    public init(step: String, address: String, data: JSONValue, sequence: Int, timeoutMs: Int? = nil) {
        self.step = step
        self.address = address
        self.data = data
        self.sequence = sequence
        self.timeoutMs = timeoutMs
    }
}

public struct Fault: Sendable, Hashable, Codable {
    public var step: String
    public var sequence: Int
    public var reason: String
    public var attempts: Int

    public init(step: String, sequence: Int, reason: String, attempts: Int) {
        self.step = step
        self.sequence = sequence
        self.reason = reason
        self.attempts = attempts
    }
}
