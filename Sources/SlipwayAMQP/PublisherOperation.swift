import Logging
import SlipwayTransport

/// A declare or a bind the publisher runs for a caller: tried on a live connection, and tried again after a backoff
/// while the broker is away, without holding up the loop in between (other connections may share it).
/// A value: it crosses to the loop's thread under the publisher's mutex, and changes only there after that.
struct PublisherOperation: Sendable {
    let doing: String
    var giveUpAt: ContinuousClock.Instant
    /// Runs the body and resumes its caller; throws (without resuming) when the connection failed it.
    let attempt: @Sendable (AMQPConnection) throws -> Void
    let fail: @Sendable (any Error) -> Void
    var backoff: Duration
    var retryAt: ContinuousClock.Instant?

    init(
        _ doing: String, giveUpAt: ContinuousClock.Instant, backoff: Duration,
        attempt: @escaping @Sendable (AMQPConnection) throws -> Void, fail: @escaping @Sendable (any Error) -> Void
    ) {
        self.doing = doing
        self.giveUpAt = giveUpAt
        self.backoff = backoff
        self.attempt = attempt
        self.fail = fail
    }
}

/// The declares and binds waiting to run, on the publisher's loop thread: each tried when its time has come, and
/// after a failure tried again after its backoff (doubling, up to the reconnect maximum) until its deadline.
struct PublisherOperations {
    private var waiting: [PublisherOperation] = []

    var isEmpty: Bool { waiting.isEmpty }

    mutating func append(_ operation: PublisherOperation) { waiting.append(operation) }

    /// The broker blocked publishing from `since` to `now`: that time does not count against the deadlines.
    mutating func extendDeadlines(
        blockedSince since: ContinuousClock.Instant, now: ContinuousClock.Instant, deadline: Duration
    ) {
        for index in waiting.indices {
            waiting[index].giveUpAt = waiting[index].giveUpAt.extended(blockedSince: since, now: now, deadline: deadline)
        }
    }

    /// Runs those whose time has come on `connection()` (the live connection, opened if need be); after a failure
    /// `connectionFailed` drops it. Returns those still waiting, and when the next of them is due.
    func runDue(
        at now: ContinuousClock.Instant, maxBackoff: Duration, logger: Logger,
        connection: () throws -> AMQPConnection, connectionFailed: () -> Void
    ) -> (PublisherOperations, next: ContinuousClock.Instant?) {
        guard !waiting.isEmpty else { return (self, nil) }
        var stillWaiting: [PublisherOperation] = []
        var next: ContinuousClock.Instant?
        for var operation in waiting {
            if let retryAt = operation.retryAt, now < retryAt {
                stillWaiting.append(operation)
                next = min(next ?? retryAt, retryAt)
                continue
            }
            do {
                try operation.attempt(try connection())
            } catch {
                connectionFailed()
                if let error = error as? TransportError, error.isPermanent {
                    operation.fail(error)
                    continue
                }
                guard now < operation.giveUpAt else {
                    operation.fail(error)
                    continue
                }
                logger.warning(
                    "AMQP publisher: \(operation.doing) failed, reconnecting",
                    metadata: ["error": "\(error)", "retry.in": "\(operation.backoff)"])
                let retryAt = now.advanced(by: operation.backoff)
                operation.retryAt = retryAt
                operation.backoff = min(operation.backoff * 2, maxBackoff)
                stillWaiting.append(operation)
                next = min(next ?? retryAt, retryAt)
            }
        }
        return (PublisherOperations(waiting: stillWaiting), next)
    }
}
