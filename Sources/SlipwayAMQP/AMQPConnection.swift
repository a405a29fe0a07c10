import CRabbitMQ
import Foundation
import SlipwayTransport

/// One librabbitmq connection with one open channel. Not thread-safe: its owner calls it from one thread only
/// (the publisher's or the consumer's own thread).
final class AMQPConnection {
    static let channel: amqp_channel_t = 1

    let state: amqp_connection_state_t
    private(set) var isOpen = false
    /// Kept until the connection is destroyed: OpenSSL's callbacks write to it during the handshake.
    private var tlsSocket: AMQPTLSSocket?
    /// The node this connection is to.
    let node: AMQPConfiguration.Node
    /// The queue type of the durable queues it declares.
    let queueType: QueueType
    /// Called once, when the connection breaks (see `AMQPNodeRotation`).
    var onBroken: (() -> Void)?

    /// A connection to `node` (one of `configuration.nodes`); `AMQPNodeRotation.connect()` picks the node.
    init(configuration: AMQPConfiguration, node: AMQPConfiguration.Node) throws {
        guard let state = amqp_new_connection() else {
            throw TransportError(.libraryFailed, "librabbitmq could not allocate a connection")
        }
        self.state = state
        self.node = node
        queueType = configuration.queueType
        var configuration = configuration
        configuration.nodes = [node]
        do {
            try open(configuration)
        } catch {
            amqp_destroy_connection(state)
            throw error
        }
        isOpen = true
    }

