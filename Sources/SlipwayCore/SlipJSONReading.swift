import Foundation

// Reading a slip byte by byte: see SlipJSON.swift.

// MARK: Reading

/// Which required fields an object had, and that none came twice.
private struct SeenFields {
    private var bits: UInt32 = 0

    mutating func note(_ field: Int) throws(JSONReader.Miss) {
        let bit: UInt32 = 1 << UInt32(field)
        guard bits & bit == 0 else { throw JSONReader.Miss() }
        bits |= bit
    }

    func has(_ fields: Int...) -> Bool {
        fields.allSatisfy { bits & (1 << UInt32($0)) != 0 }
    }
}

extension JSONReader {
    mutating func slip() throws(Miss) -> Slip {
        var seen = SeenFields()
        var slip = Slip(id: "", template: "", itinerary: [], createdAt: Date(timeIntervalSince1970: 0))
        guard try beginObject() else { throw Miss() }
        repeat {
            let name = try key()
            if matches(name, "formatVersion") {
                try seen.note(0)
                guard try int() == Slip.currentFormatVersion else { throw Miss() }
            } else if matches(name, "id") {
                try seen.note(1)
                slip.id = try string()
            } else if matches(name, "template") {
                try seen.note(2)
                slip.template = try string()
            } else if matches(name, "createdAt") {
                try seen.note(3)
                slip.createdAt = try timestamp()
            } else if matches(name, "sequence") {
                try seen.note(4)
                slip.sequence = try int()
            } else if matches(name, "attempt") {
                try seen.note(5)
                slip.attempt = try int()
            } else if matches(name, "state") {
                try seen.note(6)
                slip.state = try rawValue(SlipState.self)
            } else if matches(name, "itinerary") {
                try seen.note(7)
                slip.itinerary = try array { reader throws(Miss) in try reader.itineraryStep() }
            } else if matches(name, "log") {
                try seen.note(8)
                slip.log = isNull() ? [] : try array { reader throws(Miss) in try reader.logEntry() }
            } else if matches(name, "compensations") {
                try seen.note(9)
                slip.compensations = isNull() ? [] : try array { reader throws(Miss) in try reader.compensation() }
            } else if matches(name, "variables") {
                try seen.note(10)
                slip.variables = isNull() ? [:] : try object()
            } else if matches(name, "fault") {
                try seen.note(11)
                slip.fault = isNull() ? nil : try fault()
            } else if matches(name, "deadline") {
                try seen.note(12)
                slip.deadline = isNull() ? nil : try timestamp()
            } else {
                throw Miss()
            }
        } while try moreMembers()
        guard seen.has(0, 1, 2, 3, 4, 5, 6, 7) else { throw Miss() }
        return slip
    }

    mutating func itineraryStep() throws(Miss) -> ItineraryStep {
        var seen = SeenFields()
        var step = ItineraryStep(step: "")
        guard try beginObject() else { throw Miss() }
        repeat {
            let name = try key()
            if matches(name, "step") {
                try seen.note(0)
                step.step = try string()
            } else if matches(name, "arguments") {
                try seen.note(1)
                step.arguments = try object()
            } else if matches(name, "retry") {
                try seen.note(2)
                step.retry = isNull() ? nil : try retryPolicy()
            } else if matches(name, "timeoutMs") {
                try seen.note(3)
                step.timeoutMs = isNull() ? nil : try int()
            } else if matches(name, "compensateTimeoutMs") {
                try seen.note(4)
                step.compensateTimeoutMs = isNull() ? nil : try int()
            } else {
                throw Miss()
            }
        } while try moreMembers()
        guard seen.has(0, 1) else { throw Miss() }
        return step
    }

