import CRabbitMQ
import SlipwayTransport

// What a connection declares and binds: queues (with their type and arguments), topic exchanges, bindings. Each is a
// request the broker answers, bounded by the connection's `rpc_timeout`.
extension AMQPConnection {
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
}
