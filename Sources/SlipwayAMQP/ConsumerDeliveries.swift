/// What a consumer keeps about its deliveries and its own course, without I/O: the delivery tags still open on the
/// current connection, which of the settlements the hops asked for can still be sent (and how, in as few frames as
/// possible), and whether the stream goes on.
///
/// Events go in (connected, connection lost, a delivery, the hops' settlements, a stop) and what to do comes out;
/// `AMQPConsumer` does the I/O and carries that out. Tests drive it without a broker.
///
/// Owned by the loop's thread: a value inside the consumer, never shared.
struct ConsumerDeliveries {
    enum Settlement: Equatable, Sendable {
        case ack(UInt64)
        /// Back to the queue (`basic.reject` with requeue).
        case release(UInt64)
    }

    /// A hop's settlement, with the connection (`generation`) its delivery came on.
    typealias Requested = (generation: Int, settlement: Settlement)

    struct Ack: Equatable {
        let tag: UInt64
        /// Acknowledges every tag up to `tag` not acknowledged yet.
        let multiple: Bool
    }

    /// What to send for a batch of settlements, in this order.
    struct Sends: Equatable {
        /// Released deliveries, one `basic.reject` each, in the order the hops asked.
        var releases: [UInt64] = []
        /// One ack for the acknowledged tags below the lowest delivery still open (most of them: concurrent hops finish
        /// out of order), `multiple` when it covers more than one.
        var ack: Ack?
        /// The acknowledged tags above an open delivery, one ack each.
        var singleAcks: ArraySlice<UInt64> = []

        var isEmpty: Bool { releases.isEmpty && ack == nil && singleAcks.isEmpty }
    }

    enum Phase: Equatable {
        /// Not consuming yet: `start()` waits.
        case starting
        case consuming
        /// Stopped: the stream is finished; deliveries already handed out can still be settled.
        case stopped
        case finished
    }

    /// What a stop asks of the consumer.
    enum Stop: Equatable {
        /// Already stopped or finished.
        case nothing
        /// Finish the stream; keep the connection for the acks of what was handed out.
        case finishStream
        /// Stopped before consuming: `start()` fails, and the consumer finishes.
        case abandonStart
    }

    /// What a failed connect asks of the consumer.
    enum ConnectFailure: Equatable {
        /// Try again after the backoff.
        case retry
        /// The first start failed for good: `start()` throws, and the consumer finishes.
        case abandonStart
    }

    private(set) var phase = Phase.starting
    /// Counts connections: a settlement applies only on the connection its delivery came on, since delivery tags
    /// belong to one channel (the broker has already requeued what an earlier connection held).
    private(set) var generation = 0
    private(set) var isConnected = false
    /// Delivery tags of this connection received and not yet settled (including those left unacknowledged while
    /// stopping), ascending: a `multiple` ack may cover only tags below the lowest of them.
    private var open: [UInt64] = []

    var isFinished: Bool { phase == .finished }

    /// Connected and consuming. Returns true for the first connection (the start succeeded).
    mutating func connected() -> Bool {
        generation += 1
        isConnected = true
        open.removeAll(keepingCapacity: true)
        guard phase == .starting else { return false }
        phase = .consuming
        return true
    }

    /// A connect failed. At the first start, a failure is final unless `passing` (a node answered and refused for a
    /// while, as a quorum queue whose replicas are not up yet does); later ones are always waited out.
    mutating func connectFailed(passing: Bool) -> ConnectFailure {
        guard phase == .starting, !passing else { return .retry }
        phase = .finished
        return .abandonStart
    }

    /// The connection is gone: its deliveries' settlements are dropped from now on (the broker requeues them).
    mutating func connectionLost() {
        isConnected = false
        open.removeAll(keepingCapacity: true)
    }

    /// Without a connection, a stopped consumer finishes rather than reconnecting: nothing is left to settle.
    var mayReconnect: Bool { phase == .starting || phase == .consuming }

    /// A delivery came. Returns true when it goes to the stream; false while stopped: it stays unacknowledged
    /// (rejected with requeue, the broker would hand it straight back to this consumer, still registered; unacked it
    /// fills the prefetch window, and closing the connection gives it back to the queue for another consumer).
    mutating func received(_ tag: UInt64) -> Bool {
        let index = insertionIndex(of: tag)
        if index == open.endIndex || open[index] != tag { open.insert(tag, at: index) }
        return phase == .consuming
    }

    /// The hops settled these deliveries. Returns what to send on the current connection: nothing for deliveries of
    /// an earlier connection, or when there is none.
    mutating func settled(_ batch: [Requested]) -> Sends {
        var sends = Sends()
        guard isConnected else { return sends }
        var acks: [UInt64] = []
        for (deliveryGeneration, settlement) in batch where deliveryGeneration == generation {
            switch settlement {
            case .ack(let tag):
                acks.append(tag)
                close(tag)
            case .release(let tag):
                close(tag)
                sends.releases.append(tag)
            }
        }
        acks.sort()
        let lowestOpen = open.first ?? .max
        let covered = acks.prefix { $0 < lowestOpen }
        if let last = covered.last { sends.ack = Ack(tag: last, multiple: covered.count > 1) }
        sends.singleAcks = acks.dropFirst(covered.count)
        return sends
    }

    /// A stop (or a close) was asked for.
    mutating func stopRequested() -> Stop {
        switch phase {
        case .starting:
            phase = .finished
            return .abandonStart
        case .consuming:
            phase = .stopped
            return .finishStream
        case .stopped, .finished:
            return .nothing
        }
    }

    /// The consumer is done: the connection closed, the stream finished.
    mutating func finished() {
        phase = .finished
        isConnected = false
        open.removeAll()
    }

    private mutating func close(_ tag: UInt64) {
        let index = insertionIndex(of: tag)
        if index < open.endIndex, open[index] == tag { open.remove(at: index) }
    }

    /// Where `tag` is, or would go, in `open`.
    private func insertionIndex(of tag: UInt64) -> Int {
        var low = 0
        var high = open.count
        while low < high {
            let middle = (low + high) / 2
            if open[middle] < tag { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
