import Foundation
import SlipwayCore
import SlipwayTransport

/// How a processor runs. The defaults suit most steps; executables fill it from flags and the environment.
public struct ProcessorConfiguration: Sendable {
    public var topology = Topology()
    /// Unacknowledged deliveries the broker may hand this instance at once, per queue.
    public var prefetch = 32
    /// Hops this instance runs at the same time, per queue. A hop counts until its slip is forwarded; its ack, which
    /// waits for its event's batch, may come later (the prefetch bounds those).
    public var concurrency = 8
    /// How an execute whose handler throws is retried, unless the slip's itinerary gives the step a policy of its own.
    /// After the last attempt the step faults and the slip compensates.
    public var retry = RetryPolicy(maxAttempts: 3, initialDelayMs: 200, multiplier: 2, maxDelayMs: 30_000, jitter: 0.2)
    /// How a compensation that throws is retried. After the last attempt the slip is parked as compensation-failed.
    public var compensationRetry = RetryPolicy(
        maxAttempts: 5, initialDelayMs: 500, multiplier: 2, maxDelayMs: 60_000, jitter: 0.2)
    /// How long an execute may run before it is cancelled and counts as a failed attempt, unless the itinerary gives
    /// the step a timeout of its own. Nil: no limit.
    public var timeout: Duration?
    /// How long a compensation may run before it is cancelled and counts as a failed attempt (retried by
    /// `compensationRetry`, then compensation-failed), unless the itinerary gave the step a `compensateTimeoutMs`.
    /// Nil: no limit.
    public var compensateTimeout: Duration?
    /// A hop whose message came back this many times without the hop ever finishing (the processor died running it,
    /// again and again) is parked as `poison` instead of being run once more.
    public var poisonRedeliveries = 5
    public var limits = SlipLimits()
    /// Keys to verify incoming slips and sign forwarded ones with. Nil: signing is off (every slip is accepted unsigned).
    public var signing: SigningKeys?
    /// Hop events from concurrent hops travel together, several to a broker message (`SlipEventWire`); off, each hop
    /// event is a message of its own, routed by its slip (`execute.<step>.<slip id>`), at twice the broker's work.
    public var batchHopEvents = true
    /// How long a batch of hop events waits for more before it goes out (it goes at once when it holds half the
    /// prefetch). The audit trail lags by up to this much; a slip's journey does not, since a hop forwards its slip
    /// without waiting for its events.
    public var hopEventLinger = Duration.milliseconds(20)
    /// Declare `<prefix>.audit` (bound to every event) at start, so that events sent before the audit sink's first
    /// start wait for it. Off for a deployment that keeps no audit trail: that queue would only grow.
    public var declaresAuditQueue = true
    /// The type of the durable queues the processor declares (`--queue-type`): quorum for a RabbitMQ cluster, where a
    /// classic queue is lost with its node. Every processor and producer of a deployment must use the same type.
    public var queueType = QueueType.classic
    /// How long an instance's claim of a hop lasts unless renewed (every third of it, while the handler runs). Another
    /// delivery of the hop, in any process sharing the hop record, waits for the claim instead of running the hop; the
    /// claim of an instance that died is taken over once it runs out.
    public var claimLease = Duration.seconds(30)
    /// Names this instance in logs, slip logs and events; also owns its hop claims, so unique per process.
    public var instance = ProcessorConfiguration.defaultInstanceName()

    public init() {}

    /// Tries of an execute, from `retry`.
    public var maxAttempts: Int {
        get { retry.maxAttempts }
        set { retry.maxAttempts = newValue }
    }

    /// Tries of a compensation, from `compensationRetry`.
    public var compensationMaxAttempts: Int {
        get { compensationRetry.maxAttempts }
        set { compensationRetry.maxAttempts = newValue }
    }

    /// `host:pid`.
    public static func defaultInstanceName() -> String {
        InstanceName.current()
    }
}