    mutating func retryPolicy() throws(Miss) -> RetryPolicy {
        var seen = SeenFields()
        var policy = RetryPolicy()
        guard try beginObject() else { return policy }
        repeat {
            let name = try key()
            // Every field may be absent or null: its default stays.
            if matches(name, "maxAttempts") {
                try seen.note(0)
                if !isNull() { policy.maxAttempts = try int() }
            } else if matches(name, "initialDelayMs") {
                try seen.note(1)
                if !isNull() { policy.initialDelayMs = try int() }
            } else if matches(name, "multiplier") {
                try seen.note(2)
                if !isNull() { policy.multiplier = try double() }
            } else if matches(name, "maxDelayMs") {
                try seen.note(3)
                if !isNull() { policy.maxDelayMs = try int() }
            } else if matches(name, "jitter") {
                try seen.note(4)
                if !isNull() { policy.jitter = try double() }
            } else {
                throw Miss()
            }
        } while try moreMembers()
        return policy
    }

    mutating func logEntry() throws(Miss) -> LogEntry {
        var seen = SeenFields()
        var entry = LogEntry(
            sequence: 0, step: "", kind: .execute, outcome: .completed, attempt: 0,
            startedAt: Date(timeIntervalSince1970: 0), durationMicros: 0, processor: "")
        guard try beginObject() else { throw Miss() }
        repeat {
            let name = try key()
            if matches(name, "sequence") {
                try seen.note(0)
                entry.sequence = try int()
            } else if matches(name, "step") {
                try seen.note(1)
                entry.step = try string()
            } else if matches(name, "kind") {
                try seen.note(2)
                entry.kind = try rawValue(HopKind.self)
            } else if matches(name, "outcome") {
                try seen.note(3)
                entry.outcome = try rawValue(HopOutcome.self)
            } else if matches(name, "attempt") {
                try seen.note(4)
                entry.attempt = try int()
            } else if matches(name, "startedAt") {
                try seen.note(5)
                entry.startedAt = try timestamp()
            } else if matches(name, "durationMicros") {
                try seen.note(6)
                entry.durationMicros = try int64()
            } else if matches(name, "processor") {
                try seen.note(7)
                entry.processor = try string()
            } else if matches(name, "reason") {
                try seen.note(8)
                entry.reason = isNull() ? nil : try string()
            } else {
                throw Miss()
            }
        } while try moreMembers()
        guard seen.has(0, 1, 2, 3, 4, 5, 6, 7) else { throw Miss() }
        return entry
    }

    mutating func compensation() throws(Miss) -> CompensationRecord {
        var seen = SeenFields()
        var record = CompensationRecord(step: "", address: "", data: .null, sequence: 0)
        guard try beginObject() else { throw Miss() }
        repeat {
            let name = try key()
            if matches(name, "step") {
                try seen.note(0)
                record.step = try string()
            } else if matches(name, "address") {
                try seen.note(1)
                record.address = try string()
            } else if matches(name, "data") {
                try seen.note(2)
                record.data = try value()  // required, and may be null
            } else if matches(name, "sequence") {
                try seen.note(3)
                record.sequence = try int()
            } else if matches(name, "timeoutMs") {
                try seen.note(4)
                record.timeoutMs = isNull() ? nil : try int()
            } else {
                throw Miss()
            }
        } while try moreMembers()
        guard seen.has(0, 1, 2, 3) else { throw Miss() }
        return record
    }

    mutating func fault() throws(Miss) -> Fault {
        var seen = SeenFields()
        var fault = Fault(step: "", sequence: 0, reason: "", attempts: 0)
        guard try beginObject() else { throw Miss() }
        repeat {
            let name = try key()
            if matches(name, "step") {
                try seen.note(0)
                fault.step = try string()
            } else if matches(name, "sequence") {
                try seen.note(1)
                fault.sequence = try int()
            } else if matches(name, "reason") {
                try seen.note(2)
                fault.reason = try string()
            } else if matches(name, "attempts") {
                try seen.note(3)
                fault.attempts = try int()
            } else {
                throw Miss()
            }
        } while try moreMembers()
        guard seen.has(0, 1, 2, 3) else { throw Miss() }
        return fault
    }

    mutating func array<Element>(_ element: (inout JSONReader) throws(Miss) -> Element) throws(Miss) -> [Element] {
        var items: [Element] = []
        guard try beginArray() else { return items }
        repeat { items.append(try element(&self)) } while try moreElements()
        return items
    }

