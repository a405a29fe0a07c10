import CRabbitMQ
#if canImport(Glibc)
import Glibc
#endif
import Logging
import SlipwayTransport
import Synchronization

/// Consumes one queue on a connection of its own, reconnecting with backoff when the broker goes away. Its loop is
/// either a thread of its own or the processor's shared loop (`AMQPLoop`).
///
/// Acks are handed to the loop through a queue and a wake-up (an eventfd that wakes it from `poll`, unless the ack
/// comes from the loop's own thread), so an ack never waits for the next delivery. Acks for deliveries of an earlier
/// connection are dropped: the broker redelivers those messages.
final class AMQPConsumer: Sendable, AMQPLoop.Source {
    enum Source: Sendable {
        /// A durable, named queue (a step's queue).
        case queue(String)
        /// A private queue bound to an exchange, gone with the consumer (following events).
        case subscription(exchange: String, bindingKeys: [String])
    }

    /// What the hops' threads hand the loop's thread.
    private struct Requests {
        var settlements: [ConsumerDeliveries.Requested] = []
        var stop = false
        var close = false
    }

    private let configuration: AMQPConfiguration
    private let nodes: AMQPNodeRotation
    private let source: Source
    private let prefetch: Int
    private let logger: Logger
    private let loop: AMQPLoop
    private let continuation: AsyncThrowingStream<Delivery, any Error>.Continuation
    let stream: AsyncThrowingStream<Delivery, any Error>
    private let requests = Mutex(Requests())
    private let ready: AsyncStream<Result<Void, any Error>>.Continuation
    private let readyStream: AsyncStream<Result<Void, any Error>>

    // The loop's thread alone uses what follows (checked on every access).
    private let connection: LoopBound<AMQPConnection?>
    private let deliveries: LoopBound<ConsumerDeliveries>
    private let backoff: LoopBound<Duration>
    private let reconnectAt: LoopBound<ContinuousClock.Instant?>
    /// The last connect reached a node, which refused to declare or consume (rather than no node answering).
    private let refusedAfterConnecting: LoopBound<Bool>
    /// When the connection was last read (see `AMQPConnection.readAtLeastEvery`).
    private let lastRead: LoopBound<ContinuousClock.Instant>
    var isFinished: Bool { deliveries.value.isFinished }

    /// - Parameter loop: the loop that drives the connection: the processor's, or one of the consumer's own.
    init(nodes: AMQPNodeRotation, source: Source, prefetch: Int, logger: Logger, loop: AMQPLoop) {
        self.configuration = nodes.configuration
        self.nodes = nodes
        self.source = source
        self.prefetch = prefetch
        self.logger = logger
        self.loop = loop
        (stream, continuation) = AsyncThrowingStream.makeStream(of: Delivery.self)
        (readyStream, ready) = AsyncStream.makeStream(of: Result<Void, any Error>.self)
        connection = loop.bound(nil)
        deliveries = loop.bound(ConsumerDeliveries())
        backoff = loop.bound(nodes.configuration.reconnectBackoff.initial)
        reconnectAt = loop.bound(nil)
        refusedAfterConnecting = loop.bound(false)
        lastRead = loop.bound(ContinuousClock.now)
    }

    /// Starts consuming; returns once the first connection consumes, or throws why it could not connect.
    func start() async throws {
        loop.add(self)
        for await result in readyStream {
            try result.get()
            return
        }
    }

    /// Stops taking deliveries; the stream finishes. The connection stays open for acks until `close()`.
    func stop() {
        requests.withLock { $0.stop = true }
        loop.wake()
    }

    /// Settles what is queued, closes the connection and leaves the loop.
    func close() {
        requests.withLock { requests in
            requests.stop = true
            requests.close = true
        }
        loop.wake()
    }

    func settle(generation: Int, tag: UInt64, ack: Bool) {
        requests.withLock { $0.settlements.append((generation, ack ? .ack(tag) : .release(tag))) }
        loop.wake()
    }

    // MARK: On the loop's thread

    var socket: Int32? { connection.value.map { amqp_get_sockfd($0.state) } }

