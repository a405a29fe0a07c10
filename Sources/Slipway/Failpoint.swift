import Foundation

/// Points where a test can have a process SIGKILL itself, to prove what a crash exactly there leaves
/// (docs/exactly-once.md): in a processor's hop, `SLIPWAY_FAILPOINT=before-commit` (an inbox step's handler has
/// written, its transaction is not committed) or `after-commit` (the hop's record is committed, nothing is forwarded
/// yet); in a producer's outbox relay (SlipwayOutbox), `outbox-before-publish` (slips are committed in the outbox, the
/// relay has read a batch and publishes nothing yet). Read once at start; unset, a check is one comparison. Not a
/// setting for production: it kills the process the first time it gets there.
package enum Failpoint: String, Sendable {
    case beforeCommit = "before-commit"
    case afterCommit = "after-commit"
    case outboxBeforePublish = "outbox-before-publish"

    private static let armed: Failpoint? = ProcessInfo.processInfo.environment["SLIPWAY_FAILPOINT"].flatMap {
        Failpoint(rawValue: $0)
    }

    /// SIGKILLs this process when `point` is the one armed: no handler runs, nothing is flushed.
    package static func reach(_ point: Failpoint) {
        guard armed == point else { return }
        FileHandle.standardError.write(Data("slipway: SLIPWAY_FAILPOINT=\(point.rawValue) reached: SIGKILL\n".utf8))
        kill(getpid(), SIGKILL)
    }
}
