import Foundation

extension Slip: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case formatVersion, id, template, createdAt, sequence, attempt, state, itinerary, log, compensations, variables
        case fault, deadline
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // The version is read first so that a newer slip is refused for its version, not for a field it added.
        guard let version = try? container.decode(Int.self, forKey: .formatVersion) else {
            throw SlipRejection(.unsupportedVersion, SlipErrorText.formatVersionProblem(container, .formatVersion))
        }
        guard version == Slip.currentFormatVersion else {
            throw SlipRejection(
                .unsupportedVersion,
                "format version \(version) is not supported (this build reads version \(Slip.currentFormatVersion))"
            )
        }
        try rejectUnknownKeys(decoder, CodingKeys.self, in: "a version \(version) slip")
        formatVersion = version
        id = try container.field(String.self, .id)
        template = try container.field(String.self, .template)
        createdAt = try container.field(Date.self, .createdAt)
        sequence = try container.field(Int.self, .sequence)
        attempt = try container.field(Int.self, .attempt)
        state = try container.field(SlipState.self, .state)
        itinerary = try container.field([ItineraryStep].self, .itinerary)
        log = try container.optionalField([LogEntry].self, .log) ?? []
        compensations = try container.optionalField([CompensationRecord].self, .compensations) ?? []
        variables = try container.optionalObjectField(.variables) ?? [:]
        fault = try container.optionalField(Fault.self, .fault)
        deadline = try container.optionalField(Date.self, .deadline)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(formatVersion, forKey: .formatVersion)
        try container.encode(id, forKey: .id)
        try container.encode(template, forKey: .template)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(state, forKey: .state)
        try container.encode(itinerary, forKey: .itinerary)
        try container.encode(log, forKey: .log)
        try container.encode(compensations, forKey: .compensations)
        try container.encode(variables, forKey: .variables)
        try container.encodeIfPresent(fault, forKey: .fault)
        try container.encodeIfPresent(deadline, forKey: .deadline)
    }
}

/// Turns slips into wire bytes and back. Decoding checks the format version, the shape and the rules of the format, and
/// answers every refusal with a `SlipRejection` that says why.
public struct SlipCodec: Sendable {
    /// The AMQP content type of a slip message.
    public static let contentType = "application/vnd.slipway.slip+json; version=1"

    public var limits: SlipLimits

    public init(limits: SlipLimits = SlipLimits()) {
        self.limits = limits
    }

    /// The slip's JSON: the same bytes `makeEncoder()` writes, without going through Codable.
    public func encode(_ slip: Slip) throws -> [UInt8] {
        try Self.fastEncode(slip)
    }

    /// Decodes and validates a slip from a message body.
    public func decode(_ body: [UInt8]) throws(SlipRejection) -> Slip {
        guard body.count <= limits.maxMessageBytes else { throw tooLarge(body.count) }
        if let slip = body.withUnsafeBufferPointer(Self.fastDecode) {
            try slip.validate(limits: limits)
            return slip
        }
        return try decodeWithFoundation(Data(body))
    }

    public func decode(_ body: Data) throws(SlipRejection) -> Slip {
        guard body.count <= limits.maxMessageBytes else { throw tooLarge(body.count) }
        let fast = body.withUnsafeBytes { raw in Self.fastDecode(raw.assumingMemoryBound(to: UInt8.self)) }
        if let slip = fast {
            try slip.validate(limits: limits)
            return slip
        }
        return try decodeWithFoundation(body)
    }

    private func tooLarge(_ count: Int) -> SlipRejection {
        SlipRejection(.tooLarge, "the message has \(count) bytes; the limit is \(limits.maxMessageBytes)")
    }

    /// Codable's path: every body the byte reader leaves, and so every refusal, with its reason.
    func decodeWithFoundation(_ body: Data) throws(SlipRejection) -> Slip {
        guard body.count <= limits.maxMessageBytes else { throw tooLarge(body.count) }
        try Self.checkNesting(body)
        let slip: Slip
        do {
            slip = try Self.makeDecoder().decode(Slip.self, from: body)
        } catch let rejection as SlipRejection {
            throw rejection
        } catch let error as DecodingError {
            throw SlipRejection(.malformed, SlipErrorText.describe(error, body: body))
        } catch {
            throw SlipRejection(.malformed, "the body is not a slip: \(error)")
        }
        try slip.validate(limits: limits)
        return slip
    }

