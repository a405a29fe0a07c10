import CRabbitMQ
import Foundation
import Logging
import SlipwayTransport

/// Publishes with publisher confirms on a connection of its own.
///
/// Publishes asked for while a batch is on the wire wait and then go out together, and one wait for the broker's
/// confirms (often a single `multiple` ack) covers them all: concurrent hops share a round trip.
final class AMQPPublisher: @unchecked Sendable {
    // Safe: `connection`, `nextTag` and `declaredQueues` are used only on `thread`; `pending` and `drainScheduled` only
    // under `lock`.
    private let configuration: AMQPConfiguration
    private let logger: Logger
    private var thread: ConfinedThread!
    private var connection: AMQPConnection?
    private var nextTag: UInt64 = 1
    private let lock = NSLock()
    private var pending: [(messages: [OutgoingMessage], continuation: CheckedContinuation<Void, any Error>)] = []
    private var drainScheduled = false
    private var isShutDown = false

    init(configuration: AMQPConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let heartbeat = max(1, TimeInterval(configuration.heartbeatSeconds) / 2)
        thread = ConfinedThread(name: "slipway-amqp-publisher", idleInterval: heartbeat) { [weak self] in
            self?.serviceIdleConnection()
        }
    }

    func publish(_ messages: [OutgoingMessage]) async throws {
        guard !messages.isEmpty else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let schedule: Bool? = lock.withLock {
                if isShutDown { return nil }
                pending.append((messages, continuation))
                defer { drainScheduled = true }
                return !drainScheduled
            }
            switch schedule {
            case nil: continuation.resume(throwing: TransportError("the publisher is shut down"))
            case true?: thread.submit { self.drain() }
            case false?: break
            }
        }
    }

    /// Runs `body` with a live connection on the publisher's thread, reconnecting (with backoff, until the publish
    /// deadline) when the connection is lost.
    func withConnection<T: Sendable>(_ doing: String, _ body: @escaping @Sendable (AMQPConnection) throws -> T)
        async throws -> T
    {
        try await thread.run { try self.retrying(doing) { try body($0) } }
    }

    func shutdown() async {
        lock.withLock { isShutDown = true }
        _ = try? await thread.run {
            self.connection?.close()
            self.connection = nil
        }
        thread.stop()
    }

    // MARK: On the publisher's thread

    private func drain() {
        lock.lock()
        let batch = pending
        pending.removeAll()
        drainScheduled = false
        lock.unlock()
        let messages = batch.flatMap(\.messages)
        do {
            try retrying("publishing \(messages.count) message(s)") { connection in
                try self.publishConfirmed(messages, on: connection)
            }
            for request in batch { request.continuation.resume() }
        } catch {
            for request in batch { request.continuation.resume(throwing: error) }
        }
    }

    private func retrying<T>(_ doing: String, _ body: (AMQPConnection) throws -> T) throws -> T {
        let clock = ContinuousClock()
        let giveUpAt = clock.now.advanced(by: configuration.publishDeadline)
        var backoff = configuration.reconnectBackoff.initial
        while true {
            do {
                return try body(try liveConnection())
            } catch {
                dropConnection()
                if let error = error as? TransportError, error.isPermanent { throw error }
                guard clock.now < giveUpAt else { throw error }
                logger.warning(
                    "AMQP publisher: \(doing) failed, reconnecting",
                    metadata: ["error": "\(error)", "retry.in": "\(backoff)"])
                Thread.sleep(forTimeInterval: backoff.seconds)
                backoff = min(backoff * 2, configuration.reconnectBackoff.max)
            }
        }
    }

    private func liveConnection() throws -> AMQPConnection {
        if let connection, connection.isOpen { return connection }
        dropConnection()
        let connection = try AMQPConnection(configuration: configuration)
        try connection.enableConfirms()
        self.connection = connection
        nextTag = 1
        return connection
    }

    private func dropConnection() {
        connection?.close()
        connection = nil
    }

    private func publishConfirmed(_ messages: [OutgoingMessage], on connection: AMQPConnection) throws {
        let first = nextTag
        for message in messages {
            try connection.publish(message)
            nextTag += 1
        }
        try awaitConfirms(from: first, upTo: nextTag - 1, on: connection)
    }

    /// Reads frames until every delivery tag in `first...last` is acked; a nack or a closed channel throws.
    private func awaitConfirms(from first: UInt64, upTo last: UInt64, on connection: AMQPConnection) throws {
        var confirmedBelow = first  // every tag below this is confirmed
        var confirmedAbove: Set<UInt64> = []  // single acks that arrived out of order
        var frame = amqp_frame_t()
        var timeout = timeval(configuration.publishDeadline / 4)
        while confirmedBelow <= last {
            amqp_maybe_release_buffers(connection.state)
            let status = amqp_simple_wait_frame_noblock(connection.state, &frame, &timeout)
            guard status == AMQP_STATUS_OK.rawValue else {
                connection.markBroken()
                throw TransportError("waiting for publisher confirms: \(AMQPConnection.statusText(status))")
            }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { continue }
            let method = frame.payload.method
            switch method.id {
            case amqp_method_number_t(SLIPWAY_BASIC_ACK_METHOD):
                let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                if ack.multiple != 0 {
                    confirmedBelow = max(confirmedBelow, ack.delivery_tag + 1)
                } else {
                    confirmedAbove.insert(ack.delivery_tag)
                }
                while confirmedAbove.remove(confirmedBelow) != nil { confirmedBelow += 1 }
            case amqp_method_number_t(SLIPWAY_BASIC_NACK_METHOD):
                connection.markBroken()
                throw TransportError("the broker refused a published message (basic.nack)")
            case amqp_method_number_t(SLIPWAY_CHANNEL_CLOSE_METHOD),
                amqp_method_number_t(SLIPWAY_CONNECTION_CLOSE_METHOD):
                connection.markBroken()
                var reply = amqp_rpc_reply_t()
                reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION
                reply.reply = method
                throw TransportError("publishing: the broker closed the channel: \(AMQPConnection.serverReplyText(reply))")
            default:
                continue
            }
        }
    }

    /// Lets librabbitmq send and check heartbeats on a connection that has nothing to publish.
    private func serviceIdleConnection() {
        guard let connection, connection.isOpen else { return }
        var frame = amqp_frame_t()
        var immediately = timeval(tv_sec: 0, tv_usec: 0)
        let status = amqp_simple_wait_frame_noblock(connection.state, &frame, &immediately)
        if status != AMQP_STATUS_OK.rawValue && status != AMQP_STATUS_TIMEOUT.rawValue {
            logger.info("AMQP publisher: idle connection lost; it reconnects on the next publish",
                        metadata: ["error": "\(AMQPConnection.statusText(status))"])
            dropConnection()
        }
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
