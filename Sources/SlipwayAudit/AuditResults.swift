import Foundation
import SlipwayCore

/// A slip as the audit trail knows it: its current (or final) state and where it is.
public struct AuditSlip: Sendable, Hashable, Codable {
    public var slipID: String
    public var template: String
    /// The state after the slip's newest event.
    public var state: SlipState
    public var terminal: Bool
    /// The earliest and latest event time recorded for the slip.
    public var firstAt: Date
    public var lastAt: Date
    /// When the slip was created (known once its terminal event is recorded).
    public var createdAt: Date?
    /// The newest event: its sequence, attempt, kind, step, outcome and reason.
    public var lastSequence: Int
    public var lastAttempt: Int
    public var lastKind: String
    public var lastStep: String
    public var lastOutcome: String
    public var lastReason: String?
    /// Execute and compensate hops recorded (every attempt), and all events (hops, parked, terminal).
    public var hops: Int
    public var events: Int
    /// Where and why the slip stopped running forward, once it did.
    public var faultStep: String?
    public var faultReason: String?
    /// For a slip that has not ended, in `stuck` and `show`: the queue it waits on.
    public var waitingOn: AuditWaitingOn?
}

/// One recorded event of a slip, in hop order.
public struct AuditHop: Sendable, Hashable, Codable {
    public var eventID: String
    public var sequence: Int
    public var attempt: Int
    /// `execute`, `compensate`, `parked` or `terminal`.
    public var kind: String
    public var step: String
    /// The hop's outcome; for `parked`, the reason code; for `terminal`, the final state.
    public var outcome: String
    /// The slip's state after the event.
    public var state: SlipState
    public var processor: String
    public var startedAt: Date?
    public var durationMicros: Int64?
    public var at: Date
    public var reason: String?
}

/// `show`: the slip and every event recorded for it, in hop order (sequence, attempt, kind rank).
public struct AuditTimeline: Sendable, Hashable, Codable {
    public var slip: AuditSlip
    public var hops: [AuditHop]
}

/// `list`'s filters. `step` matches the slip's last step or the step it faulted at; `since` and `until` bound the time
/// of its newest event (inclusive).
public struct AuditSlipFilter: Sendable, Hashable, Codable {
    public static let defaultLimit = 50

    public var state: SlipState?
    public var template: String?
    public var step: String?
    public var since: Date?
    public var until: Date?
    public var limit: Int

    public init(
        state: SlipState? = nil, template: String? = nil, step: String? = nil, since: Date? = nil, until: Date? = nil,
        limit: Int = AuditSlipFilter.defaultLimit
    ) {
        self.state = state
        self.template = template
        self.step = step
        self.since = since
        self.until = until
        self.limit = limit
    }
}

/// `list`: slips newest first (by their newest event); `more` when the limit cut the list short.
public struct AuditSlipList: Sendable, Hashable, Codable {
    public var slips: [AuditSlip]
    public var more: Bool
}

/// `stats`, per step and kind (`execute`, `compensate`; `parked`: messages parked by that step's processors).
public struct AuditStepStats: Sendable, Hashable, Codable {
    public var step: String
    public var kind: String
    /// Attempts recorded (for `parked`: messages parked).
    public var hops: Int
    public var completed: Int
    public var faulted: Int
    public var retried: Int
    public var failed: Int
    /// `faulted + failed` (for `parked`: every parked message).
    public var failures: Int
    /// `retried`: attempts that threw and ran again.
    public var retries: Int
    /// Durations: exact mean, minimum and maximum; percentiles from log-scale buckets, within
    /// `AuditStats.percentilePrecision` of the exact nearest-rank value.
    public var meanMicros: Double?
    public var minMicros: Int64?
    public var p50Micros: Double?
    public var p95Micros: Double?
    public var p99Micros: Double?
    public var maxMicros: Int64?
}

/// `stats`, per template: how many slips are in each state now.
public struct AuditTemplateStats: Sendable, Hashable, Codable {
    public var template: String
    public var slips: Int
    public var states: [String: Int]
}

public struct AuditStats: Sendable, Hashable, Codable {
    public var slips: Int
    /// Rows in the hop table (hops, parked and terminal events), and the execute and compensate hops among them.
    public var events: Int
    public var hops: Int
    public var firstAt: Date?
    public var lastAt: Date?
    /// The largest relative error of a reported percentile (0.0219: 2.19 %).
    public var percentilePrecision: Double
    public var steps: [AuditStepStats]
    public var templates: [AuditTemplateStats]
}

/// `stuck`: slips not in a terminal state whose newest event is older than the cutoff, oldest first.
public struct AuditStuckList: Sendable, Hashable, Codable {
    public var olderThanSeconds: Double
    public var cutoff: Date
    public var total: Int
    public var slips: [AuditSlip]
}

/// A fault (an execute that faulted, a compensation that failed) or a parked message.
public struct AuditFailure: Sendable, Hashable, Codable {
    public var at: Date
    public var slipID: String
    public var template: String
    public var step: String
    public var kind: String
    public var sequence: Int
    public var attempt: Int
    /// `faulted`, `failed`, or for `parked` the reason code (`malformed`, `misrouted`...).
    public var outcome: String
    public var processor: String
    public var reason: String?
}

/// `failures`: newest first; `total` counts every failure in the window, `failures` holds at most the limit.
public struct AuditFailureList: Sendable, Hashable, Codable {
    public var since: Date
    public var until: Date?
    public var total: Int
    public var failures: [AuditFailure]
}

/// What a slip that has not ended waits for: a step's queue, or the dead-letter queue.
///
/// Hop events do not carry the itinerary, so after a completed step the audit trail cannot know the next one for
/// sure: `certain` is then false, `step` is the step that followed the same step in another slip of the template (if
/// one did), and `note` says so. While compensating, the next undo is the newest completed step not yet compensated,
/// unless that step had nothing to undo (which no event says).
public struct AuditWaitingOn: Sendable, Hashable, Codable {
    /// `execute` or `compensate` (the step's queue, `<prefix>.<step>.<kind>`), or `dead-letters` for a parked slip.
    public var kind: String
    /// The step; nil when the audit trail has no idea (or, for `dead-letters`, the step whose processor parked it).
    public var step: String?
    public var certain: Bool
    public var note: String?

    public init(kind: String, step: String?, certain: Bool, note: String? = nil) {
        self.kind = kind
        self.step = step
        self.certain = certain
        self.note = note
    }

    /// `charge-card.execute` (the queue without its prefix), `dead-letters`; `?` marks a guess.
    public var queue: String {
        if kind == "dead-letters" { return kind }
        return "\(step ?? "(next step)").\(kind)" + (certain ? "" : "?")
    }
}