    func service(readable: Bool, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard !isFinished else { return nil }
        let (stop, close) = requests.withLock { ($0.stop, $0.close) }
        if close {
            settlePending()
            finish()
            return nil
        }
        if stop {
            switch deliveries.value.stopRequested() {
            case .nothing: break
            case .finishStream: continuation.finish()
            case .abandonStart:
                ready.yield(.failure(TransportError(.shutDown, "stopped before consuming")))
                finish()
                return nil
            }
        }
        if connection.value == nil {
            guard deliveries.value.mayReconnect else {  // Nothing to settle on a lost connection: the broker requeued it all.
                finish()
                return nil
            }
            if let reconnectAt = reconnectAt.value, now < reconnectAt { return reconnectAt }
            do {
                try connect()
                backoff.value = configuration.reconnectBackoff.initial
                reconnectAt.value = nil
                lastRead.value = now
                if deliveries.value.connected() {
                    ready.yield(.success(()))
                } else {
                    logger.info(
                        "AMQP consumer: reconnected",
                        metadata: ["amqp.source": "\(source)", "amqp.node": "\(connection.value.map { "\($0.node)" } ?? "-")"])
                }
            } catch {
                // At the first start, no node answering or a refusal for good (a permission, a queue of another
                // type) ends the start at once. A passing refusal from a node that answered is waited out as after a
                // loss: a quorum queue another process declared a moment ago may refuse consumers (541 internal
                // error) until its replicas are up.
                let passing = refusedAfterConnecting.value && (error as? TransportError)?.isPermanent == false
                let starting = deliveries.value.phase == .starting
                if deliveries.value.connectFailed(passing: passing) == .abandonStart {
                    ready.yield(.failure(error))
                    finish()
                    return nil
                }
                logger.warning(
                    starting ? "AMQP consumer: cannot consume yet" : "AMQP consumer: cannot reconnect yet",
                    metadata: ["amqp.source": "\(source)", "error": "\(error)", "retry.in": "\(backoff.value)"])
                let next = now.advanced(by: backoff.value)
                reconnectAt.value = next
                backoff.value = min(backoff.value * 2, configuration.reconnectBackoff.max)
                return next
            }
        }
        settlePending()
        guard let connection = connection.value else { return now }  // lost while settling: reconnect on the next pass
        if readable || connection.hasBufferedInput || now >= lastRead.value.advanced(by: AMQPConnection.readAtLeastEvery) {
            lastRead.value = now
            receiveAvailable()
        }
        return self.connection.value == nil ? now : lastRead.value.advanced(by: AMQPConnection.readAtLeastEvery)
    }

    private func finish() {
        connection.value?.close()
        connection.value = nil
        continuation.finish()
        deliveries.value.finished()
    }

    private func connect() throws {
        refusedAfterConnecting.value = false
        let connection = try nodes.connect()
        do {
            try connection.setPrefetch(prefetch)
            let queue: String
            switch source {
            case .queue(let name):
                queue = try connection.declareQueue(name)
            case .subscription(let exchange, let bindingKeys):
                try connection.declareTopicExchange(exchange)
                queue = try connection.declareQueue("", durable: false, exclusive: true, autoDelete: true)
                for key in bindingKeys { try connection.bindQueue(queue, exchange: exchange, bindingKey: key) }
            }
            try connection.startConsuming(queue: queue)
        } catch {
            connection.close()
            refusedAfterConnecting.value = true
            throw error
        }
        self.connection.value = connection
    }

    /// Sends what the hops settled (see `ConsumerDeliveries.settled`): releases, then acks.
    private func settlePending() {
        let batch = requests.withLock { requests in
            defer { requests.settlements.removeAll(keepingCapacity: true) }
            return requests.settlements
        }
        let sends = deliveries.value.settled(batch)
        guard let connection = connection.value, !sends.isEmpty else { return }
        for tag in sends.releases {
            guard connection.reject(tag, requeue: true) else { return lostConnection("settling a delivery failed") }
        }
        if let ack = sends.ack {
            guard amqp_basic_ack(connection.state, AMQPConnection.channel, ack.tag, ack.multiple ? 1 : 0) == 0 else {
                return lostConnection("settling a delivery failed")
            }
        }
        for tag in sends.singleAcks {
            guard connection.ack(tag) else { return lostConnection("settling a delivery failed") }
        }
    }

