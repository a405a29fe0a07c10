import Foundation
import SlipwayCore
import SlipwayTransport

/// What a processor remembers of a hop it ran: enough to forward the hop's result again without running the step again.
public struct HopRecord: Sendable, Hashable, Codable {
    public var slipID: String
    public var sequence: Int
    public var step: String
    public var kind: HopKind
    /// `completed`, `faulted`, `failed`, `parked`: what the hop decided.
    public var outcome: String
    /// Everything the hop publishes (the next message, events), in order.
    public var outgoing: [OutgoingMessage]
    /// The broker confirmed every outgoing message.
    public var forwarded: Bool
    public var recordedAt: Date

    public init(
        slipID: String, sequence: Int, step: String, kind: HopKind, outcome: String, outgoing: [OutgoingMessage],
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
}
