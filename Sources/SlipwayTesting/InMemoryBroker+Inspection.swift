import Foundation
import SlipwayTransport

/// What tests ask the broker: queue contents and counts, and waiting until the flow settles.
extension InMemoryBroker {
    /// The messages waiting in a queue (not those delivered and unacknowledged), oldest first.
    public func messages(in queue: String) -> [BrokerMessage] {
        queues[queue]?.ready ?? []
    }

    /// How many messages wait in a queue (RabbitMQ's "ready" count); 0 for a queue that does not exist.
    public func queueDepth(_ queue: String) -> Int {
        queues[queue]?.ready.count ?? 0
    }

    /// How many messages of a queue are delivered and not yet acknowledged.
    public func unackedCount(_ queue: String) -> Int {
        unacked.values.count { $0.queue == queue }
    }

    public func queueExists(_ queue: String) -> Bool {
        queues[queue] != nil
    }

    /// Consumers of a queue that still take deliveries.
    public func consumerCount(_ queue: String) -> Int {
        queues[queue]?.consumers.count { consumers[$0]?.handle.stopRequested == false } ?? 0
    }

    /// Every message published so far (routed, dropped or not), in order.
    public var publishedMessages: [OutgoingMessage] { published }

    /// How many messages were published so far.
    public var publishCount: Int { published.count }

    /// Settlements a real broker would refuse (a tag it does not know, acked on a live connection): a runtime bug.
    public var protocolViolations: [String] { violations }

    /// A readable summary of every queue (ready, unacked, consumers), for failure messages.
    public func summary() -> String {
        queues.keys.sorted().map { name in
            let queue = queues[name]!
            let active = queue.consumers.filter { consumers[$0]?.handle.stopRequested == false }.count
            let mailboxes = queue.consumers.compactMap { consumers[$0]?.mailbox.count }
            let waiting = queue.consumers.filter { consumers[$0]?.waiter != nil }.count
            return "\(name): ready \(queue.ready.count), unacked \(unackedCount(name)), consumers \(active)"
                + " (in mailboxes \(mailboxes), waiting \(waiting))"
        }.joined(separator: "\n")
    }

    /// Removes and returns every waiting message of a queue (a purge that hands the messages over), e.g. to replay a
    /// parked slip.
    public func takeMessages(from queue: String) -> [BrokerMessage] {
        guard let ready = queues[queue]?.ready else { return [] }
        queues[queue]!.ready = []
        resolveWaiters()
        return ready
    }

    /// Waits until nothing is in flight: no delivery is unacknowledged, and no queue that has a consumer has a message
    /// waiting. Messages in queues nobody consumes, such as the dead-letter queue, do not count, so call it once the
    /// consumers that should drain a queue are consuming (e.g. after a slip's terminal event). False on timeout.
    public func waitUntilIdle(timeout: Duration = .seconds(10)) async -> Bool {
        await wait(for: .idle, timeout: timeout)
    }

    /// Waits until a queue holds at least `count` waiting messages. False on timeout.
    public func waitForDepth(_ queue: String, atLeast count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        await wait(for: .depth(queue: queue, atLeast: count), timeout: timeout)
    }

    // MARK: Waiting

    private func holds(_ condition: Condition) -> Bool {
        switch condition {
        case .idle:
            return unacked.isEmpty
                && queues.values.allSatisfy { queue in
                    queue.ready.isEmpty
                        || !queue.consumers.contains { consumers[$0]?.handle.stopRequested == false }
                }
        case .depth(let queue, let count):
            return (queues[queue]?.ready.count ?? 0) >= count
        }
    }

    private func wait(for condition: Condition, timeout: Duration) async -> Bool {
        if holds(condition) { return true }
        let id = nextWaiterID
        nextWaiterID += 1
        return await withCheckedContinuation { continuation in
            waiters[id] = (condition, continuation)
            Task {
                try? await Task.sleep(for: timeout)
                self.expireWaiter(id)
            }
        }
    }

    private func expireWaiter(_ id: Int) {
        waiters.removeValue(forKey: id)?.continuation.resume(returning: false)
    }

    func resolveWaiters() {
        for (id, waiter) in waiters where holds(waiter.condition) {
            waiters[id] = nil
            waiter.continuation.resume(returning: true)
        }
    }
}