    /// JSON nested deeper than this is refused before any parser sees it. Foundation's parser allows 512 levels but
    /// traps (crashes the process) on a body whose last byte opens the 513th, and its encoder writes only 511; a slip
    /// needs a handful, so 64 leaves room for deeply structured variables.
    public static let maxNestingDepth = 64

    /// Refuses JSON nested deeper than `maxNestingDepth`: one pass over the bytes, brackets inside strings ignored.
    /// Call it before decoding any untrusted JSON (slips, events, parked bodies).
    public static func checkNesting(_ body: Data) throws(SlipRejection) {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in body {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maxNestingDepth {
                    throw SlipRejection(.malformed, "the JSON nests deeper than \(maxNestingDepth) levels")
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
    }

    /// Timestamps are RFC 3339 / ISO 8601 in UTC with milliseconds, e.g. `2026-11-22T05:34:20.123Z`.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatTimestamp(date))
        }
        return encoder
    }

    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            if let milliseconds = Timestamps.parseMilliseconds(text) { return date(millisecondsSince1970: milliseconds) }
            if let date = try? timestampStyle.parse(text) { return canonical(date) }
            if let date = try? Date.ISO8601FormatStyle().parse(text) { return canonical(date) }
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not an RFC 3339 timestamp such as 2026-11-22T05:34:20.123Z")
        }
        return decoder
    }

    static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// `2026-11-22T05:34:20.123Z`, rounded to the nearest millisecond. Rounding (not truncating, as the format style
    /// does) matters: the instant parsed from `.005` is a hair below it, and truncating would write it back as `.004`,
    /// losing a millisecond at every hop.
    public static func formatTimestamp(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        if let text = Timestamps.format(millisecondsSince1970: milliseconds) { return text }
        let seconds = milliseconds.quotientAndRemainder(dividingBy: 1000)
        let (wholeSeconds, fraction) = seconds.remainder < 0
            ? (seconds.quotient - 1, seconds.remainder + 1000) : (seconds.quotient, seconds.remainder)
        let whole = Date(timeIntervalSince1970: TimeInterval(wholeSeconds)).formatted(wholeSecondsStyle)
        // "2026-11-22T05:34:20Z" -> "2026-11-22T05:34:20.123Z"
        let fractionText = String(fraction)
        return whole.dropLast() + "." + String(repeating: "0", count: 3 - fractionText.count) + fractionText + "Z"
    }

    static let wholeSecondsStyle = Date.ISO8601FormatStyle()

    /// The instant a timestamp names, to the millisecond, built as whole seconds plus milliseconds so that a date
    /// made the same way compares equal after a round trip.
    static func canonical(_ date: Date) -> Date {
        Self.date(millisecondsSince1970: Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }

    static func date(millisecondsSince1970 milliseconds: Int64) -> Date {
        let milliseconds = Double(milliseconds)
        let seconds = (milliseconds / 1000).rounded(.down)
        return Date(timeIntervalSince1970: seconds + (milliseconds - seconds * 1000) / 1000)
    }

    /// `'log[2].attempt'` for a coding path.
    static func pathText(_ codingPath: [any CodingKey]) -> String {
        let names = codingPath.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }
        return names.isEmpty ? "the body" : "'" + names.joined().dropFirst() + "'"
    }

    public static func describe(_ error: DecodingError) -> String { SlipErrorText.describe(error) }
}

/// Size limits, enforced on send (refused with the reason) and on receive (parked as `too-large`). Processors and
/// `slip send` read them from the `SLIPWAY_MAX_*` settings (Slipway's `SlipLimits.fromEnvironment`).
public struct SlipLimits: Sendable, Hashable {
    public var maxMessageBytes: Int
    public var maxItinerarySteps: Int
    /// The shared variables' size, counted as their JSON text would be (about).
    public var maxVariablesBytes: Int

    public init(maxMessageBytes: Int = 1 << 20, maxItinerarySteps: Int = 1_000, maxVariablesBytes: Int = 256 << 10) {
        self.maxMessageBytes = maxMessageBytes
        self.maxItinerarySteps = maxItinerarySteps
        self.maxVariablesBytes = maxVariablesBytes
    }
}

