/// A declare or a bind the publisher runs for a caller: tried on a live connection, and tried again after a backoff
/// while the broker is away, without holding up the loop in between (other connections may share it).
// Sendable by hand: it crosses to the loop's thread under the publisher's mutex, and `giveUpAt`, `backoff` and
// `retryAt` change only on that thread; its closures resume the caller's continuation, which any thread may do.
final class PublisherOperation: @unchecked Sendable {
    let doing: String
    var giveUpAt: ContinuousClock.Instant
    /// Runs the body and resumes its caller; throws (without resuming) when the connection failed it.
    let attempt: (AMQPConnection) throws -> Void
    let fail: (any Error) -> Void
    var backoff: Duration
    var retryAt: ContinuousClock.Instant?

    init(
        _ doing: String, giveUpAt: ContinuousClock.Instant, backoff: Duration,
        attempt: @escaping (AMQPConnection) throws -> Void, fail: @escaping (any Error) -> Void
    ) {
        self.doing = doing
        self.giveUpAt = giveUpAt
        self.backoff = backoff
        self.attempt = attempt
        self.fail = fail
    }
}
