import Foundation
import Logging
import Synchronization
import SlipwayStores

struct HopKey: Hashable, Sendable {
    var slipID: String
    var sequence: Int
}

/// One delivery of a hop at a time, across the instances and processes that share the hop record: the first to start a
/// hop claims it in the store (a lease, renewed while the handler runs); another delivery of the hop waits for the
/// claim to end, then finds the record. A claim whose holder died runs out and is taken over.
final class HopClaimer: Sendable {
    let store: any HopRecordStore
    /// Owns the claims: unique per process.
    let owner: String
    let lease: Duration
    let logger: Logger
    /// Two deliveries of one hop in this process wait for each other here, without touching the store.
    private let inFlight = InFlightHops()
    /// The hops whose claim this instance holds, renewed while they run.
    private let held = HeldClaims()

    init(store: any HopRecordStore, owner: String, lease: Duration, logger: Logger) {
        self.store = store
        self.owner = owner
        self.lease = lease
        self.logger = logger
    }

    /// Runs `body` while no other delivery of the hop runs in this process. If `body` throws, nothing was recorded:
    /// the claim is released so that the next delivery of the hop may run it at once.
    func exclusively(_ key: HopKey, _ body: () async throws -> Void) async throws {
        await inFlight.claim(key)
        do {
            try await body()
        } catch {
            // (After a save the claim is gone already, and this changes nothing.)
            held.end(key)
            try? await store.releaseClaim(slipID: key.slipID, sequence: key.sequence, owner: owner)
            await inFlight.release(key)
            throw error
        }
        await inFlight.release(key)
    }

    /// Claims the hop in the store, waiting while another instance holds it. Returns the hop's record when it has one
    /// (nothing to run), nil when this instance holds the claim and runs the hop.
    func claimOrRecord(_ key: HopKey, logger: Logger) async throws -> HopRecord? {
        var pause = Duration.milliseconds(10)
        let maxPause = min(Duration.seconds(1), lease / 4)
        var waited = false
        while true {
            switch try await store.claim(slipID: key.slipID, sequence: key.sequence, owner: owner, lease: lease) {
            case .claimed:
                if waited { logger.info("took the hop over from an instance whose claim ran out (did it die?)") }
                held.begin(key)
                return nil
            case .recorded(let record):
                guard waited, !record.forwarded else { return record }
                return try await awaitForward(record, pause: pause)
            case .held(let holder, let until):
                if !waited {
                    logger.info(
                        "another instance is running this hop: waiting for it",
                        metadata: ["hop.claimed_by": "\(holder)", "hop.claimed_until": "\(until)"])
                }
                waited = true
                try await Task.sleep(for: pause)
                pause = min(pause * 2, maxPause)
            }
        }
    }

    /// The instance we waited for recorded the hop and is forwarding its result: give it the time to, rather than
    /// sending a second copy. If it dies before, the result is forwarded from here.
    private func awaitForward(_ record: HopRecord, pause: Duration) async throws -> HopRecord {
        var pause = pause
        let deadline = ContinuousClock.now.advanced(by: lease)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .seconds(1))
            guard let now = try await store.record(slipID: record.slipID, sequence: record.sequence) else { break }
            if now.forwarded { return now }
        }
        return record
    }

    /// The hop is being saved: the save ends the claim, which needs no more renewing.
    func saving(_ key: HopKey) { held.end(key) }

    /// After the ack of a hop that recorded nothing (a retry, a park): a failure leaves the claim to expire, and only
    /// delays a retry that arrives before.
    func release(_ key: HopKey) async {
        held.end(key)
        do {
            try await store.releaseClaim(slipID: key.slipID, sequence: key.sequence, owner: owner)
        } catch {
            logger.warning("cannot release a hop's claim: it expires after its lease", metadata: ["error": "\(error)"])
        }
    }

    /// Renews the claims of the hops this instance runs, every third of a lease, until cancelled.
    func renewWhileRunning() async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: lease / 3) } catch { return }
            for key in held.current {
                do {
                    let stillHeld = try await store.renewClaim(
                        slipID: key.slipID, sequence: key.sequence, owner: owner, lease: lease)
                    if !stillHeld {
                        held.end(key)
                        logger.warning(
                            "lost the claim of a hop still running (its lease ran out): another instance may run it too",
                            metadata: ["slip.id": "\(key.slipID)", "hop.seq": "\(key.sequence)"])
                    }
                } catch {
                    logger.warning("cannot renew a hop's claim", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// Two deliveries of one hop never run at once in an instance: the second waits, then finds the first one's record.
actor InFlightHops {
    private var waiting: [HopKey: [CheckedContinuation<Void, Never>]] = [:]

    func claim(_ key: HopKey) async {
        while waiting[key] != nil {
            await withCheckedContinuation { continuation in waiting[key]!.append(continuation) }
        }
        waiting[key] = []
    }

    func release(_ key: HopKey) {
        let continuations = waiting.removeValue(forKey: key) ?? []
        for continuation in continuations { continuation.resume() }
    }
}

/// The claims this instance holds: a set under a lock, so that a hop pays no thread switch for it.
final class HeldClaims: Sendable {
    private let keys = Mutex<Set<HopKey>>([])

    func begin(_ key: HopKey) { _ = keys.withLock { $0.insert(key) } }
    func end(_ key: HopKey) { _ = keys.withLock { $0.remove(key) } }
    var current: [HopKey] { keys.withLock { Array($0) } }
}
