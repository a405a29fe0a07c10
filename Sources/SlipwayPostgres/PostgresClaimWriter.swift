import Foundation
import Logging
import NIOCore
import PostgresNIO
import SlipwayCore
import SlipwayStores
import SlipwayTransport

/// Group commit for claims, as `PostgresRecordWriter` does for saves: the claims of concurrent hops go to the database
/// in one call of `slipway_claim` (`PostgresSchema.claimFunction`), one round trip and one commit for the batch. A claim
/// must be durable before its hop runs, so a commit per claim would make every hop wait for the disk once more; batched,
/// a busy processor waits for one commit for many claims. An idle processor claims at once. The batches are written
/// from the hops' own tasks (`PostgresGroupCommit`).
///
/// Hops are claimed in key order, so that two processes claiming overlapping batches lock the claim rows in the same
/// order.
final class PostgresClaimWriter: Sendable {
    struct Claim: Sendable {
        var slipID: String
        var sequence: Int
        var owner: String
        var lease: Duration
    }

    static let batchLimit = 500
    static let batchesInFlight = 4

    private let batches: PostgresGroupCommit<Claim, HopClaimResult>

    init(client: PostgresClient, step: String, logger: Logger) {
        batches = PostgresGroupCommit(batchLimit: Self.batchLimit, writersAtOnce: Self.batchesInFlight) { claims in
            await Self.write(client, step, logger, claims)
        }
    }

    func claim(_ claim: Claim) async throws -> HopClaimResult {
        try await batches.submit(claim).get()
    }

    /// Refuses later claims with `error`; returns once those before are written.
    func close(_ error: any Error) async {
        await batches.close(error)
    }

    /// Claims a batch; returns, for each claim in order, its result.
    static func write(
        _ client: PostgresClient, _ step: String, _ logger: Logger, _ claims: [Claim]
    ) async -> [Result<HopClaimResult, any Error>] {
        // The lease is one per call; a batch mixing leases (a store shared by processors configured differently) is
        // written a lease at a time, each call committed or failed on its own.
        var results = [Result<HopClaimResult, any Error>?](repeating: nil, count: claims.count)
        let byLease = Dictionary(grouping: claims.indices, by: { claims[$0].lease })
        for (lease, indices) in byLease {
            let sorted = indices.sorted {
                (claims[$0].slipID, claims[$0].sequence) < (claims[$1].slipID, claims[$1].sequence)
            }
            var attempt = 1
            while true {
                do {
                    let answers = try await writeOnce(client, step, logger, sorted.map { claims[$0] }, lease: lease)
                    for (index, answer) in zip(sorted, answers) { results[index] = answer }
                    break
                } catch let error as PSQLError where attempt < 3 && error.serverInfo?[.sqlState] == "40P01" {
                    // A deadlock with another process's save (which deletes claims): rolled back; claim again.
                    attempt += 1
                } catch {
                    let failure = PostgresStoreError(
                        "database", "claiming a hop in PostgreSQL failed: \(describe(error))")
                    for index in sorted { results[index] = .failure(failure) }
                    break
                }
            }
        }
        return results.map { $0 ?? .failure(PostgresStoreError("database", "a claim went unanswered")) }
    }

    private static func writeOnce(
        _ client: PostgresClient, _ step: String, _ logger: Logger, _ claims: [Claim], lease: Duration
    ) async throws -> [Result<HopClaimResult, any Error>] {
        let rows = try await client.query(
            """
            SELECT claim_index, claim_outcome, held_by, held_until, record_kind, record_outcome, record_outgoing,
                record_forwarded, record_recorded_at
            FROM slipway_claim(\(step), \(claims.map(\.slipID))::TEXT[], \(claims.map(\.sequence))::INT8[],
                \(claims.map(\.owner))::TEXT[], \(lease.seconds)::FLOAT8)
            """, logger: logger)
        var answers = [Result<HopClaimResult, any Error>](
            repeating: .failure(PostgresStoreError("database", "a claim went unanswered")), count: claims.count)
        for try await row in rows {
            let (index, outcome, holder, until, kind, recordOutcome, outgoing, forwarded, recordedAt) = try row.decode(
                (Int, String, String?, Date?, String?, String?, Data?, Bool?, Double?).self)
            guard (1...claims.count).contains(index) else { continue }
            let claim = claims[index - 1]
            answers[index - 1] = Result {
                switch outcome {
                case "claimed":
                    return .claimed
                case "held":
                    return .held(by: holder ?? "?", until: until ?? Date())
                case "recorded":
                    guard let kind, let recordOutcome, let outgoing, let forwarded, let recordedAt else {
                        throw PostgresStoreError("corrupt-record", "the record of hop \(claim.sequence) of slip \(claim.slipID) is incomplete")
                    }
                    let messages: [OutgoingMessage]
                    do {
                        messages = try OutgoingMessageBlob.decode(outgoing)
                    } catch {
                        throw PostgresStoreError(
                            "corrupt-record", "the record of hop \(claim.sequence) of slip \(claim.slipID) cannot be read")
                    }
                    return .recorded(
                        HopRecord(
                            slipID: claim.slipID, sequence: claim.sequence, step: step,
                            kind: HopKind(rawValue: kind) ?? .execute, outcome: HopRecordOutcome(rawValue: recordOutcome), outgoing: messages,
                            forwarded: forwarded, recordedAt: Date(timeIntervalSince1970: recordedAt)))
                default:
                    throw PostgresStoreError(
                        "database", "the claim of hop \(claim.sequence) of slip \(claim.slipID) kept changing hands")
                }
            }
        }
        return answers
    }
}
