import CRabbitMQ
import Logging
import SlipwayTransport

// The publisher's reading side, on the loop's thread: the broker's confirms (`basic.ack`, `basic.nack`), its
// `connection.blocked` and `unblocked`, a channel or connection closed by it, and the heartbeats of an idle
// connection. The state it uses is the publisher's (AMQPPublisher.swift).
extension AMQPPublisher {
    /// Reads the frames already received (and, when `readable`, what the socket holds), without waiting: confirmed
    /// requests resume as their acks come.
    func readConfirms(readable: Bool) {
        guard let connection = connection.value else { return }
        if readable || connection.hasBufferedInput {
            lastRead.value = clock.now
            readFrames(connection)
        }
        if blockedSince.value == nil, confirms.value.isConfirmOverdue(at: clock.now) {
            failed(TransportError(.publishTimedOut, "no publisher confirm within \(configuration.publishDeadline)"), doing: "publishing")
        }
    }

    private func readFrames(_ connection: AMQPConnection) {
        do {
            // Every frame already received, without blocking.
            while true {
                amqp_maybe_release_buffers(connection.state)
                var frame = amqp_frame_t()
                var immediately = timeval(tv_sec: 0, tv_usec: 0)
                let status = amqp_simple_wait_frame_noblock(connection.state, &frame, &immediately)
                if status == AMQP_STATUS_TIMEOUT.rawValue { break }
                guard status == AMQP_STATUS_OK.rawValue else {
                    throw TransportError(.connectionLost, "waiting for publisher confirms: \(AMQPConnection.statusText(status))")
                }
                try handle(frame, on: connection)
                if !connection.hasBufferedInput { break }
            }
        } catch {
            failed(error, doing: "waiting for publisher confirms")
        }
    }

    private func handle(_ frame: amqp_frame_t, on connection: AMQPConnection) throws {
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return }
        let method = frame.payload.method
        switch method.id {
        case amqp_method_number_t(SLIPWAY_BASIC_ACK_METHOD):
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            for publish in confirms.value.acked(ack.delivery_tag, multiple: ack.multiple != 0) { publish.continuation.resume() }
        case amqp_method_number_t(SLIPWAY_BASIC_NACK_METHOD):
            // Taken as a failed connection: what it had not confirmed is sent again on a new one, until the publish
            // deadline. Failing the publish instead (its hop's delivery comes back, and it publishes again) is not
            // enough: after a quorum queue's leader is lost, RabbitMQ 3.10 went on nacking every publish to that
            // queue on the same channel, for minutes, while a new connection was taken at once (the cluster suite's
            // node-loss test caught it).
            throw TransportError(.publishRejected, "the broker refused a published message (basic.nack)")
        case amqp_method_number_t(SLIPWAY_CONNECTION_BLOCKED_METHOD):
            var method = method
            blocked(reason: String(amqpBytes: slipway_connection_blocked_reason(&method)))
        case amqp_method_number_t(SLIPWAY_CONNECTION_UNBLOCKED_METHOD):
            unblocked(by: "RabbitMQ unblocked publishing")
        case amqp_method_number_t(SLIPWAY_CHANNEL_CLOSE_METHOD), amqp_method_number_t(SLIPWAY_CONNECTION_CLOSE_METHOD):
            var reply = amqp_rpc_reply_t()
            reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION
            reply.reply = method
            throw TransportError(.closedByBroker, "publishing: the broker closed the channel: \(AMQPConnection.serverReplyText(reply))")
        default:
            return
        }
    }

    /// The broker blocks this connection: say so once, with its reason, and hold everything until it unblocks.
    private func blocked(reason: String) {
        guard blockedSince.value == nil else { return }
        blockedSince.value = clock.now
        shared.withLock { $0.isBlocked = true }
        logger.warning(
            "RabbitMQ blocked publishing (\(reason.isEmpty ? "a resource alarm" : reason)): hops in flight wait, and no new hop starts until it unblocks; see the broker's memory and disk alarms",
            metadata: ["amqp.blocked_reason": "\(reason)"])
    }

    /// The block is over (the broker said so, or the blocked connection is gone): the time it lasted is added to
    /// every deadline it overlapped, and what waited goes on.
    func unblocked(by how: String) {
        guard let since = blockedSince.value else { return }
        let now = clock.now
        blockedSince.value = nil
        let deadline = configuration.publishDeadline
        confirms.value.extendDeadlines(blockedSince: since, now: now, deadline: deadline)
        operations.value.extendDeadlines(blockedSince: since, now: now, deadline: deadline)
        let waiters = shared.withLock { shared in
            shared.isBlocked = false
            defer { shared.blockedWaiters.removeAll() }
            return shared.blockedWaiters
        }
        let seconds = since.duration(to: now).seconds
        logger.info(
            "\(how) after \(String(format: "%.1f", seconds)) s", metadata: ["amqp.blocked_ms": "\(Int(seconds * 1000))"])
        for waiter in waiters { waiter.resume() }
    }

    /// Lets librabbitmq send and check heartbeats on a connection that has nothing to publish.
    func serviceIdleConnection() {
        guard let connection = connection.value, connection.isOpen else { return }
        lastRead.value = clock.now
        var frame = amqp_frame_t()
        var immediately = timeval(tv_sec: 0, tv_usec: 0)
        let status = amqp_simple_wait_frame_noblock(connection.state, &frame, &immediately)
        var lost: String?
        if status == AMQP_STATUS_OK.rawValue {
            do { try handle(frame, on: connection) } catch { lost = "\(error)" }  // a close, a blocked
        } else if status != AMQP_STATUS_TIMEOUT.rawValue {
            lost = AMQPConnection.statusText(status)
        }
        if let lost {
            logger.info("AMQP publisher: idle connection lost; it reconnects on the next publish", metadata: ["error": "\(lost)"])
            dropConnection()
        }
    }
}
