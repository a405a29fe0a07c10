import Foundation
import SlipwayCore
import SlipwayTransport

/// The producer side: sends slips to their first step and, if asked, waits for their end.
public struct SlipSender: Sendable {
    public let transport: any MessageTransport
    public let topology: Topology
    public let codec: SlipCodec
    /// Signs every slip sent, when signing is on.
    public let signing: SigningKeys?

    public init(
        transport: any MessageTransport, topology: Topology = Topology(), limits: SlipLimits = SlipLimits(),
        signing: SigningKeys? = nil
    ) {
        self.transport = transport
        self.topology = topology
        self.codec = SlipCodec(limits: limits)
        self.signing = signing
    }

    /// Validates the slip and publishes it to its first step's queue; returns once the broker has confirmed it.
    public func send(_ slip: Slip) async throws {
        try await send([slip])
    }

    /// Validates every slip first (none is sent if one is invalid), then publishes them all and waits once for the
    /// broker's confirms: much faster than one `send` per slip.
    public func send(_ slips: [Slip]) async throws {
        let messages = try slips.map { try Self.message(for: $0, topology: topology, codec: codec, signing: signing) }
        try await publish(messages)
    }

    /// What `send` publishes for a slip: validated, encoded, signed if `signing` is given, addressed to its first
    /// step's queue (the message's routing key). A producer outbox stores it and publishes it later with `publish`.
    public static func message(for slip: Slip, topology: Topology, codec: SlipCodec, signing: SigningKeys?) throws
        -> OutgoingMessage
    {
        try slip.validate(limits: codec.limits)
        guard slip.state == .running, let first = slip.itinerary.first else {
            throw SlipRejection(.invalid, "slip \(slip.id): only a running slip with a step to run can be sent")
        }
        let body = try codec.encode(slip)
        guard body.count <= codec.limits.maxMessageBytes else {
            throw SlipRejection(
                .tooLarge, "slip \(slip.id) has \(body.count) bytes; the limit is \(codec.limits.maxMessageBytes)")
        }
        return .toQueue(
            topology.executeQueue(step: first.step), body: body, headers: signing?.signatureHeaders(for: body) ?? [:],
            messageID: "\(slip.id).\(slip.sequence).\(slip.attempt)", correlationID: slip.id,
            contentType: SlipCodec.contentType)
    }

    /// Declares the queues of slip messages made by `message(for:...)` (their routing keys), publishes them all and
    /// returns once the broker has confirmed every one.
    public func publish(_ messages: [OutgoingMessage]) async throws {
        for queue in Set(messages.map(\.routingKey)).sorted() { try await transport.declareQueue(queue) }
        try await transport.publish(messages)
    }

    /// Sends the slip and waits for its terminal event (completed, compensated, faulted, compensation-failed,
    /// terminated), or for its parked event: a slip parked in the dead-letter queue (`kind == .parked`, the reason code
    /// in `outcome`, the reason in `reason`) goes no further until its message is replayed. Listens before sending, so
    /// even an instant end is not missed.
    public func sendAndWait(_ slip: Slip, timeout: Duration) async throws -> SlipEvent {
        let follower = try await SlipEventFollower.endEvents(of: [slip.id], transport: transport, topology: topology)
        defer { follower.stop() }
        try await send(slip)
        guard let event = await follower.next(timeout: timeout) else {
            throw SlipTimeout(slipIDs: [slip.id], timeout: timeout)
        }
        return event
    }
}

/// The slips that did not end in time.
public struct SlipTimeout: Error, Sendable, CustomStringConvertible {
    public var slipIDs: [String]
    public var timeout: Duration
    public var description: String {
        "no terminal event within \(timeout) for \(slipIDs.count == 1 ? "slip \(slipIDs[0])" : "\(slipIDs.count) slips")"
    }
}

/// Follows slip events from the events exchange.
public final class SlipEventFollower: Sendable {
    private let deliveries: DeliveryStream
    private let buffer = EventBuffer()
    private let pump: Task<Void, Never>

    public init(transport: any MessageTransport, topology: Topology = Topology(), bindingKeys: [String]) async throws {
        try await transport.declareTopicExchange(topology.eventsExchange)
        let deliveries = try await transport.subscribe(exchange: topology.eventsExchange, bindingKeys: bindingKeys)
        self.deliveries = deliveries
        let buffer = self.buffer
        // One task reads the stream; callers wait on the buffer, so a caller's timeout never cancels the stream.
        pump = Task {
            do {
                for try await delivery in deliveries {
                    await delivery.ack()
                    for event in (try? SlipEventWire.decode(delivery.body)) ?? [] {
                        await buffer.push(event)
                    }
                }
            } catch {}
            await buffer.finish()
        }
    }

    /// The terminal events of these slips (all slips' when `slipIDs` is empty).
    public static func terminalEvents(of slipIDs: [String], transport: any MessageTransport, topology: Topology = Topology())
        async throws -> SlipEventFollower
    {
        let keys = slipIDs.isEmpty ? ["terminal.#"] : slipIDs.map { topology.terminalBindingKey(slipID: $0) }
        return try await SlipEventFollower(transport: transport, topology: topology, bindingKeys: keys)
    }

    /// The events that end a wait for these slips (all slips' when `slipIDs` is empty): terminal events, and parked
    /// events, which name the slip whenever its id could be read from the parked message, even an invalid or
    /// unverified one (a label: anyone who can publish to a step's queue can make a slip id appear parked).
    public static func endEvents(of slipIDs: [String], transport: any MessageTransport, topology: Topology = Topology())
        async throws -> SlipEventFollower
    {
        let keys =
            slipIDs.isEmpty
            ? ["terminal.#", "parked.#"]
            : slipIDs.flatMap { [topology.terminalBindingKey(slipID: $0), "\(SlipEvent.Kind.parked.rawValue).*.\($0)"] }
        return try await SlipEventFollower(transport: transport, topology: topology, bindingKeys: keys)
    }

    /// The next event, or nil once `timeout` passes without one (or the subscription ends).
    public func next(timeout: Duration) async -> SlipEvent? {
        await buffer.next(timeout: timeout)
    }

    public func stop() {
        deliveries.stop()
    }

    /// Events not yet taken, and the callers waiting for one (first come, first served).
    private actor EventBuffer {
        private var events: [SlipEvent] = []
        private var finished = false
        private var waiters: [(id: Int, continuation: CheckedContinuation<SlipEvent?, Never>)] = []
        private var nextWaiterID = 0

        func push(_ event: SlipEvent) {
            if waiters.isEmpty {
                events.append(event)
            } else {
                waiters.removeFirst().continuation.resume(returning: event)
            }
        }

        func finish() {
            finished = true
            for waiter in waiters { waiter.continuation.resume(returning: nil) }
            waiters.removeAll()
        }

        func next(timeout: Duration) async -> SlipEvent? {
            if !events.isEmpty { return events.removeFirst() }
            if finished { return nil }
            nextWaiterID += 1
            let id = nextWaiterID
            return await withCheckedContinuation { continuation in
                waiters.append((id, continuation))
                Task {
                    try? await Task.sleep(for: timeout)
                    self.expire(id)
                }
            }
        }

        private func expire(_ id: Int) {
            guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
            waiters.remove(at: index).continuation.resume(returning: nil)
        }
    }
}