    /// Only the exact form the writer uses; other RFC 3339 forms are left to Foundation.
    mutating func timestamp() throws(Miss) -> Date {
        let range = try plainString()
        guard let milliseconds = Timestamps.parseMilliseconds(bytes: UnsafeBufferPointer(rebasing: bytes[range])) else {
            throw Miss()
        }
        return SlipCodec.date(millisecondsSince1970: milliseconds)
    }

    mutating func rawValue<Value: RawRepresentable<String>>(_ type: Value.Type) throws(Miss) -> Value {
        let range = try plainString()
        guard let value = Value(rawValue: String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self))
        else { throw Miss() }
        return value
    }
}

extension JSONReader {
    /// One event, as the synthesized `Decodable` reads it: unknown fields are left to Foundation (which ignores them).
    mutating func event() throws(Miss) -> SlipEvent {
        var seen = SeenFields()
        let epoch = Date(timeIntervalSince1970: 0)
        var event = SlipEvent(
            id: "", slipID: "", template: "", kind: .execute, step: "", sequence: 0, attempt: 0, outcome: "",
            state: .running, processor: "", at: epoch)
        guard try beginObject() else { throw Miss() }
        repeat {
            let name = try key()
            if matches(name, "formatVersion") {
                try seen.note(0)
                event.formatVersion = try int()
            } else if matches(name, "id") {
                try seen.note(1)
                event.id = try string()
            } else if matches(name, "slipID") {
                try seen.note(2)
                event.slipID = try string()
            } else if matches(name, "template") {
                try seen.note(3)
                event.template = try string()
            } else if matches(name, "kind") {
                try seen.note(4)
                event.kind = try rawValue(SlipEvent.Kind.self)
            } else if matches(name, "step") {
                try seen.note(5)
                event.step = try string()
            } else if matches(name, "sequence") {
                try seen.note(6)
                event.sequence = try int()
            } else if matches(name, "attempt") {
                try seen.note(7)
                event.attempt = try int()
            } else if matches(name, "outcome") {
                try seen.note(8)
                event.outcome = try string()
            } else if matches(name, "state") {
                try seen.note(9)
                event.state = try rawValue(SlipState.self)
            } else if matches(name, "processor") {
                try seen.note(10)
                event.processor = try string()
            } else if matches(name, "at") {
                try seen.note(11)
                event.at = try timestamp()
            } else if matches(name, "startedAt") {
                try seen.note(12)
                event.startedAt = isNull() ? nil : try timestamp()
            } else if matches(name, "durationMicros") {
                try seen.note(13)
                event.durationMicros = isNull() ? nil : try int64()
            } else if matches(name, "reason") {
                try seen.note(14)
                event.reason = isNull() ? nil : try string()
            } else if matches(name, "fault") {
                try seen.note(15)
                event.fault = isNull() ? nil : try fault()
            } else if matches(name, "createdAt") {
                try seen.note(16)
                event.createdAt = isNull() ? nil : try timestamp()
            } else if matches(name, "log") {
                try seen.note(17)
                event.log = isNull() ? nil : try array { reader throws(Miss) in try reader.logEntry() }
            } else {
                throw Miss()
            }
        } while try moreMembers()
        guard seen.has(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11) else { throw Miss() }
        return event
    }
}

extension SlipEventWire {
    /// The events of a body, one or a batch, or nil when the body needs Foundation's decoder.
    static func fastDecode(_ body: UnsafeBufferPointer<UInt8>) -> [SlipEvent]? {
        var reader = JSONReader(body, maxDepth: SlipCodec.maxNestingDepth)
        do {
            let events: [SlipEvent]
            if reader.peek() == UInt8(ascii: "[") {
                events = try reader.array { reader throws(JSONReader.Miss) in try reader.event() }
            } else {
                events = [try reader.event()]
            }
            try reader.end()
            return events
        } catch {
            return nil
        }
    }
}