    private func open(_ configuration: AMQPConfiguration) throws {
        let socket: OpaquePointer
        if let tls = configuration.tls {
            let tlsSocket = try AMQPTLSSocket(state: state, configuration: configuration, tls: tls)
            self.tlsSocket = tlsSocket
            socket = tlsSocket.socket
        } else {
            guard let tcp = amqp_tcp_socket_new(state) else {
                throw TransportError(.libraryFailed, "librabbitmq could not create a socket")
            }
            socket = tcp
        }
        var timeout = timeval(configuration.connectTimeout)
        let status = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &timeout)
        guard status == AMQP_STATUS_OK.rawValue else {
            if let tlsSocket { throw tlsSocket.openingFailed(status) }
            throw TransportError(
                .unreachable,
                "cannot reach RabbitMQ at \(configuration.host):\(configuration.port): \(Self.statusText(status))")
        }
        // No call on this connection may wait for the broker without end: it runs on a loop's thread that every
        // other connection of the process shares. A node in trouble (or a cluster re-forming after losing one) can
        // accept a connection and then leave an RPC unanswered; librabbitmq's default RPC timeout is infinite.
        var handshake = timeval(configuration.connectTimeout)
        amqp_set_handshake_timeout(state, &handshake)
        var rpc = timeval(configuration.rpcTimeout)
        amqp_set_rpc_timeout(state, &rpc)
        let login = slipway_amqp_login_plain(
            state, configuration.virtualHost, 1, 131_072, Int32(configuration.heartbeatSeconds), configuration.user,
            configuration.password)
        do {
            try check(login, "logging in to \(configuration.redactedURL)", loggingIn: true)
        } catch let error as TransportError where tlsSocket != nil {
            // A broker that rejects the client's certificate says so only after a TLS 1.3 handshake, here.
            // The alert's reason is not always read before the socket fails; with a client certificate that is still
            // the likeliest cause, and worth saying.
            guard let reason = AMQPTLSSocket.takeReason() else {
                guard configuration.tls?.certFile != nil, error.message.contains("SSL") else { throw error }
                throw TransportError(
                    .tlsFailed,
                    "\(error.message) (TLS: the broker closed the session while logging in: "
                        + "the broker does not accept the client certificate?)")
            }
            throw TransportError(.tlsFailed, "\(error.message) (TLS: \(AMQPTLSSocket.explainAlert(reason)))")
        }
        amqp_channel_open(state, Self.channel)
        try check(amqp_get_rpc_reply(state), "opening a channel")
    }

    /// Closes politely if it can; always frees the connection.
    func close() {
        if isOpen {
            isOpen = false
            amqp_channel_close(state, Self.channel, Int32(AMQP_REPLY_SUCCESS))
            amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
        }
        amqp_destroy_connection(state)
    }

    /// Marks the connection unusable after an error; `close()` then only frees it.
    func markBroken() {
        isOpen = false
        let broken = onBroken
        onBroken = nil
        broken?()
    }

    /// librabbitmq sends and checks heartbeats only inside its calls: an idle connection is read at least this often.
    static let readAtLeastEvery = Duration.seconds(1)

    /// Input librabbitmq has already taken off the socket: `poll` will not report it, so it must be read first.
    var hasBufferedInput: Bool { amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 }

    func enableConfirms() throws {
        amqp_confirm_select(state, Self.channel)
        try check(amqp_get_rpc_reply(state), "enabling publisher confirms")
    }

    func setPrefetch(_ count: Int) throws {
        amqp_basic_qos(state, Self.channel, 0, UInt16(clamping: count), 0)
        try check(amqp_get_rpc_reply(state), "setting prefetch to \(count)")
    }

    func startConsuming(queue: String) throws {
        queue.withBytes { q in
            _ = amqp_basic_consume(state, Self.channel, q, amqp_empty_bytes, 0, 0, 0, amqp_empty_table)
        }
        try check(amqp_get_rpc_reply(state), "consuming from '\(queue)'")
    }

    func publish(_ message: OutgoingMessage) throws {
        var properties = amqp_basic_properties_t()
        properties._flags = amqp_flags_t(SLIPWAY_FLAG_DELIVERY_MODE)
        properties.delivery_mode = message.persistent ? 2 : 1
        // Every C string below must outlive amqp_basic_publish; they are freed when this scope ends.
        var allocations: [UnsafeMutablePointer<CChar>] = []
        defer { allocations.forEach { free($0) } }
        func bytes(_ text: String) -> amqp_bytes_t {
            let pointer = strdup(text)!
            allocations.append(pointer)
            return amqp_bytes_t(len: strlen(pointer), bytes: pointer)
        }
        if let contentType = message.contentType {
            properties._flags |= amqp_flags_t(SLIPWAY_FLAG_CONTENT_TYPE)
            properties.content_type = bytes(contentType)
        }
        if let messageID = message.messageID {
            properties._flags |= amqp_flags_t(SLIPWAY_FLAG_MESSAGE_ID)
            properties.message_id = bytes(messageID)
        }
        if let correlationID = message.correlationID {
            properties._flags |= amqp_flags_t(SLIPWAY_FLAG_CORRELATION_ID)
            properties.correlation_id = bytes(correlationID)
        }
        let entries = UnsafeMutablePointer<amqp_table_entry_t>.allocate(capacity: max(message.headers.count, 1))
        defer { entries.deallocate() }
        if !message.headers.isEmpty {
            for (index, (key, value)) in message.headers.sorted(by: { $0.key < $1.key }).enumerated() {
                var field = amqp_field_value_t()
                field.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                field.value.bytes = bytes(value)
                entries[index] = amqp_table_entry_t(key: bytes(key), value: field)
            }
            properties._flags |= amqp_flags_t(SLIPWAY_FLAG_HEADERS)
            properties.headers = amqp_table_t(num_entries: Int32(message.headers.count), entries: entries)
        }
        let status = message.body.withUnsafeBytes { body in
            let payload = amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress))
            return message.exchange.withBytes { exchange in
                message.routingKey.withBytes { routingKey in
                    amqp_basic_publish(state, Self.channel, exchange, routingKey, 0, 0, &properties, payload)
                }
            }
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            markBroken()
            throw TransportError(.connectionLost, "publishing to '\(message.routingKey)': \(Self.statusText(status))")
        }
    }

    func ack(_ deliveryTag: UInt64) -> Bool {
        amqp_basic_ack(state, Self.channel, deliveryTag, 0) == 0
    }

    func reject(_ deliveryTag: UInt64, requeue: Bool) -> Bool {
        amqp_basic_reject(state, Self.channel, deliveryTag, requeue ? 1 : 0) == 0
    }

    func cancel(consumerTag: String) {
        consumerTag.withBytes { tag in _ = amqp_basic_cancel(state, Self.channel, tag) }
    }

    /// Throws a readable error unless the RPC reply is normal; server and socket errors leave the connection unusable.
    /// `loggingIn`: a 403 then means the user name or password, not a permission.
    func check(_ reply: amqp_rpc_reply_t, _ doing: String, loggingIn: Bool = false) throws {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            markBroken()
            throw TransportError(.connectionLost, "\(doing): \(Self.statusText(reply.library_error))")
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            markBroken()
            // Refused for good (403 access refused: a password or a permission; 406 precondition failed: a queue
            // declared with other arguments; 530 not allowed): retrying cannot help, and would stall every publish.
            let replyCode = Self.serverReplyCode(reply)
            let permanent = [403, 406, 530].contains(replyCode)
            throw TransportError(
                loggingIn && replyCode == 403 ? .authenticationFailed : .refusedByBroker,
                "\(doing): the broker refused: \(Self.serverReplyText(reply))", permanent: permanent)
        default:
            markBroken()
            throw TransportError(.connectionLost, "\(doing): no reply from the broker")
        }
    }

    static func serverReplyCode(_ reply: amqp_rpc_reply_t) -> Int? {
        switch reply.reply.id {
        case amqp_method_number_t(SLIPWAY_CONNECTION_CLOSE_METHOD):
            Int(reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee.reply_code)
        case amqp_method_number_t(SLIPWAY_CHANNEL_CLOSE_METHOD):
            Int(reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee.reply_code)
        default:
            nil
        }
    }

    static func serverReplyText(_ reply: amqp_rpc_reply_t) -> String {
        switch reply.reply.id {
        case amqp_method_number_t(SLIPWAY_CONNECTION_CLOSE_METHOD):
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            return "\(close.reply_code) \(String(amqpBytes: close.reply_text))"
        case amqp_method_number_t(SLIPWAY_CHANNEL_CLOSE_METHOD):
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            return "\(close.reply_code) \(String(amqpBytes: close.reply_text))"
        default:
            return "method \(reply.reply.id)"
        }
    }

    static func statusText(_ status: Int32) -> String {
        String(cString: amqp_error_string2(status))
    }
}

