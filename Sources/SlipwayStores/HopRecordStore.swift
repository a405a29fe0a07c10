import Foundation
import SlipwayCore
import SlipwayTransport

/// What a processor remembers of a hop it ran: enough to forward the hop's result again without running the step again.
public struct HopRecord: Sendable, Hashable, Codable {
    public var slipID: String
    public var sequence: Int
    public var step: String
    public var kind: HopKind
    /// What the hop decided: `completed`, `faulted` or `terminated` (an execute hop), `compensated` or `failed` (a
    /// compensate hop). A parked message or a retry leaves no record.
    public var outcome: HopRecordOutcome
    /// Everything the hop publishes (the next message, events), in order.
    public var outgoing: [OutgoingMessage]
    /// The broker confirmed every outgoing message.
    public var forwarded: Bool
    public var recordedAt: Date

    public init(
        slipID: String, sequence: Int, step: String, kind: HopKind, outcome: HopRecordOutcome, outgoing: [OutgoingMessage],
        forwarded: Bool = false, recordedAt: Date = Date()
    ) {
        self.slipID = slipID
        self.sequence = sequence
        self.step = step
        self.kind = kind
        self.outcome = outcome
        self.outgoing = outgoing
        self.forwarded = forwarded
        self.recordedAt = recordedAt
    }
}

/// What a recorded hop decided. Kept in the record as its raw value.
public struct HopRecordOutcome: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// The step ran; the slip goes on to its next step (or ends completed).
    public static let completed = HopRecordOutcome(rawValue: "completed")
    /// The step faulted (a business failure, its last attempt failing, or the slip's deadline): the slip compensates.
    public static let faulted = HopRecordOutcome(rawValue: "faulted")
    /// The step ended the slip on purpose.
    public static let terminated = HopRecordOutcome(rawValue: "terminated")
    /// The undo ran; the walk back goes on.
    public static let compensated = HopRecordOutcome(rawValue: "compensated")
    /// The undo failed on its last attempt: the slip is parked as compensation-failed.
    public static let failed = HopRecordOutcome(rawValue: "failed")
}

/// What `claim` found for a hop.
public enum HopClaimResult: Sendable, Hashable {
    /// This owner holds the hop now: a new claim, its own claim again, or a claim whose holder's lease ran out (taken
    /// over).
    case claimed
    /// The hop is recorded: nothing to run (drop the delivery, or forward from the record).
    case recorded(HopRecord)
    /// Another owner holds a live claim until `until`.
    case held(by: String, until: Date)
}

/// What a hop's transaction came to (an inbox step's handler writing in the transaction that saves its record).
public enum HopTransactionResult: Sendable, Hashable {
    /// The handler's writes and this record committed together.
    case saved(HopRecord)
    /// The hop was recorded already (by an earlier delivery): the handler did not run, nothing was written.
    case found(HopRecord)
    /// No record was to be saved (a retry, a park): the handler's writes were rolled back.
    case notSaved
}

/// The idempotency record of hops: a hop is recorded before its result is published, so a redelivered message is
/// recognised and never runs its step again.
public protocol HopRecordStore: Sendable {
    /// The record of hop `sequence` of slip `slipID`, if this processor ran it.
    func record(slipID: String, sequence: Int) async throws -> HopRecord?
    /// Saves a new record. Saving a hop that is already recorded keeps the first record and returns it.
    @discardableResult
    func save(_ record: HopRecord) async throws -> HopRecord
    /// Notes that the broker confirmed everything the hop published.
    func markForwarded(slipID: String, sequence: Int) async throws
    /// Counts one more redelivery of a hop attempt that never finished, and returns the count so far. Only
    /// redelivered messages are counted, so a hop that runs normally costs nothing here.
    func noteRedelivery(slipID: String, sequence: Int, attempt: Int) async throws -> Int
    /// Claims hop `sequence` of slip `slipID` for `owner` (an instance: `host:pid`, unique per process) for `lease`.
    /// The first caller gets `.claimed`, and so does its owner claiming again; another owner while the claim is live
    /// gets `.held`; after the record is saved, everyone gets `.recorded`. A claim whose lease has run out is taken over
    /// (its holder died).
    func claim(slipID: String, sequence: Int, owner: String, lease: Duration) async throws -> HopClaimResult
    /// Extends a live claim `owner` holds; false when it no longer holds it (expired and taken over).
    func renewClaim(slipID: String, sequence: Int, owner: String, lease: Duration) async throws -> Bool
    /// Gives up `owner`'s claim without a record (a retry republished, a park, a failure before the record).
    func releaseClaim(slipID: String, sequence: Int, owner: String) async throws
}
