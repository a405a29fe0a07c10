import Foundation

/// How a slip changes at each hop. Pure functions of the slip, so the runtime's decisions can be tested without a broker.
extension Slip {
    /// Hops a slip carries in its log: the newest ones. Each hop's event has it for good (the audit trail), so the
    /// slip, which every hop decodes and encodes again, stays the same size however long the saga runs.
    public static let carriedLogEntries = 10

    private mutating func appendLog(_ entry: LogEntry) {
        if log.count >= Self.carriedLogEntries { log.removeFirst(log.count - Self.carriedLogEntries + 1) }
        log.append(entry)
    }

    /// The execute hop at the itinerary's head completed: pop it, log it, push its undo record (if it has one),
    /// merge the variables and advance the sequence. A slip with nothing left to run becomes completed.
    public mutating func completeStep(
        compensationData: JSONValue?, compensateAddress: String, variableUpdates: [String: JSONValue],
        removedVariables: [String] = [], entry: LogEntry
    ) {
        precondition(state == .running && !itinerary.isEmpty, "completeStep needs a running slip with a step to run")
        let step = itinerary.removeFirst()
        if let compensationData {
            compensations.append(
                CompensationRecord(
                    step: step.step, address: compensateAddress, data: compensationData, sequence: sequence,
                    timeoutMs: step.compensateTimeoutMs))
        }
        for name in removedVariables { variables[name] = nil }
        variables.merge(variableUpdates) { _, new in new }
        appendLog(entry)
        advance()
        if itinerary.isEmpty { state = .completed }
    }

    /// The execute hop at the itinerary's head ended the slip on purpose: no further steps, no compensation.
    public mutating func terminateStep(entry: LogEntry) {
        precondition(state == .running && !itinerary.isEmpty, "terminateStep needs a running slip with a step to run")
        itinerary.removeFirst()
        appendLog(entry)
        advance()
        state = .terminated
    }

    /// Changes the steps still to come (after the head, which the hop in progress is running).
    public mutating func revise(_ revision: ItineraryRevision) {
        let head = itinerary.isEmpty ? [] : [itinerary[0]]
        var rest = Array(itinerary.dropFirst())
        switch revision {
        case .insertNext(let steps): rest.insert(contentsOf: steps, at: 0)
        case .append(let steps): rest.append(contentsOf: steps)
        case .remove(let names): rest.removeAll { names.contains($0.step) }
        case .replaceRemaining(let steps): rest = steps
        }
        itinerary = head + rest
    }

    /// The execute hop at the itinerary's head faulted (or ran out of attempts): the slip turns to compensating, or to
    /// faulted when no completed step has an undo.
    public mutating func faultStep(reason: String, entry: LogEntry) {
        precondition(state == .running && !itinerary.isEmpty, "faultStep needs a running slip with a step to run")
        fault = Fault(step: itinerary[0].step, sequence: sequence, reason: reason, attempts: attempt)
        appendLog(entry)
        advance()
        state = compensations.isEmpty ? .faulted : .compensating
    }

    /// The compensation at the top of the stack completed: pop it; an empty stack makes the slip compensated.
    public mutating func completeCompensation(entry: LogEntry) {
        precondition(state == .compensating && !compensations.isEmpty, "completeCompensation needs a compensating slip")
        compensations.removeLast()
        appendLog(entry)
        advance()
        if compensations.isEmpty { state = .compensated }
    }

    /// The compensation at the top of the stack failed for good: the slip is parked, its record kept for a replay.
    public mutating func failCompensation(reason: String, entry: LogEntry) {
        precondition(state == .compensating, "failCompensation needs a compensating slip")
        appendLog(entry)
        advance()
        state = .compensationFailed
        if fault == nil {
            fault = Fault(step: entry.step, sequence: entry.sequence, reason: reason, attempts: entry.attempt)
        }
    }

    /// An attempt threw: the same hop runs again, with the next attempt number, under the same sequence.
    public mutating func retryHop(entry: LogEntry) {
        appendLog(entry)
        attempt += 1
    }

    /// A compensation-failed slip brought back from the dead-letter queue resumes its walk-back where it stopped.
    public mutating func resumeCompensation() {
        guard state == .compensationFailed, !compensations.isEmpty else { return }
        state = .compensating
        attempt = 1
    }

    private mutating func advance() {
        sequence += 1
        attempt = 1
    }
}

/// A change to the steps still to come, asked for by a step as it completes.
public enum ItineraryRevision: Sendable, Hashable {
    /// Run these steps next, before the rest.
    case insertNext([ItineraryStep])
    /// Run these steps after the rest.
    case append([ItineraryStep])
    /// Skip the steps of these names.
    case remove([String])
    /// Run these steps instead of the rest.
    case replaceRemaining([ItineraryStep])

    /// For the hop's log and event: what changed.
    public var summary: String {
        switch self {
        case .insertNext(let steps): "itinerary revised: inserted next \(steps.map(\.step))"
        case .append(let steps): "itinerary revised: appended \(steps.map(\.step))"
        case .remove(let names): "itinerary revised: removed \(names)"
        case .replaceRemaining(let steps): "itinerary revised: the rest replaced by \(steps.map(\.step))"
        }
    }
}
