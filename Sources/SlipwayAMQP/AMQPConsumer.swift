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
final class AMQPConsumer: @unchecked Sendable, AMQPLoop.Source {
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

    // Sendable by hand: what follows is used on the loop's thread alone. (`continuation` is thread-safe by design.)
    private var connection: AMQPConnection?
    private var deliveries = ConsumerDeliveries()
    private var backoff: Duration
    private var reconnectAt: ContinuousClock.Instant?
    /// The last connect reached a node, which refused to declare or consume (rather than no node answering).
    private var refusedAfterConnecting = false
    /// When the connection was last read (see `AMQPConnection.readAtLeastEvery`).
    private var lastRead: ContinuousClock.Instant
    var isFinished: Bool { deliveries.isFinished }

    /// - Parameter loop: the processor's loop, or nil for a thread of its own.
    init(nodes: AMQPNodeRotation, source: Source, prefetch: Int, logger: Logger, loop: AMQPLoop?) {
        self.configuration = nodes.configuration
        self.nodes = nodes
        self.source = source
        self.prefetch = prefetch
        self.logger = logger
        self.loop = loop ?? AMQPLoop(name: "amqp-consumer", endsWithLastSource: true)
        (stream, continuation) = AsyncThrowingStream.makeStream(of: Delivery.self)
        (readyStream, ready) = AsyncStream.makeStream(of: Result<Void, any Error>.self)
        backoff = configuration.reconnectBackoff.initial
        lastRead = ContinuousClock.now
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

    var socket: Int32? { connection.map { amqp_get_sockfd($0.state) } }

    func service(readable: Bool, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard !isFinished else { return nil }
        let (stop, close) = requests.withLock { ($0.stop, $0.close) }
        if close {
            settlePending()
            finish()
            return nil
        }
        if stop {
            switch deliveries.stopRequested() {
            case .nothing: break
            case .finishStream: continuation.finish()
            case .abandonStart:
                ready.yield(.failure(TransportError(.shutDown, "stopped before consuming")))
                finish()
                return nil
            }
        }
        if connection == nil {
            guard deliveries.mayReconnect else {  // Nothing to settle on a lost connection: the broker requeued it all.
                finish()
                return nil
            }
            if let reconnectAt, now < reconnectAt { return reconnectAt }
            do {
                try connect()
                backoff = configuration.reconnectBackoff.initial
                reconnectAt = nil
                lastRead = now
                if deliveries.connected() {
                    ready.yield(.success(()))
                } else {
                    logger.info(
                        "AMQP consumer: reconnected",
                        metadata: ["amqp.source": "\(source)", "amqp.node": "\(connection.map { "\($0.node)" } ?? "-")"])
                }
            } catch {
                // At the first start, no node answering or a refusal for good (a permission, a queue of another
                // type) ends the start at once. A passing refusal from a node that answered is waited out as after a
                // loss: a quorum queue another process declared a moment ago may refuse consumers (541 internal
                // error) until its replicas are up.
                let passing = refusedAfterConnecting && (error as? TransportError)?.isPermanent == false
                let starting = deliveries.phase == .starting
                if deliveries.connectFailed(passing: passing) == .abandonStart {
                    ready.yield(.failure(error))
                    finish()
                    return nil
                }
                logger.warning(
                    starting ? "AMQP consumer: cannot consume yet" : "AMQP consumer: cannot reconnect yet",
                    metadata: ["amqp.source": "\(source)", "error": "\(error)", "retry.in": "\(backoff)"])
                let next = now.advanced(by: backoff)
                reconnectAt = next
                backoff = min(backoff * 2, configuration.reconnectBackoff.max)
                return next
            }
        }
        settlePending()
        guard let connection else { return now }  // lost while settling: reconnect on the next pass
        if readable || connection.hasBufferedInput || now >= lastRead.advanced(by: AMQPConnection.readAtLeastEvery) {
            lastRead = now
            receiveAvailable()
        }
        return self.connection == nil ? now : lastRead.advanced(by: AMQPConnection.readAtLeastEvery)
    }

    private func finish() {
        connection?.close()
        connection = nil
        continuation.finish()
        deliveries.finished()
    }

    private func connect() throws {
        refusedAfterConnecting = false
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
            refusedAfterConnecting = true
            throw error
        }
        self.connection = connection
    }

    /// Sends what the hops settled (see `ConsumerDeliveries.settled`): releases, then acks.
    private func settlePending() {
        let batch = requests.withLock { requests in
            defer { requests.settlements.removeAll(keepingCapacity: true) }
            return requests.settlements
        }
        let sends = deliveries.settled(batch)
        guard let connection, !sends.isEmpty else { return }
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
        } while connection?.hasBufferedInput == true
    }

    /// Takes one delivery if one has come (a call with a zero timeout: it also sends a heartbeat when one is due).
    private func receive() {
        guard let connection else { return }
        amqp_maybe_release_buffers(connection.state)
        var envelope = amqp_envelope_t()
        var immediately = timeval(tv_sec: 0, tv_usec: 0)
        let reply = amqp_consume_message(connection.state, &envelope, &immediately, 0)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            defer { amqp_destroy_envelope(&envelope) }
            // Stopping, it stays unacknowledged (see `ConsumerDeliveries.received`).
            guard deliveries.received(envelope.delivery_tag) else { return }
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
        connection?.markBroken()
        connection?.close()
        connection = nil
        deliveries.connectionLost()
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
            acknowledger: Acknowledger(consumer: self, generation: deliveries.generation),
            tag: envelope.delivery_tag)
    }

    private struct Acknowledger: DeliveryAcknowledger {
        let consumer: AMQPConsumer
        let generation: Int
        func ack(_ tag: UInt64) async { consumer.settle(generation: generation, tag: tag, ack: true) }
        func release(_ tag: UInt64) async { consumer.settle(generation: generation, tag: tag, ack: false) }
    }
}