extension String {
    init(amqpBytes bytes: amqp_bytes_t) {
        guard bytes.len > 0, let pointer = bytes.bytes else {
            self = ""
            return
        }
        self = String(decoding: UnsafeRawBufferPointer(start: pointer, count: bytes.len), as: UTF8.self)
    }

    func withBytes<R>(_ body: (amqp_bytes_t) -> R) -> R {
        var copy = self
        return copy.withUTF8 { utf8 in
            body(amqp_bytes_t(len: utf8.count, bytes: UnsafeMutableRawPointer(mutating: utf8.baseAddress)))
        }
    }
}

extension [UInt8] {
    init(amqpBytes bytes: amqp_bytes_t) {
        guard bytes.len > 0, let pointer = bytes.bytes else {
            self = []
            return
        }
        self = Array(UnsafeRawBufferPointer(start: pointer, count: bytes.len))
    }
}

extension timeval {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}

func amqpHeaders(_ table: amqp_table_t) -> [String: String] {
    guard table.num_entries > 0, let entries = table.entries else { return [:] }
    var headers: [String: String] = [:]
    for index in 0..<Int(table.num_entries) {
        let entry = entries[index]
        let key = String(amqpBytes: entry.key)
        switch Int32(entry.value.kind) {
        case Int32(AMQP_FIELD_KIND_UTF8.rawValue), Int32(AMQP_FIELD_KIND_BYTES.rawValue):
            headers[key] = String(amqpBytes: entry.value.value.bytes)
        case Int32(AMQP_FIELD_KIND_I32.rawValue): headers[key] = String(entry.value.value.i32)
        case Int32(AMQP_FIELD_KIND_I64.rawValue): headers[key] = String(entry.value.value.i64)
        case Int32(AMQP_FIELD_KIND_U64.rawValue): headers[key] = String(entry.value.value.u64)
        case Int32(AMQP_FIELD_KIND_BOOLEAN.rawValue): headers[key] = entry.value.value.boolean != 0 ? "true" : "false"
        default: continue  // Arrays and tables (x-death, ...) are not ours to read.
        }
    }
    return headers
}
