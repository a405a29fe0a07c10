import Foundation
import GRDB
import Logging
import ServiceLifecycle
import Slipway
import SlipwayCore
import SlipwayTransport

/// Publishes the outbox's pending slips, oldest first, in batches, with the broker's confirms; marks each batch sent
/// in one transaction. A failed batch (broker down, a publish that timed out, a refusal) counts an attempt for each of
/// its slips, with the error, and is tried again after a capped exponential backoff: the relay never gives up on a
/// slip. It wakes every `pollInterval`, and at once when this process enqueues.
///
/// A crash after the publish and before the batch is marked sent publishes the batch again at the next start. That is
/// harmless: each message is the slip at its first hop, with the same slip id and sequence, and the first step's hop
/// record recognises a hop it has seen (docs/exactly-once.md): the handler does not run again.
///
/// On SQLite, run one relay per database: two would each publish the same pending slips (harmless, as above, but twice
/// the work). On PostgreSQL (`PostgresOutbox`) several may run: each claims its batch with row locks.
/// A graceful shutdown lets the batch in flight finish (published and marked sent, or its failure recorded), then
/// `run` returns. Sent slips are deleted after `retention`.
public struct OutboxRelay: Service {
    public struct Configuration: Sendable {
        /// How long the relay sleeps when nothing is due (an enqueue in this process wakes it earlier).
        public var pollInterval: Duration = .milliseconds(200)
        /// Slips published per confirm wait, and marked sent per transaction.
        public var batchSize = 200
        /// The wait after a slip's first failed attempt; it doubles with each further one, up to `maxBackoff`.
        public var initialBackoff: Duration = .seconds(1)
        public var maxBackoff: Duration = .seconds(60)
        /// How long sent slips stay in the table (for `slip outbox list --all`) before the relay deletes them.
        public var retention: Duration = .seconds(86_400)

        public init() {}

        /// The wait before attempt `attempts + 1`, after `attempts` failed ones.
        public func backoff(afterAttempts attempts: Int) -> Duration {
            let doublings = min(max(attempts - 1, 0), 30)
            let wait = initialBackoff * (1 << doublings)
            return min(wait, maxBackoff)
        }
    }

    public let outbox: any OutboxStorage
    public let sender: SlipSender
    public let configuration: Configuration
    private let logger: Logger

    public init(
        outbox: any OutboxStorage, transport: any MessageTransport, configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "slipway.outbox")
    ) {
        self.outbox = outbox
        self.sender = SlipSender(
            transport: transport, topology: outbox.topology, limits: outbox.codec.limits, signing: outbox.signing)
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        var lastPrune = ContinuousClock.now - .seconds(3600)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            var relayedFullBatch = false
            do {
                relayedFullBatch = try await relayBatch() == configuration.batchSize
                if ContinuousClock.now - lastPrune >= .seconds(60) {
                    lastPrune = .now
                    try await prune()
                }
            } catch {
                // The database failed (busy, full): nothing is lost; try again at the next poll.
                logger.error("outbox relay: \(error)")
            }
            if relayedFullBatch { continue }
            let wakeUp = outbox.wakeUp
            await withGracefulShutdownHandler {
                await wakeUp.wait(upTo: configuration.pollInterval)
            } onGracefulShutdown: {
                wakeUp.signal()
            }
        }
    }

    /// Publishes one batch of the slips due by `now`; how many went out (0 if none was due or the publish failed).
    @discardableResult
    public func relayBatch(now: Date = Date()) async throws -> Int {
        let (sender, configuration, logger) = (self.sender, self.configuration, self.logger)
        return try await outbox.relayDue(now: now, limit: configuration.batchSize) { slips in
            Failpoint.reach(.outboxBeforePublish)
            do {
                try await sender.publish(slips.map(\.message))
                return .sent(at: max(now, Date()))
            } catch {
                let failedAt = max(now, Date())
                logger.warning(
                    "outbox relay: \(slips.count) slip(s) not published, tried again after a backoff: \(error)")
                return .failed(
                    error: "\(error)",
                    retries: slips.map { slip in
                        let attempts = slip.attempts + 1
                        return OutboxRetry(
                            slipID: slip.slipID, attempts: attempts,
                            nextAttemptAt: failedAt.addingTimeInterval(configuration.backoff(afterAttempts: attempts).seconds))
                    })
            }
        }
    }

    /// Deletes the slips sent longer than `retention` ago.
    public func prune(now: Date = Date()) async throws {
        let cutoff = now.addingTimeInterval(-configuration.retention.seconds)
        let deleted = try await outbox.pruneSent(before: cutoff)
        if deleted > 0 { logger.debug("outbox relay: deleted \(deleted) sent slip(s) past their retention") }
    }
}
