import Foundation

// TEMPORARY, for the issue16-postgres branch only: the claim helper's branch implements the claim API for the SQLite
// and in-memory stores. These defaults (no coordination: today's behaviour) only let this branch compile; delete this
// file when merging.
extension HopRecordStore {
    public func claim(slipID: String, sequence: Int, owner: String, lease: Duration) async throws -> HopClaimResult {
        if let record = try await record(slipID: slipID, sequence: sequence) { return .recorded(record) }
        return .claimed
    }

    public func renewClaim(slipID: String, sequence: Int, owner: String, lease: Duration) async throws -> Bool { true }

    public func releaseClaim(slipID: String, sequence: Int, owner: String) async throws {}
}
