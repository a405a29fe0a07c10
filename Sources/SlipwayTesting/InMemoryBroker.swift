import Foundation
import Slipway
import SlipwayTransport
import Synchronization

// MARK: - Broker

/// A RabbitMQ in one process, for tests: what `InMemoryTransport`s (one per simulated process) share.
///
/// It mirrors the semantics the runtime relies on:
/// - durable named queues; `declareQueue` is idempotent, and a message published through the default exchange (`""`)
///   to a queue that does not exist is dropped silently (RabbitMQ confirms it and drops it);
/// - topic exchanges: binding keys are dot-separated words where `*` is exactly one word and `#` zero or more; a
///   message reaches each matching queue once; an unroutable message is dropped; publishing to an exchange that was
///   never declared fails (RabbitMQ closes the channel with 404 NOT_FOUND);
/// - consumers get at most `prefetch` unacknowledged deliveries at a time (0: no limit), several consumers of one queue
///   take turns (round-robin);
/// - an ack removes the message; a release puts it back at the front of its queue, marked redelivered;
/// - stopping a stream takes no new deliveries; what was already delivered stays unacknowledged until settled;
/// - a dropped connection (`dropConnection(of:)`, `InMemoryTransport.crash()`, `shutdown()`) puts every delivery that
///   connection had not settled back at the front of its queue, marked redelivered, and ends its streams at once
///   (deliveries it received but had not yet taken from a stream are not handed out any more), like a killed process;
/// - `publish` returns once every message is enqueued: the publisher confirm.
///
/// - a queue declared with a message TTL and a dead-letter target (a delay queue) holds each message that long, then
///   routes it to the target, as RabbitMQ does.
///
/// Not simulated: broker restarts, dead-lettering of rejected messages, the `mandatory` flag, and transparent
/// reconnection of consumers after a network failure.
///
/// Inspection and waiting, for tests: InMemoryBroker+Inspection.swift.
public actor InMemoryBroker {
    struct Queue {
        var ready: [BrokerMessage] = []
        /// Consumer ids, in the order they subscribed.
        var consumers: [Int] = []
        /// Where the next round-robin turn starts.
        var cursor = 0
        /// A private subscription queue: deleted with its last consumer.
        var autoDelete = false
        var arguments = QueueArguments()
        /// A delay queue's messages and when each expires (to its dead-letter target).
        var delayed: [(message: OutgoingMessage, expiresAt: ContinuousClock.Instant)] = []
    }

    private struct Binding {
        var pattern: [Substring]
        var queue: String
    }

    struct Consumer {
        let queue: String
        let prefetch: Int
        let connection: UUID
        let handle: ConsumerHandle
        /// Delivered to the client, not yet taken from its stream.
        var mailbox: [Delivery] = []
        /// The stream's iterator, waiting for a delivery.
        var waiter: CheckedContinuation<Delivery?, Never>?
        var unacked = 0
    }

    struct Unacked {
        var message: BrokerMessage
        var queue: String
        var consumer: Int
        var connection: UUID
    }

    enum Condition {
        case idle
        case depth(queue: String, atLeast: Int)
    }

    var queues: [String: Queue] = [:]
    private var exchanges: [String: [Binding]] = [:]
    var consumers: [Int: Consumer] = [:]
    var unacked: [UInt64: Unacked] = [:]
    private var closedConnections: Set<UUID> = []
    /// Deliveries of deleted queues, which their consumers may still settle.
    private var orphanedTags: Set<UInt64> = []
    private var nextTag: UInt64 = 1
    private var nextConsumerID = 1
    private var nextPrivateQueue = 1
    var published: [OutgoingMessage] = []
    var violations: [String] = []
    var waiters: [Int: (condition: Condition, continuation: CheckedContinuation<Bool, Never>)] = [:]
    var nextWaiterID = 1
    /// As RabbitMQ under a memory or disk alarm: publishes wait (`blockPublishers`).
    public private(set) var blocksPublishers = false
    private var unblockWaiters: [CheckedContinuation<Void, Never>] = []

    public init() {}

    // MARK: Resource alarms

    /// Blocks every publisher, as RabbitMQ does under a memory or disk alarm: publishes wait until `unblockPublishers`.
    public func blockPublishers() { blocksPublishers = true }

    public func unblockPublishers() {
        blocksPublishers = false
        let waiting = unblockWaiters
        unblockWaiters.removeAll()
        for waiter in waiting { waiter.resume() }
    }

    func waitWhileBlocked() async {
        while blocksPublishers { await withCheckedContinuation { unblockWaiters.append($0) } }
    }

    // MARK: Topology

    /// Declares a durable queue; declaring it again changes nothing.
    public func declareQueue(_ name: String) {
        if queues[name] == nil { queues[name] = Queue() }
    }

    /// Declares a queue with arguments (a message TTL and a dead-letter target make it a delay queue).
    public func declareQueue(_ name: String, arguments: QueueArguments) {
        if queues[name] == nil {
            var queue = Queue()
            queue.arguments = arguments
            queues[name] = queue
        }
    }

    /// Dead-letters the delay queue's messages whose time has come, to the queue's target.
    private func expire(_ name: String) {
        guard var queue = queues[name] else { return }
        let now = ContinuousClock.now
        var due: [OutgoingMessage] = []
        while let first = queue.delayed.first, first.expiresAt <= now {
            queue.delayed.removeFirst()
            var message = first.message
            message.exchange = queue.arguments.deadLetterExchange ?? ""
            message.routingKey = queue.arguments.deadLetterRoutingKey ?? message.routingKey
            due.append(message)
        }
        queues[name] = queue
        if !due.isEmpty { try? publish(due, connection: brokerConnection) }
    }

    /// The broker's own "connection", for dead-lettering; never closed.
    private let brokerConnection = UUID()

    /// Declares a topic exchange; declaring it again changes nothing.
    public func declareTopicExchange(_ name: String) {
        if exchanges[name] == nil { exchanges[name] = [] }
    }

    /// Binds a queue to a topic exchange with a binding key such as `terminal.*.slip-1` or `parked.#`.
    public func bind(queue: String, exchange: String, bindingKey: String) throws {
        guard exchanges[exchange] != nil else { throw TransportError(.refusedByBroker, "NOT_FOUND - no exchange '\(exchange)'") }
        guard queues[queue] != nil else { throw TransportError(.refusedByBroker, "NOT_FOUND - no queue '\(queue)'") }
        let pattern = Self.words(bindingKey)
        // Binding the same pattern again changes nothing, as in RabbitMQ.
        guard !exchanges[exchange]!.contains(where: { $0.queue == queue && $0.pattern == pattern }) else { return }
        exchanges[exchange]!.append(Binding(pattern: pattern, queue: queue))
    }

    // MARK: Connections

    /// Simulates the process behind `transport` being killed: its unsettled deliveries go back to their queues as
    /// redelivered, its streams end at once, and everything it does afterwards fails (publishes throw, acks are ignored).
    public func dropConnection(of transport: InMemoryTransport) {
        closeConnection(transport.connection)
    }

    func closeConnection(_ connection: UUID) {
        guard closedConnections.insert(connection).inserted else { return }
        // Back to the front of each queue in delivery order, as RabbitMQ requeues a closed channel's deliveries.
        var requeued: [String: [BrokerMessage]] = [:]
        for tag in unacked.keys.sorted() where unacked[tag]!.connection == connection {
            let entry = unacked.removeValue(forKey: tag)!
            var message = entry.message
            message.redelivered = true
            requeued[entry.queue, default: []].append(message)
        }
        for (queue, messages) in requeued where queues[queue] != nil {
            queues[queue]!.ready.insert(contentsOf: messages, at: 0)
        }
        for (id, consumer) in consumers where consumer.connection == connection {
            consumers[id]!.mailbox = []
            finishConsumer(id)
        }
        for queue in requeued.keys { dispatch(queue) }
        resolveWaiters()
    }

    func checkOpen(_ connection: UUID) throws {
        if closedConnections.contains(connection) {
            throw TransportError(.connectionLost, "the connection is closed (the process crashed or shut down)")
        }
    }

    // MARK: Publishing

    func publish(_ messages: [OutgoingMessage], connection: UUID) throws {
        try checkOpen(connection)
        var touched: Set<String> = []
        for message in messages {
            if message.exchange.isEmpty {
                published.append(message)
                // The default exchange: a queue that does not exist drops the message silently.
                if let ttl = queues[message.routingKey]?.arguments.messageTTLMs {
                    let queue = message.routingKey
                    queues[queue]!.delayed.append((message, ContinuousClock.now.advanced(by: .milliseconds(ttl))))
                    Task {
                        try? await Task.sleep(for: .milliseconds(ttl))
                        self.expire(queue)
                    }
                    continue
                }
                if queues[message.routingKey] != nil {
                    queues[message.routingKey]!.ready.append(BrokerMessage(message))
                    touched.insert(message.routingKey)
                }
                continue
            }
            guard let bindings = exchanges[message.exchange] else {
                // RabbitMQ closes the channel; the messages before this one were routed.
                for queue in touched { dispatch(queue) }
                resolveWaiters()
                throw TransportError(.refusedByBroker, "NOT_FOUND - no exchange '\(message.exchange)'")
            }
            published.append(message)
            let words = Self.words(message.routingKey)
            var targets: [String] = []
            for binding in bindings where Self.matches(binding.pattern[...], words[...]) {
                if !targets.contains(binding.queue) { targets.append(binding.queue) }
            }
            for queue in targets where queues[queue] != nil {
                queues[queue]!.ready.append(BrokerMessage(message))
                touched.insert(queue)
            }
        }
        for queue in touched { dispatch(queue) }
        resolveWaiters()
    }

    // MARK: Consuming

    func consume(queue: String, prefetch: Int, connection: UUID) throws -> DeliveryStream {
        try checkOpen(connection)
        declareQueue(queue)  // The AMQP consumer declares its queue too.
        return addConsumer(queue: queue, prefetch: prefetch, connection: connection)
    }

    func subscribe(exchange: String, bindingKeys: [String], connection: UUID) throws -> DeliveryStream {
        try checkOpen(connection)
        declareTopicExchange(exchange)
        let queue = "amq.gen-\(nextPrivateQueue)"
        nextPrivateQueue += 1
        queues[queue] = Queue(autoDelete: true)
        for key in bindingKeys { try bind(queue: queue, exchange: exchange, bindingKey: key) }
        return addConsumer(queue: queue, prefetch: 100, connection: connection)
    }

    private func addConsumer(queue: String, prefetch: Int, connection: UUID) -> DeliveryStream {
        let id = nextConsumerID
        nextConsumerID += 1
        let handle = ConsumerHandle()
        consumers[id] = Consumer(queue: queue, prefetch: prefetch, connection: connection, handle: handle)
        queues[queue]!.consumers.append(id)
        dispatch(queue)
        resolveWaiters()
        let stream = AsyncThrowingStream<Delivery, any Error>(unfolding: { [self] in await self.next(consumer: id) })
        return DeliveryStream(
            stream: stream,
            onStop: { [self] in
                // The flag stops dispatching at once; the task wakes a waiting iterator so that the stream can end.
                handle.requestStop()
                Task { await self.stopRequested(consumer: id) }
            })
    }

    /// The next delivery for a stream's iterator; nil ends the stream.
    private func next(consumer id: Int) async -> Delivery? {
        guard consumers[id] != nil else { return nil }
        if !consumers[id]!.mailbox.isEmpty { return consumers[id]!.mailbox.removeFirst() }
        if consumers[id]!.handle.stopRequested {
            finishConsumer(id)
            return nil
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Delivery?, Never>) in
                if Task.isCancelled || consumers[id] == nil {
                    continuation.resume(returning: nil)
                } else {
                    consumers[id]!.waiter = continuation
                }
            }
        } onCancel: {
            Task { await self.iteratorCancelled(consumer: id) }
        }
    }

    private func stopRequested(consumer id: Int) {
        guard let consumer = consumers[id], consumer.mailbox.isEmpty else { return }
        finishConsumer(id)  // Nothing left to hand out: the stream ends now.
    }

    /// The task iterating the stream was cancelled. What it had been delivered stays unacknowledged until its
    /// connection closes, as with RabbitMQ.
    private func iteratorCancelled(consumer id: Int) {
        guard consumers[id] != nil else { return }
        finishConsumer(id)
    }

    /// Ends a consumer's stream and takes it off its queue; an auto-delete queue goes with its last consumer.
    private func finishConsumer(_ id: Int) {
        guard let consumer = consumers.removeValue(forKey: id) else { return }
        consumer.handle.requestStop()
        consumer.waiter?.resume(returning: nil)
        guard var queue = queues[consumer.queue] else { return }
        if let index = queue.consumers.firstIndex(of: id) {
            queue.consumers.remove(at: index)
            if index < queue.cursor { queue.cursor -= 1 }
        }
        queues[consumer.queue] = queue
        if queue.autoDelete && queue.consumers.isEmpty { deleteQueue(consumer.queue) }
        resolveWaiters()
    }

    private func deleteQueue(_ name: String) {
        queues[name] = nil
        for exchange in exchanges.keys { exchanges[exchange]!.removeAll { $0.queue == name } }
        for (tag, entry) in unacked where entry.queue == name {
            unacked[tag] = nil
            orphanedTags.insert(tag)  // Still the client's to settle; the message is gone with its queue.
        }
    }

    /// Hands waiting messages to consumers with room under their prefetch, taking turns.
    private func dispatch(_ name: String) {
        while let queue = queues[name], !queue.ready.isEmpty, let id = nextConsumer(of: name) {
            let message = queues[name]!.ready.removeFirst()
            let tag = nextTag
            nextTag += 1
            let consumer = consumers[id]!
            unacked[tag] = Unacked(message: message, queue: name, consumer: id, connection: consumer.connection)
            consumers[id]!.unacked += 1
            let delivery = Delivery(
                body: message.body, headers: message.headers, messageID: message.messageID,
                correlationID: message.correlationID, contentType: message.contentType, exchange: message.exchange,
                routingKey: message.routingKey, redelivered: message.redelivered,
                acknowledger: Acknowledger(broker: self, connection: consumer.connection), tag: tag)
            if let waiter = consumer.waiter {
                consumers[id]!.waiter = nil
                waiter.resume(returning: delivery)
            } else {
                consumers[id]!.mailbox.append(delivery)
            }
        }
    }

    private func nextConsumer(of name: String) -> Int? {
        guard let queue = queues[name], !queue.consumers.isEmpty else { return nil }
        let count = queue.consumers.count
        for offset in 0..<count {
            let index = (queue.cursor + offset) % count
            guard let consumer = consumers[queue.consumers[index]], !consumer.handle.stopRequested else { continue }
            if consumer.prefetch <= 0 || consumer.unacked < consumer.prefetch {
                queues[name]!.cursor = (index + 1) % count
                return queue.consumers[index]
            }
        }
        return nil
    }

    func settle(tag: UInt64, ack: Bool, connection: UUID) {
        if closedConnections.contains(connection) { return }  // Its deliveries were requeued when it closed.
        guard let entry = unacked.removeValue(forKey: tag) else {
            if orphanedTags.remove(tag) == nil {
                violations.append("\(ack ? "ack" : "release") of unknown delivery tag \(tag) (settled twice?)")
            }
            return
        }
        if consumers[entry.consumer] != nil { consumers[entry.consumer]!.unacked -= 1 }
        if !ack, queues[entry.queue] != nil {
            var message = entry.message
            message.redelivered = true
            queues[entry.queue]!.ready.insert(message, at: 0)
        }
        dispatch(entry.queue)
        resolveWaiters()
    }

}
