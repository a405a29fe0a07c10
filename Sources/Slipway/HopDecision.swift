import Foundation
import SlipwayCore
import SlipwayTransport

/// What a hop produces, decided from the slip and the handler's outcome. No I/O here: the runtime carries it out.
enum HopDecision: Sendable {
    /// The handler threw and has attempts left: the same hop goes back to the queue with the next attempt number
    /// (the messages: the slip for the next attempt, through a delay queue when the policy waits, and the failed
    /// attempt's hop event).
    case retry([OutgoingMessage])
    /// The hop is done (completed, faulted or failed): record it, then publish everything it produces.
    case record(outcome: String, outgoing: [OutgoingMessage])
}

/// Builds the messages a slip's next move needs, by the topology's conventions.
struct MessageFactory: Sendable {
    let topology: Topology
    let codec: SlipCodec
    let instance: String
    let signing: SigningKeys?

    /// What a finished hop publishes: its hop event, then where the slip goes: the next step, the next
    /// compensation, or (terminal) a terminal event; a compensation-failed slip is parked in the dead-letter queue too.
    /// `delayMs`: the step asked for the slip to wait that long before the next step (a delay step).
    func forward(_ slip: Slip, lastStep: String, delayMs: Int = 0) throws -> [OutgoingMessage] {
        try [hopEvent(slip)] + destination(slip, lastStep: lastStep, delayMs: delayMs)
    }

    /// A hop that threw and will be tried again: the slip back to the same queue (after `delayMs`, through a delay
    /// queue that dead-letters into it), and the attempt's hop event.
    func retry(_ slip: Slip, queue: String, delayMs: Int) throws -> HopDecision {
        .retry([try slipMessage(slip, to: delayed(queue, delayMs)), try hopEvent(slip)])
    }

    /// The queue itself, or the delay queue in front of it.
    private func delayed(_ queue: String, _ delayMs: Int) -> String {
        delayMs > 0 ? topology.delayQueue(for: queue, delayMs: delayMs) : queue
    }

    /// The event of the hop the slip's log ended with.
    func hopEvent(_ slip: Slip) throws -> OutgoingMessage {
        guard let entry = slip.log.last else { throw ProcessorError("a hop event needs a hop in the slip's log") }
        return try eventMessage(SlipEvent(hop: entry, slip: slip))
    }

    private func destination(_ slip: Slip, lastStep: String, delayMs: Int) throws -> [OutgoingMessage] {
        switch slip.state {
        case .running:
            return [try slipMessage(slip, to: delayed(topology.executeQueue(step: slip.itinerary[0].step), delayMs))]
        case .compensating:
            return [try slipMessage(slip, to: slip.compensations[slip.compensations.count - 1].address)]
        case .compensationFailed:
            let reason = slip.log.last?.reason ?? "compensation failed"
            let body = try codec.encode(slip)
            let parked = try park(
                body: body, code: "compensation-failed", reason: reason,
                queue: topology.compensateQueue(step: lastStep), slipID: slip.id,
                signature: signing?.signatureHeaders(for: body) ?? [:])
            return [parked, try terminalEvent(slip, lastStep: lastStep)]
        case .completed, .compensated, .faulted, .terminated:
            return [try terminalEvent(slip, lastStep: lastStep)]
        }
    }

    func slipMessage(_ slip: Slip, to queue: String) throws -> OutgoingMessage {
        let body = try codec.encode(slip)
        return .toQueue(
            queue, body: body, headers: signing?.signatureHeaders(for: body) ?? [:],
            messageID: "\(slip.id).\(slip.sequence).\(slip.attempt)", correlationID: slip.id,
            contentType: SlipCodec.contentType)
    }

