import Foundation

// Writing a slip byte by byte: see SlipJSON.swift.

// MARK: Writing: fields in the order of their names' bytes, as `.sortedKeys` writes them.

extension JSONWriter {
    mutating func slip(_ slip: Slip) throws(InvalidValue) {
        byte(UInt8(ascii: "{"))
        key("attempt", first: true)
        int(slip.attempt)
        key("compensations")
        try array(slip.compensations) { writer, record throws(InvalidValue) in try writer.compensation(record) }
        key("createdAt")
        timestamp(slip.createdAt)
        if let deadline = slip.deadline {
            key("deadline")
            timestamp(deadline)
        }
        if let fault = slip.fault {
            key("fault")
            self.fault(fault)
        }
        key("formatVersion")
        int(slip.formatVersion)
        key("id")
        string(slip.id)
        key("itinerary")
        try array(slip.itinerary) { writer, step throws(InvalidValue) in try writer.itineraryStep(step) }
        key("log")
        try array(slip.log) { writer, entry throws(InvalidValue) in writer.logEntry(entry) }
        key("sequence")
        int(slip.sequence)
        key("state")
        string(slip.state.rawValue)
        key("template")
        string(slip.template)
        key("variables")
        try object(slip.variables)
        byte(UInt8(ascii: "}"))
    }

    mutating func itineraryStep(_ step: ItineraryStep) throws(InvalidValue) {
        byte(UInt8(ascii: "{"))
        key("arguments", first: true)
        try object(step.arguments)
        if let compensateTimeoutMs = step.compensateTimeoutMs {
            key("compensateTimeoutMs")
            int(compensateTimeoutMs)
        }
        if let retry = step.retry {
            key("retry")
            try retryPolicy(retry)
        }
        key("step")
        string(step.step)
        if let timeoutMs = step.timeoutMs {
            key("timeoutMs")
            int(timeoutMs)
        }
        byte(UInt8(ascii: "}"))
    }

    mutating func retryPolicy(_ policy: RetryPolicy) throws(InvalidValue) {
        byte(UInt8(ascii: "{"))
        key("initialDelayMs", first: true)
        int(policy.initialDelayMs)
        key("jitter")
        try double(policy.jitter)
        key("maxAttempts")
        int(policy.maxAttempts)
        key("maxDelayMs")
        int(policy.maxDelayMs)
        key("multiplier")
        try double(policy.multiplier)
        byte(UInt8(ascii: "}"))
    }

    mutating func logEntry(_ entry: LogEntry) {
        byte(UInt8(ascii: "{"))
        key("attempt", first: true)
        int(entry.attempt)
        key("durationMicros")
        int(entry.durationMicros)
        key("kind")
        string(entry.kind.rawValue)
        key("outcome")
        string(entry.outcome.rawValue)
        key("processor")
        string(entry.processor)
        if let reason = entry.reason {
            key("reason")
            string(reason)
        }
        key("sequence")
        int(entry.sequence)
        key("startedAt")
        timestamp(entry.startedAt)
        key("step")
        string(entry.step)
        byte(UInt8(ascii: "}"))
    }

    mutating func compensation(_ record: CompensationRecord) throws(InvalidValue) {
        byte(UInt8(ascii: "{"))
        key("address", first: true)
        string(record.address)
        key("data")
        try value(record.data)
        key("sequence")
        int(record.sequence)
        key("step")
        string(record.step)
        if let timeoutMs = record.timeoutMs {
            key("timeoutMs")
            int(timeoutMs)
        }
        byte(UInt8(ascii: "}"))
    }

    mutating func fault(_ fault: Fault) {
        byte(UInt8(ascii: "{"))
        key("attempts", first: true)
        int(fault.attempts)
        key("reason")
        string(fault.reason)
        key("sequence")
        int(fault.sequence)
        key("step")
        string(fault.step)
        byte(UInt8(ascii: "}"))
    }

    mutating func event(_ event: SlipEvent) throws(InvalidValue) {
        byte(UInt8(ascii: "{"))
        key("at", first: true)
        timestamp(event.at)
        key("attempt")
        int(event.attempt)
        if let createdAt = event.createdAt {
            key("createdAt")
            timestamp(createdAt)
        }
        if let durationMicros = event.durationMicros {
            key("durationMicros")
            int(durationMicros)
        }
        if let fault = event.fault {
            key("fault")
            self.fault(fault)
        }
        key("formatVersion")
        int(event.formatVersion)
        key("id")
        string(event.id)
        key("kind")
        string(event.kind.rawValue)
        if let log = event.log {
            key("log")
            try array(log) { writer, entry throws(InvalidValue) in writer.logEntry(entry) }
        }
        key("outcome")
        string(event.outcome)
        key("processor")
        string(event.processor)
        if let reason = event.reason {
            key("reason")
            string(reason)
        }
        key("sequence")
        int(event.sequence)
        key("slipID")
        string(event.slipID)
        if let startedAt = event.startedAt {
            key("startedAt")
            timestamp(startedAt)
        }
        key("state")
        string(event.state.rawValue)
        key("step")
        string(event.step)
        key("template")
        string(event.template)
        byte(UInt8(ascii: "}"))
    }

    mutating func array<Element>(
        _ items: [Element], _ element: (inout JSONWriter, Element) throws(InvalidValue) -> Void
    ) throws(InvalidValue) {
        byte(UInt8(ascii: "["))
        for (index, item) in items.enumerated() {
            if index > 0 { byte(UInt8(ascii: ",")) }
            try element(&self, item)
        }
        byte(UInt8(ascii: "]"))
    }

    mutating func timestamp(_ date: Date) {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        if !Timestamps.appendQuoted(millisecondsSince1970: milliseconds, to: &bytes) {
            string(SlipCodec.formatTimestamp(date))
        }
    }
}