/// Refuses keys a type does not know: a processor re-encodes the slip, and would silently drop them.
/// Runs for every object of every slip at every hop, so it builds nothing unless it has a key to refuse.
func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(
    _ decoder: any Decoder, _ keys: Keys.Type, in what: @autoclosure () -> String
) throws {
    let container = try decoder.container(keyedBy: AnyCodingKey.self)
    // The first unknown name in byte order: allKeys comes in a dictionary's order, which differs between runs.
    let unknownNames = container.allKeys.lazy.map(\.stringValue).filter { Keys(stringValue: $0) == nil }
    if let unknown = unknownNames.min(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
        let what = what()
        let place = decoder.codingPath.isEmpty ? what : "\(SlipCodec.pathText(decoder.codingPath)) (\(what))"
        throw SlipRejection(.malformed, "unknown field '\(unknown)' in \(place)")
    }
}

extension KeyedDecodingContainer {
    /// Decodes a field; a value that does not fit (1.5 for an integer, 1e400) is reported with the field's path,
    /// which Foundation's decoder leaves out.
    func field<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        try naming(key) { try decode(type, forKey: key) }
    }

    func optionalField<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        try naming(key) { try decodeIfPresent(type, forKey: key) }
    }

    /// A free-form object (variables, arguments), decoded in a fixed order: see `JSONValue.decodeObject`.
    func objectField(_ key: Key) throws -> [String: JSONValue] {
        try naming(key) { try JSONValue.decodeObject(try nestedContainer(keyedBy: AnyCodingKey.self, forKey: key)) }
    }

    /// Absent or null: nil.
    func optionalObjectField(_ key: Key) throws -> [String: JSONValue]? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try objectField(key)
    }

    private func naming<T>(_ key: Key, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let rejection as SlipRejection {
            throw rejection
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.count <= codingPath.count {
            throw SlipRejection(.malformed, "\(SlipCodec.pathText(codingPath + [key])): \(context.debugDescription)")
        } catch let error as DecodingError {
            throw error
        } catch {
            // Foundation's own parse errors (a 1.5 or 1e400 where an integer goes) carry no field path.
            throw SlipRejection(.malformed, "\(SlipCodec.pathText(codingPath + [key])): the value does not fit: \(error)")
        }
    }
}

struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

// The fixed-shape parts of a slip refuse unknown fields too, and name the field of a value that does not fit.

extension ItineraryStep {
    enum CodingKeys: String, CodingKey, CaseIterable { case step, arguments, retry, timeoutMs, compensateTimeoutMs }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self, in: "an itinerary step")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        step = try container.field(String.self, .step)
        arguments = try container.objectField(.arguments)
        retry = try container.optionalField(RetryPolicy.self, .retry)
        timeoutMs = try container.optionalField(Int.self, .timeoutMs)
        compensateTimeoutMs = try container.optionalField(Int.self, .compensateTimeoutMs)
    }
}

extension LogEntry {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case sequence, step, kind, outcome, attempt, startedAt, durationMicros, processor, reason
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self, in: "a log entry")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sequence = try container.field(Int.self, .sequence)
        step = try container.field(String.self, .step)
        kind = try container.field(HopKind.self, .kind)
        outcome = try container.field(HopOutcome.self, .outcome)
        attempt = try container.field(Int.self, .attempt)
        startedAt = try container.field(Date.self, .startedAt)
        durationMicros = try container.field(Int64.self, .durationMicros)
        processor = try container.field(String.self, .processor)
        reason = try container.optionalField(String.self, .reason)
    }
}

extension CompensationRecord {
    enum CodingKeys: String, CodingKey, CaseIterable { case step, address, data, sequence, timeoutMs }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self, in: "a compensation record")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        step = try container.field(String.self, .step)
        address = try container.field(String.self, .address)
        // Required, but may be null: decodeIfPresent would read a null as absent.
        guard container.contains(.data) else {
            throw DecodingError.keyNotFound(
                CodingKeys.data, .init(codingPath: container.codingPath, debugDescription: "no 'data'"))
        }
        data = try container.decode(JSONValue.self, forKey: .data)
        sequence = try container.field(Int.self, .sequence)
        timeoutMs = try container.optionalField(Int.self, .timeoutMs)
    }
}

extension Fault {
    enum CodingKeys: String, CodingKey, CaseIterable { case step, sequence, reason, attempts }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self, in: "the fault")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        step = try container.field(String.self, .step)
        sequence = try container.field(Int.self, .sequence)
        reason = try container.field(String.self, .reason)
        attempts = try container.field(Int.self, .attempts)
    }
}