    func terminalEvent(_ slip: Slip, lastStep: String) throws -> OutgoingMessage {
        let last = slip.log.last
        let event = SlipEvent(
            slipID: slip.id, template: slip.template, kind: .terminal, step: lastStep,
            sequence: max(slip.sequence - 1, 0), attempt: last?.attempt ?? 1, outcome: slip.state.rawValue,
            state: slip.state, processor: instance, reason: slip.fault?.reason, fault: slip.fault,
            createdAt: slip.createdAt, log: slip.log)
        return try eventMessage(event)
    }

    func eventMessage(_ event: SlipEvent) throws -> OutgoingMessage {
        OutgoingMessage(
            exchange: topology.eventsExchange, routingKey: event.routingKey,
            body: try event.jsonBytes(), messageID: event.id,
            correlationID: event.slipID, contentType: SlipEventWire.contentType)
    }

    /// A message for the dead-letter queue: the original body untouched (so a replay sends exactly what came), and
    /// why it was parked in headers.
    /// `signature`: the original message's signature headers, kept so that a replay of the same bytes verifies.
    func park(
        body: [UInt8], code: String, reason: String, queue: String, slipID: String?, signature: [String: String] = [:]
    ) throws -> OutgoingMessage {
        var headers = [
            ParkedHeaders.parkedID: UUID().uuidString.lowercased(),
            ParkedHeaders.reasonCode: code,
            ParkedHeaders.reason: String(reason.prefix(1_000)),
            ParkedHeaders.originalQueue: queue,
            ParkedHeaders.processor: instance,
            ParkedHeaders.parkedAt: Date().formatted(.iso8601),
        ]
        if let slipID { headers[ParkedHeaders.slipID] = slipID }
        headers.merge(signature) { parked, _ in parked }
        return OutgoingMessage.toQueue(
            topology.deadLetterQueue, body: body, headers: headers, messageID: slipID.map { "\($0).parked" },
            correlationID: slipID)
    }

    /// The event that tells the audit trail (and a producer waiting for the slip) a message was parked.
    ///
    /// `slip`: the slip as decoded and verified. Otherwise `peek`, the id read from a body that is not a valid or
    /// verified slip: the event names that slip (its template and sequence too, when readable) so the operator sees the
    /// park where the slip is, but gets an id of its own, so that such a body, forged or not, never takes the place of
    /// another event in the audit trail. Its state is a guess (`running`); the audit trail keeps the state it knew.
    func parkedEvent(slip: Slip?, peek: SlipPeek? = nil, step: String, code: String, reason: String) throws
        -> OutgoingMessage
    {
        let event: SlipEvent
        if let slip {
            event = SlipEvent(
                slipID: slip.id, template: slip.template, kind: .parked, step: step, sequence: slip.sequence,
                attempt: slip.attempt, outcome: code, state: slip.state, processor: instance, reason: reason)
        } else if let peek {
            event = SlipEvent(
                id: "\(peek.slipID).parked.\(UUID().uuidString.lowercased())", slipID: peek.slipID,
                template: peek.template ?? "unknown", kind: .parked, step: step, sequence: peek.sequence ?? 0,
                attempt: 1, outcome: code, state: .running, processor: instance, reason: reason)
        } else {
            // A message that is not a slip has no stable identity: its parking gets an id of its own.
            event = SlipEvent(
                id: "unknown.parked.\(UUID().uuidString.lowercased())", slipID: "unknown", template: "unknown",
                kind: .parked, step: step, sequence: 0, attempt: 1, outcome: code, state: .running,
                processor: instance, reason: reason)
        }
        return try eventMessage(event)
    }
}

/// Headers of a parked message in the dead-letter queue.
public enum ParkedHeaders {
    /// Names one parked message, for `slip dlq show|replay|drop`.
    public static let parkedID = "x-slipway-parked-id"
    public static let reasonCode = "x-slipway-reason-code"
    public static let reason = "x-slipway-reason"
    public static let originalQueue = "x-slipway-original-queue"
    public static let processor = "x-slipway-processor"
    public static let parkedAt = "x-slipway-parked-at"
    public static let slipID = "x-slipway-slip-id"
}
