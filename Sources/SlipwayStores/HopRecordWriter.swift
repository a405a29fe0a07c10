import Foundation
import GRDB
import Synchronization
import SlipwayCore
import SlipwayTransport

/// Group commit for the hop record: saves from concurrent hops, and the forwarded marks of finished ones, are written
/// together in one transaction with prepared statements. A batch is whatever came while the previous one was being
/// committed, so an idle processor commits at once and a busy one commits many hops per transaction.
///
/// Claims go the same way: a claim must be committed (visible to the other processes sharing the file) before its
/// hop's handler runs, and concurrent hops' claims share one commit rather than paying one each.
///
/// No task of its own: the hop that finds no batch being written writes one, from its own task, after letting the
/// tasks already due on its executor add theirs (a yield); it then hands the next batch, if one is waiting, to the
/// first hop waiting in it.
final class HopRecordWriter: Sendable {
    /// What a waiting hop is told: its answer, or that it is to write the next batch itself.
    enum Answer {
        case saved(HopRecord)
        case claim(HopClaimResult)
        case renewed(Bool)
        case released
        case transacted(Result<HopTransactionResult, any Error>)
        case writeYourself
    }

    /// An inbox hop: its handler's writes and its record, in a savepoint of the batch's transaction.
    private struct PendingTransaction {
        var slipID: String
        var sequence: Int
        /// Runs the handler and returns the record to save with its writes (nil: roll them back).
        var work: @Sendable (Database) throws -> HopRecord?
        var continuation: CheckedContinuation<Answer, any Error>?
    }

    private struct PendingSave {
        var record: HopRecord
        var outgoing: Data
        /// Nil for the writing hop's own.
        var continuation: CheckedContinuation<Answer, any Error>?
    }

    enum ClaimChange {
        case claim(lease: Double)
        case renew(lease: Double)
        case release
    }

    struct PendingClaim {
        var slipID: String
        var sequence: Int
        var owner: String
        var change: ClaimChange
        fileprivate var continuation: CheckedContinuation<Answer, any Error>?

        init(slipID: String, sequence: Int, owner: String, change: ClaimChange) {
            self.slipID = slipID
            self.sequence = sequence
            self.owner = owner
            self.change = change
        }
    }

    private enum Pending {
        case save(PendingSave)
        case claim(PendingClaim)
        case transaction(PendingTransaction)
    }

    private struct State {
        var saves: [PendingSave] = []
        var forwarded: [(slipID: String, sequence: Int)] = []
        var claims: [PendingClaim] = []
        var transactions: [PendingTransaction] = []
        var writing = false
    }

    private let pool: DatabasePool
    private let state = Mutex(State())

    init(pool: DatabasePool) {
        self.pool = pool
    }

    /// Returns once the record is committed: the new one, or the one already there for the same hop.
    func save(_ record: HopRecord) async throws -> HopRecord {
        let save = PendingSave(record: record, outgoing: OutgoingMessageBlob.encode(record.outgoing))
        guard case .saved(let saved) = try await submit(.save(save)) else { preconditionFailure("save answered out of order") }
        return saved
    }

    /// Runs `work` in a savepoint of the next batch's transaction, unless the hop is recorded already, and saves the
    /// record it returns (nil rolls its writes back). A failure of `work` fails this hop alone, not its batch.
    func transact(
        slipID: String, sequence: Int, _ work: @escaping @Sendable (Database) throws -> HopRecord?
    ) async throws -> HopTransactionResult {
        let pending = PendingTransaction(slipID: slipID, sequence: sequence, work: work)
        guard case .transacted(let result) = try await submit(.transaction(pending)) else {
            preconditionFailure("transaction answered out of order")
        }
        return try result.get()
    }

    /// A claim, renewal or release, answered once its batch is committed.
    func claim(_ claim: PendingClaim) async throws -> Answer {
        try await submit(.claim(claim))
    }

