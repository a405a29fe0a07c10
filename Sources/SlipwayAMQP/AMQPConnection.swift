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

    /// Declares a queue. A durable, shared queue has this connection's `queueType`; an exclusive or auto-delete one
    /// is always classic (a quorum queue can be neither).
    func declareQueue(
        _ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
        arguments: QueueArguments = QueueArguments()
    ) throws -> String {
        let type = durable && !exclusive && !autoDelete ? queueType : .classic
        let fields = Self.queueFields(arguments, type: type)
        let reply = withTable(fields) { table in
            name.withBytes { queue in
                amqp_queue_declare(
                    state, Self.channel, queue, 0, durable ? 1 : 0, exclusive ? 1 : 0, autoDelete ? 1 : 0, table)
            }
        }
        do {
            try check(amqp_get_rpc_reply(state), "declaring queue '\(name)'")
        } catch let error as TransportError where error.message.contains("inequivalent arg 'x-queue-type'") {
            throw Self.queueTypeMismatch(name, declared: type, error: error)
        }
        guard let reply else { throw TransportError(.connectionLost, "declaring queue '\(name)' gave no reply") }
        return String(amqpBytes: reply.pointee.queue)
    }

    /// The declare's arguments. A quorum queue that dead-letters (a delay queue) does so at least once: RabbitMQ
    /// (3.10+) then keeps an expired message until the queue it goes to has confirmed it, where at-most-once (the
    /// default, and classic queues' only way) drops it if that fails, as when a node goes down. At-least-once needs
    /// `x-overflow: reject-publish`; no length limit is set, so the overflow setting never rejects anything.
    static func queueFields(_ arguments: QueueArguments, type: QueueType) -> [(String, FieldValue)] {
        var fields: [(String, FieldValue)] = []
        if type == .quorum { fields.append(("x-queue-type", .text("quorum"))) }
        if let ttl = arguments.messageTTLMs { fields.append(("x-message-ttl", .int(ttl))) }
        if let exchange = arguments.deadLetterExchange { fields.append(("x-dead-letter-exchange", .text(exchange))) }
        if let key = arguments.deadLetterRoutingKey { fields.append(("x-dead-letter-routing-key", .text(key))) }
        if let expires = arguments.expiresMs { fields.append(("x-expires", .int(expires))) }
        if type == .quorum && arguments.deadLetterExchange != nil {
            fields.append(("x-dead-letter-strategy", .text("at-least-once")))
            fields.append(("x-overflow", .text("reject-publish")))
        }
        return fields
    }

    /// RabbitMQ's "inequivalent arg 'x-queue-type'", in words that say what to do.
    static func queueTypeMismatch(_ name: String, declared: QueueType, error: TransportError) -> TransportError {
        let existing = declared == .quorum ? "a classic" : "a quorum"
        let fix =
            declared == .quorum
            ? "drain and delete it, or declare classic queues (--queue-type classic); see docs/deploy.md, moving to quorum queues"
            : "declare quorum queues (--queue-type quorum, or SLIPWAY_QUEUE_TYPE=quorum) in every processor and slip command"
        return TransportError(
            .queueTypeMismatch,
            "queue '\(name)' exists as \(existing) queue; this client declares \(declared.rawValue) queues "
                + "(--queue-type, SLIPWAY_QUEUE_TYPE): \(fix) (the broker said: \(error.message))",
            permanent: true)
    }

    enum FieldValue {
        case text(String)
        case int(Int)
    }

    /// Builds an AMQP field table whose memory lives for the duration of `body`.
    private func withTable<R>(_ fields: [(String, FieldValue)], _ body: (amqp_table_t) -> R) -> R {
        guard !fields.isEmpty else { return body(amqp_empty_table) }
        var allocations: [UnsafeMutablePointer<CChar>] = []
        defer { allocations.forEach { free($0) } }
        func bytes(_ text: String) -> amqp_bytes_t {
            let pointer = strdup(text)!
            allocations.append(pointer)
            return amqp_bytes_t(len: strlen(pointer), bytes: pointer)
        }
        let entries = UnsafeMutablePointer<amqp_table_entry_t>.allocate(capacity: fields.count)
        defer { entries.deallocate() }
        for (index, (key, value)) in fields.enumerated() {
            var field = amqp_field_value_t()
            switch value {
            case .text(let text):
                field.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                field.value.bytes = bytes(text)
            case .int(let number):
                // RabbitMQ takes x-message-ttl and x-expires as a signed 64-bit "long".
                field.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
                field.value.i64 = Int64(number)
            }
            entries[index] = amqp_table_entry_t(key: bytes(key), value: field)
        }
        return body(amqp_table_t(num_entries: Int32(fields.count), entries: entries))
    }

    func declareTopicExchange(_ name: String) throws {
        name.withBytes { exchange in
            "topic".withBytes { type in
                _ = amqp_exchange_declare(state, Self.channel, exchange, type, 0, 1, 0, 0, amqp_empty_table)
            }
        }
        try check(amqp_get_rpc_reply(state), "declaring exchange '\(name)'")
    }

    func bindQueue(_ queue: String, exchange: String, bindingKey: String) throws {
        queue.withBytes { q in
            exchange.withBytes { e in
                bindingKey.withBytes { k in _ = amqp_queue_bind(state, Self.channel, q, e, k, amqp_empty_table) }
            }
        }
        try check(amqp_get_rpc_reply(state), "binding '\(queue)' to '\(exchange)' with '\(bindingKey)'")
    }

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
