import Foundation
import Slipway
import SlipwayStores
import SlipwayTransport
import Synchronization

/// The idempotency record of hops in memory, with `SQLiteHopRecordStore`'s semantics: `save` keeps the first record of a
/// hop and returns it. Share one instance between a "crashed" and a "restarted" runtime to model a store that
/// survives the process.
public actor InMemoryHopRecordStore: HopRecordStore {
    private struct Key: Hashable {
        var slipID: String
        var sequence: Int
    }

    private var records: [Key: HopRecord] = [:]

    public init() {}

    public func record(slipID: String, sequence: Int) -> HopRecord? {
        records[Key(slipID: slipID, sequence: sequence)]
    }

    @discardableResult
    public func save(_ record: HopRecord) -> HopRecord {
        let key = Key(slipID: record.slipID, sequence: record.sequence)
        claims[key] = nil  // The record ends the hop's claim.
        if let existing = records[key] { return existing }
        records[key] = record
        return record
    }

    public func markForwarded(slipID: String, sequence: Int) {
        records[Key(slipID: slipID, sequence: sequence)]?.forwarded = true
    }

    private var redeliveries: [String: Int] = [:]

    public func noteRedelivery(slipID: String, sequence: Int, attempt: Int) -> Int {
        let key = "\(slipID)/\(sequence)/\(attempt)"
        redeliveries[key, default: 0] += 1
        return redeliveries[key]!
    }

    private var claims: [Key: (owner: String, until: Date)] = [:]

    public func claim(slipID: String, sequence: Int, owner: String, lease: Duration) -> HopClaimResult {
        let key = Key(slipID: slipID, sequence: sequence)
        if let record = records[key] { return .recorded(record) }
        let now = Date()
        if let held = claims[key], held.until > now, held.owner != owner { return .held(by: held.owner, until: held.until) }
        claims[key] = (owner, now.addingTimeInterval(lease.seconds))
        return .claimed
    }

    public func renewClaim(slipID: String, sequence: Int, owner: String, lease: Duration) -> Bool {
        let key = Key(slipID: slipID, sequence: sequence)
        let now = Date()
        guard let held = claims[key], held.owner == owner, held.until > now else { return false }
        claims[key] = (owner, now.addingTimeInterval(lease.seconds))
        return true
    }

    public func releaseClaim(slipID: String, sequence: Int, owner: String) {
        let key = Key(slipID: slipID, sequence: sequence)
        if claims[key]?.owner == owner { claims[key] = nil }
    }

    /// The hops claimed and not yet recorded or released, by slip and sequence.
    public var claimedHops: [(slipID: String, sequence: Int, owner: String)] {
        claims.map { ($0.key.slipID, $0.key.sequence, $0.value.owner) }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
    }

    /// Every record, by slip and sequence.
    public var allRecords: [HopRecord] {
        records.values.sorted { ($0.slipID, $0.sequence) < ($1.slipID, $1.sequence) }
    }
}