    /// Queued, not awaited by the hop unless it writes the batch itself: it goes with the next batch.
    func markForwarded(slipID: String, sequence: Int) async {
        let writes = state.withLock { state in
            state.forwarded.append((slipID, sequence))
            defer { state.writing = true }
            return !state.writing
        }
        if writes {
            await Task.yield()
            // A failure loses only marks (and is the others' to report): the hop's result goes out again if its
            // message comes back.
            _ = try? writeBatches(own: nil)
        }
    }

    /// Adds `pending` to the next batch and waits for its answer, or writes the batch when none is being written.
    private func submit(_ pending: Pending) async throws -> Answer {
        let answer = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Answer, any Error>) in
            let writes = state.withLock { state in
                if !state.writing {
                    state.writing = true
                    return true
                }
                switch pending {
                case .save(var save):
                    save.continuation = continuation
                    state.saves.append(save)
                case .claim(var claim):
                    claim.continuation = continuation
                    state.claims.append(claim)
                case .transaction(var transaction):
                    transaction.continuation = continuation
                    state.transactions.append(transaction)
                }
                return false
            }
            if writes { continuation.resume(returning: .writeYourself) }
        }
        guard case .writeYourself = answer else { return answer }
        // Hops already due on this executor add theirs first: a batch rather than a commit each.
        await Task.yield()
        guard let own = try writeBatches(own: pending) else { preconditionFailure("a batch without its writer's answer") }
        return own
    }

    /// Writes the batch holding `own` (nil for none) and what waits, then hands the next batch to the first hop
    /// waiting in it (a claim's before a save's: it is the shorter wait), or writes the marks that came meanwhile, or
    /// ends the writing. Returns `own`'s answer; throws its failure.
    private func writeBatches(own: Pending?) throws -> Answer? {
        var ownAnswer: Result<Answer, any Error>?
        var own = own
        while true {
            var (saves, forwarded, claims, transactions) = state.withLock { state in
                defer {
                    state.saves.removeAll(keepingCapacity: true)
                    state.forwarded.removeAll(keepingCapacity: true)
                    state.claims.removeAll(keepingCapacity: true)
                    state.transactions.removeAll(keepingCapacity: true)
                }
                return (state.saves, state.forwarded, state.claims, state.transactions)
            }
            switch own {
            case .save(let save): saves.append(save)
            case .claim(let claim): claims.append(claim)
            case .transaction(let transaction): transactions.append(transaction)
            case nil: break
            }
            do {
                // Synchronous, on this task's thread: one commit (no fsync in WAL with synchronous=NORMAL) for the
                // whole batch, without the two thread switches of an asynchronous write.
                let (results, answers, transacted) = try writeNow(saves, forwarded, claims, transactions)
                for (transaction, result) in zip(transactions, transacted) {
                    if let continuation = transaction.continuation {
                        continuation.resume(returning: .transacted(result))
                    } else {
                        ownAnswer = .success(.transacted(result))
                    }
                }
                for (save, result) in zip(saves, results) {
                    if let continuation = save.continuation {
                        continuation.resume(returning: .saved(result))
                    } else {
                        ownAnswer = .success(.saved(result))
                    }
                }
                for (claim, answer) in zip(claims, answers) {
                    if let continuation = claim.continuation {
                        continuation.resume(returning: answer)
                    } else {
                        ownAnswer = .success(answer)
                    }
                }
            } catch {
                // The saves fail (their hops go back to the queue); lost marks only mean a second forward later.
                for save in saves { save.continuation?.resume(throwing: error) }
                for claim in claims { claim.continuation?.resume(throwing: error) }
                for transaction in transactions { transaction.continuation?.resume(throwing: error) }
                if own != nil { ownAnswer = .failure(error) }
            }
            own = nil
            enum Next {
                case handOver(CheckedContinuation<Answer, any Error>)
                case writeMarks
                case done
            }
            let next = state.withLock { state -> Next in
                if let index = state.claims.firstIndex(where: { $0.continuation != nil }) {
                    return .handOver(state.claims.remove(at: index).continuation!)
                }
                if let index = state.saves.firstIndex(where: { $0.continuation != nil }) {
                    return .handOver(state.saves.remove(at: index).continuation!)
                }
                if let index = state.transactions.firstIndex(where: { $0.continuation != nil }) {
                    return .handOver(state.transactions.remove(at: index).continuation!)
                }
                if !state.forwarded.isEmpty { return .writeMarks }
                state.writing = false
                return .done
            }
            switch next {
            case .handOver(let writer):
                writer.resume(returning: .writeYourself)
                return try ownAnswer?.get()
            case .writeMarks:
                continue
            case .done:
                return try ownAnswer?.get()
            }
        }
    }

    private func writeNow(
        _ saves: [PendingSave], _ forwarded: [(slipID: String, sequence: Int)], _ claims: [PendingClaim],
        _ transactions: [PendingTransaction]
    ) throws -> ([HopRecord], [Answer], [Result<HopTransactionResult, any Error>]) {
        try pool.write { db in
            let transacted = try Self.write(transactions, db)
            return (try Self.write(saves, forwarded, db), try Self.write(claims, db), transacted)
        }
    }

    /// Each in a savepoint of its own: a handler that throws, or a record not to be saved, rolls back that hop's
    /// writes and nothing else of the batch.
    private static func write(
        _ transactions: [PendingTransaction], _ db: Database
    ) throws -> [Result<HopTransactionResult, any Error>] {
        if transactions.isEmpty { return [] }
        let existing = try db.cachedStatement(sql: "SELECT * FROM hop_record WHERE slip_id = ? AND sequence = ?")
        return try transactions.map { transaction in
            // Recorded already (a redelivery after the commit, a claim taken over): the handler never runs again.
            if let row = try Row.fetchOne(existing, arguments: [transaction.slipID, transaction.sequence]) {
                return .success(.found(try SQLiteHopRecordStore.decode(row)))
            }
            do {
                var saved: HopRecord?
                try db.inCachedSavepoint("hop") {
                    guard let record = try transaction.work(db) else { return false }
                    let save = PendingSave(record: record, outgoing: OutgoingMessageBlob.encode(record.outgoing))
                    saved = try Self.write([save], [], db).first
                    return true
                }
                return .success(saved.map(HopTransactionResult.saved) ?? .notSaved)
            } catch {
                return .failure(error)
            }
        }
    }

    /// After the saves of the same batch: a claim of a hop saved in it finds the record.
    private static func write(_ claims: [PendingClaim], _ db: Database) throws -> [Answer] {
        if claims.isEmpty { return [] }
        let now = Date().timeIntervalSince1970
        var answers: [Answer] = []
        answers.reserveCapacity(claims.count)
        for claim in claims {
            let key: StatementArguments = [claim.slipID, claim.sequence]
            switch claim.change {
            case .claim(let lease):
                let record = try db.cachedStatement(sql: "SELECT * FROM hop_record WHERE slip_id = ? AND sequence = ?")
                if let row = try Row.fetchOne(record, arguments: key) {
                    answers.append(.claim(.recorded(try SQLiteHopRecordStore.decode(row))))
                    continue
                }
                // Taken when free, expired (its holder died), or already this owner's (a claim whose release failed;
                // an owner runs one delivery of a hop at a time).
                let take = try db.cachedStatement(
                    sql: """
                        INSERT INTO hop_claim (slip_id, sequence, owner, until) VALUES (?, ?, ?, ?)
                        ON CONFLICT (slip_id, sequence) DO UPDATE SET owner = excluded.owner, until = excluded.until
                        WHERE hop_claim.until <= ? OR hop_claim.owner = excluded.owner
                        """)
                try take.execute(arguments: [claim.slipID, claim.sequence, claim.owner, now + lease, now])
                if db.changesCount == 1 {
                    answers.append(.claim(.claimed))
                } else {
                    let holder = try db.cachedStatement(
                        sql: "SELECT owner, until FROM hop_claim WHERE slip_id = ? AND sequence = ?")
                    let row = try Row.fetchOne(holder, arguments: key)
                    // A file is shared by processes of one host: a holder on this host that is no longer running (killed,
                    // restarted under a new pid) need not be waited for until its lease runs out.
                    if let owner: String = row?["owner"], Self.isDeadProcessOfThisHost(owner) {
                        let steal = try db.cachedStatement(
                            sql: "UPDATE hop_claim SET owner = ?, until = ? WHERE slip_id = ? AND sequence = ? AND owner = ?")
                        try steal.execute(arguments: [claim.owner, now + lease, claim.slipID, claim.sequence, owner])
                        if db.changesCount == 1 {
                            answers.append(.claim(.claimed))
                            continue
                        }
                    }
                    answers.append(
                        .claim(
                            .held(
                                by: row?["owner"] ?? "?",
                                until: Date(timeIntervalSince1970: row?["until"] ?? now))))
                }
            case .renew(let lease):
                let renew = try db.cachedStatement(
                    sql: "UPDATE hop_claim SET until = ? WHERE slip_id = ? AND sequence = ? AND owner = ? AND until > ?")
                try renew.execute(arguments: [now + lease, claim.slipID, claim.sequence, claim.owner, now])
                answers.append(.renewed(db.changesCount == 1))
            case .release:
                let release = try db.cachedStatement(
                    sql: "DELETE FROM hop_claim WHERE slip_id = ? AND sequence = ? AND owner = ?")
                try release.execute(arguments: [claim.slipID, claim.sequence, claim.owner])
                answers.append(.released)
            }
        }
        return answers
    }

    /// An owner named `host:pid` (the default instance name) on this host, whose process has ended.
    static func isDeadProcessOfThisHost(_ owner: String) -> Bool {
        guard let colon = owner.lastIndex(of: ":"), let pid = Int32(owner[owner.index(after: colon)...]), pid > 0,
            owner[..<colon] == ProcessInfo.processInfo.hostName, pid != ProcessInfo.processInfo.processIdentifier
        else { return false }
        return kill(pid, 0) == -1 && errno == ESRCH
    }

    private static func write(
        _ saves: [PendingSave], _ forwarded: [(slipID: String, sequence: Int)], _ db: Database
    ) throws -> [HopRecord] {
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO hop_record (slip_id, sequence, step, kind, outcome, outgoing, forwarded, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (slip_id, sequence) DO NOTHING
                """)
        // The record ends the hop's claim: later claims find the record.
        let unclaim = try db.cachedStatement(sql: "DELETE FROM hop_claim WHERE slip_id = ? AND sequence = ?")
        var results: [HopRecord] = []
        results.reserveCapacity(saves.count)
        for save in saves {
            let record = save.record
            try unclaim.execute(arguments: [record.slipID, record.sequence])
            try insert.execute(arguments: [
                record.slipID, record.sequence, record.step, record.kind.rawValue, record.outcome.rawValue, save.outgoing,
                record.forwarded, record.recordedAt.timeIntervalSince1970,
            ])
            if db.changesCount == 1 {
                results.append(record)
            } else {
                let existing = try Row.fetchOne(
                    db, sql: "SELECT * FROM hop_record WHERE slip_id = ? AND sequence = ?",
                    arguments: [record.slipID, record.sequence])
                results.append(try existing.map(SQLiteHopRecordStore.decode) ?? record)
            }
        }
        let mark = try db.cachedStatement(sql: "UPDATE hop_record SET forwarded = 1 WHERE slip_id = ? AND sequence = ?")
        for hop in forwarded { try mark.execute(arguments: [hop.slipID, hop.sequence]) }
        return results
    }
}
