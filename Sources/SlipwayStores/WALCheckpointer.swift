import Foundation
import GRDB

/// Checkpoints a WAL database from a thread of its own, so that a hop never waits for one. Old records are pruned
/// there too.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses the WAL's size threshold, with a disk sync, and
/// the hop store commits on the calling task's thread: every few thousand hops one hop stalled for the length of an
/// fsync (tens of milliseconds on a busy disk), and with it a thread of Swift's two-thread cooperative pool. A passive
/// checkpoint here, four times a second, copies what committed since the last one without blocking readers or the
/// writer. Small and often beats large and rare: each checkpoint's disk syncs compete with the broker's, and at 200
/// slips/s the chain's p99 was 15–20 ms with one a second, 8–10 ms with four, and over 100 ms with one every 30 s
/// (docs/performance.md). One with nothing new to copy costs no sync. The automatic checkpoint stays on at a high
/// threshold, in case this thread falls behind.
final class WALCheckpointer: @unchecked Sendable {
    // Safe: `stopped` only under `condition`; `queue` only on the checkpointer's thread.
    private let condition = NSCondition()
    private var stopped = false
    private let path: String
    private var queue: DatabaseQueue?

    private let pruning: Pruning?

    /// Pages the WAL may reach before a commit checkpoints by itself (about 40 MB).
    static let fallbackAutocheckpointPages = 10_000

    /// Every `every`, `prune` deletes what was recorded more than `keepFor` ago.
    struct Pruning: Sendable {
        var keepFor: Duration
        var every: Duration
        var prune: @Sendable (DatabaseQueue, Date) throws -> Int
    }

    init(path: String, pruning: Pruning? = nil) {
        self.path = path
        self.pruning = pruning
    }

    /// Checkpoints (and prunes) from a thread of its own until `stop()`; returns when that thread has ended. Blocking
    /// calls (a checkpoint's disk syncs) stay off Swift's cooperative pool and the processor's loop.
    func run(interval: TimeInterval = 0.25) async {
        await withCheckedContinuation { (ended: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                self.loop(interval: interval)
                ended.resume()
            }
            thread.name = "slipway-wal-checkpoint"
            thread.start()
        }
    }

    private func openQueue() throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.busyMode = .timeout(1)
        return try DatabaseQueue(path: path, configuration: configuration)
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func loop(interval: TimeInterval) {
        let clock = ContinuousClock()
        var nextPrune = clock.now
        while true {
            condition.lock()
            if !stopped { _ = condition.wait(until: Date(timeIntervalSinceNow: interval)) }
            let stop = stopped
            condition.unlock()
            if stop { return }
            // Passive: copies what it can without waiting for anyone. A busy moment (even opening the file, while
            // other processes create it) is simply tried again on the next round.
            do {
                let queue = try self.queue ?? openQueue()
                self.queue = queue
                _ = try queue.writeWithoutTransaction { db in try db.checkpoint(.passive) }
                if let pruning, clock.now >= nextPrune {
                    nextPrune = clock.now.advanced(by: pruning.every)
                    _ = try pruning.prune(queue, Date(timeIntervalSinceNow: -(pruning.keepFor / .seconds(1))))
                }
            } catch {
                continue
            }
        }
    }
}