    /// Takes every delivery already received, without waiting for more.
    private func receiveAvailable() {
        repeat {
            receive()
        } while connection.value?.hasBufferedInput == true
    }

    /// Takes one delivery if one has come (a call with a zero timeout: it also sends a heartbeat when one is due).
    private func receive() {
        guard let connection = connection.value else { return }
        amqp_maybe_release_buffers(connection.state)
        var envelope = amqp_envelope_t()
        var immediately = timeval(tv_sec: 0, tv_usec: 0)
        let reply = amqp_consume_message(connection.state, &envelope, &immediately, 0)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            defer { amqp_destroy_envelope(&envelope) }
            // Stopping, it stays unacknowledged (see `ConsumerDeliveries.received`).
            guard deliveries.value.received(envelope.delivery_tag) else { return }
            continuation.yield(makeDelivery(envelope))
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_TIMEOUT.rawValue:
            return
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue:
            // A frame other than a delivery: find out which.
            var frame = amqp_frame_t()
            guard amqp_simple_wait_frame(connection.state, &frame) == AMQP_STATUS_OK.rawValue else {
                return lostConnection("reading a frame failed")
            }
            if frame.frame_type == UInt8(AMQP_FRAME_METHOD) {
                switch frame.payload.method.id {
                case amqp_method_number_t(SLIPWAY_CHANNEL_CLOSE_METHOD),
                    amqp_method_number_t(SLIPWAY_CONNECTION_CLOSE_METHOD):
                    var closeReply = amqp_rpc_reply_t()
                    closeReply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION
                    closeReply.reply = frame.payload.method
                    lostConnection("the broker closed the channel: \(AMQPConnection.serverReplyText(closeReply))")
                case amqp_method_number_t(SLIPWAY_BASIC_CANCEL_METHOD):
                    lostConnection("the broker cancelled the consumer (queue deleted?)")
                default:
                    break
                }
            }
        default:
            lostConnection(
                reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                    ? AMQPConnection.statusText(reply.library_error) : "server exception")
        }
    }

    private func lostConnection(_ why: String) {
        logger.warning("AMQP consumer: connection lost", metadata: ["error": "\(why)", "amqp.source": "\(source)"])
        connection.value?.markBroken()
        connection.value?.close()
        connection.value = nil
        deliveries.value.connectionLost()
    }

    private func makeDelivery(_ envelope: amqp_envelope_t) -> Delivery {
        let properties = envelope.message.properties
        let flags = properties._flags
        func has(_ flag: Int) -> Bool { flags & amqp_flags_t(flag) != 0 }
        return Delivery(
            body: [UInt8](amqpBytes: envelope.message.body),
            headers: has(SLIPWAY_FLAG_HEADERS) ? amqpHeaders(properties.headers) : [:],
            messageID: has(SLIPWAY_FLAG_MESSAGE_ID) ? String(amqpBytes: properties.message_id) : nil,
            correlationID: has(SLIPWAY_FLAG_CORRELATION_ID) ? String(amqpBytes: properties.correlation_id) : nil,
            contentType: has(SLIPWAY_FLAG_CONTENT_TYPE) ? String(amqpBytes: properties.content_type) : nil,
            exchange: String(amqpBytes: envelope.exchange),
            routingKey: String(amqpBytes: envelope.routing_key),
            redelivered: envelope.redelivered != 0,
            acknowledger: Acknowledger(consumer: self, generation: deliveries.value.generation),
            tag: envelope.delivery_tag)
    }

    private struct Acknowledger: DeliveryAcknowledger {
        let consumer: AMQPConsumer
        let generation: Int
        func ack(_ tag: UInt64) async { consumer.settle(generation: generation, tag: tag, ack: true) }
        func release(_ tag: UInt64) async { consumer.settle(generation: generation, tag: tag, ack: false) }
    }
}
