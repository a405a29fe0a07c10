import Foundation
import SlipwayCore
import SlipwayTransport

/// Builds the messages a slip's next move needs, by the topology's conventions.
struct MessageFactory: Sendable {
    let topology: Topology
    let codec: SlipCodec
    let instance: String
    let signing: SigningKeys?

    /// The queue itself, or the delay queue in front of it that holds a message `delayMs` (rounded up on the delay
    /// grid) and then dead-letters it into the queue.
    func delayed(_ queue: String, delayMs: Int) -> QueueDeclaration {
        guard delayMs > 0 else { return QueueDeclaration(queue) }
        return QueueDeclaration(
            topology.delayQueue(for: queue, delayMs: delayMs),
            arguments: .delay(DelayGrid.level(forMs: delayMs), thenTo: queue))
    }

    /// The event of the hop the slip's log ended with.
    func hopEvent(_ slip: Slip, at now: Date) throws -> OutgoingMessage {
        guard let entry = slip.log.last else { throw ProcessorError(.internalError, "a hop event needs a hop in the slip's log") }
        return try eventMessage(SlipEvent(hop: entry, slip: slip, at: now))
    }

    /// Where a slip goes after its hop: the next step (after `delayMs`, when the step asked the slip to wait), the
    /// next compensation, or (terminal) a terminal event; a compensation-failed slip is parked in the dead-letter queue
    /// too. Returns the messages and the queues they go to.
    /// `parkedID` is asked for only when the slip is parked (a UUID costs a system call: not one a hop).
    func destination(_ slip: Slip, lastStep: String, delayMs: Int, parkedID: () -> String, at now: Date) throws
        -> (messages: [OutgoingMessage], queues: [QueueDeclaration])
    {
        switch slip.state {
        case .running:
            let queue = delayed(topology.executeQueue(step: slip.itinerary[0].step), delayMs: delayMs)
            return ([try slipMessage(slip, to: queue.name)], [queue])
        case .compensating:
            let address = slip.compensations[slip.compensations.count - 1].address
            return ([try slipMessage(slip, to: address)], [QueueDeclaration(address)])
        case .compensationFailed:
            let reason = slip.log.last?.reason ?? "compensation failed"
            let body = try codec.encode(slip)
            let parked = park(
                body: body, code: .compensationFailed, reason: reason,
                queue: topology.compensateQueue(step: lastStep), slipID: slip.id, parkedID: parkedID(), at: now,
                signature: signing?.signatureHeaders(for: body) ?? [:])
            return ([parked, try terminalEvent(slip, lastStep: lastStep, at: now)], [QueueDeclaration(topology.deadLetterQueue)])
        case .completed, .compensated, .faulted, .terminated:
            return ([try terminalEvent(slip, lastStep: lastStep, at: now)], [])
        }
    }

    func slipMessage(_ slip: Slip, to queue: String) throws -> OutgoingMessage {
        let body = try codec.encode(slip)
        return .toQueue(
            queue, body: body, headers: signing?.signatureHeaders(for: body) ?? [:],
            messageID: "\(slip.id).\(slip.sequence).\(slip.attempt)", correlationID: slip.id,
            contentType: SlipCodec.contentType)
    }

    func terminalEvent(_ slip: Slip, lastStep: String, at now: Date) throws -> OutgoingMessage {
        let last = slip.log.last
        let event = SlipEvent(
            slipID: slip.id, template: slip.template, kind: .terminal, step: lastStep,
            sequence: max(slip.sequence - 1, 0), attempt: last?.attempt ?? 1, outcome: slip.state.rawValue,
            state: slip.state, processor: instance, at: now, reason: slip.fault?.reason, fault: slip.fault,
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
    /// `parkedID`: names the parked message for `slip dlq`; `now`: when it was parked.
    func park(
        body: [UInt8], code: ParkCode, reason: String, queue: String, slipID: String?, parkedID: String, at now: Date,
        signature: [String: String] = [:]
    ) -> OutgoingMessage {
        var headers = [
            ParkedHeaders.parkedID: parkedID,
            ParkedHeaders.reasonCode: code.rawValue,
            ParkedHeaders.reason: String(reason.prefix(1_000)),
            ParkedHeaders.originalQueue: queue,
            ParkedHeaders.processor: instance,
            ParkedHeaders.parkedAt: now.formatted(.iso8601),
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
    /// `eventID`: unique, for the event of a body that is not a verified slip.
    func parkedEvent(
        slip: Slip?, peek: SlipPeek? = nil, step: String, code: ParkCode, reason: String, eventID: String,
        at now: Date
    ) throws -> OutgoingMessage {
        let event: SlipEvent
        if let slip {
            event = SlipEvent(
                slipID: slip.id, template: slip.template, kind: .parked, step: step, sequence: slip.sequence,
                attempt: slip.attempt, outcome: code.rawValue, state: slip.state, processor: instance, at: now,
                reason: reason)
        } else if let peek {
            event = SlipEvent(
                id: "\(peek.slipID).parked.\(eventID)", slipID: peek.slipID,
                template: peek.template ?? "unknown", kind: .parked, step: step, sequence: peek.sequence ?? 0,
                attempt: 1, outcome: code.rawValue, state: .running, processor: instance, at: now, reason: reason)
        } else {
            // A message that is not a slip has no stable identity: its parking gets an id of its own.
            event = SlipEvent(
                id: "unknown.parked.\(eventID)", slipID: "unknown", template: "unknown",
                kind: .parked, step: step, sequence: 0, attempt: 1, outcome: code.rawValue, state: .running,
                processor: instance, at: now, reason: reason)
        }
        return try eventMessage(event)
    }
}
