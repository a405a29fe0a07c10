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

    /// Every record, by slip and sequence.
    public var allRecords: [HopRecord] {
        records.values.sorted { ($0.slipID, $0.sequence) < ($1.slipID, $1.sequence) }
    }
}
