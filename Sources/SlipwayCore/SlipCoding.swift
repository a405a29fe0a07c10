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
            throw SlipRejection(.unsupportedVersion, "the slip has no integer 'formatVersion'")
        }
        guard version == Slip.currentFormatVersion else {
            throw SlipRejection(
                .unsupportedVersion,
                "format version \(version) is not supported (this build reads version \(Slip.currentFormatVersion))"
            )
        }
        // Unknown fields are refused rather than dropped: a processor re-encodes the slip, and would lose them.
        let allKeys = try decoder.container(keyedBy: AnyCodingKey.self).allKeys.map(\.stringValue)
        if let unknown = allKeys.first(where: { CodingKeys(rawValue: $0) == nil }) {
            throw SlipRejection(.malformed, "unknown field '\(unknown)' in a version \(version) slip")
        }
        formatVersion = version
        id = try container.decode(String.self, forKey: .id)
        template = try container.decode(String.self, forKey: .template)
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        sequence = try container.decode(Int.self, forKey: .sequence)
        attempt = try container.decode(Int.self, forKey: .attempt)
        state = try container.decode(SlipState.self, forKey: .state)
        itinerary = try container.decode([ItineraryStep].self, forKey: .itinerary)
        log = try container.decodeIfPresent([LogEntry].self, forKey: .log) ?? []
        compensations = try container.decodeIfPresent([CompensationRecord].self, forKey: .compensations) ?? []
        variables = try container.decodeIfPresent([String: JSONValue].self, forKey: .variables) ?? [:]
        fault = try container.decodeIfPresent(Fault.self, forKey: .fault)
        deadline = try container.decodeIfPresent(Date.self, forKey: .deadline)
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

    public func encode(_ slip: Slip) throws -> [UInt8] {
        let data = try Self.makeEncoder().encode(slip)
        return [UInt8](data)
    }

    /// Decodes and validates a slip from a message body.
    public func decode(_ body: [UInt8]) throws(SlipRejection) -> Slip {
        try decode(Data(body))
    }

    public func decode(_ body: Data) throws(SlipRejection) -> Slip {
        guard body.count <= limits.maxMessageBytes else {
            throw SlipRejection(.tooLarge, "the message has \(body.count) bytes; the limit is \(limits.maxMessageBytes)")
        }
        let slip: Slip
        do {
            slip = try Self.makeDecoder().decode(Slip.self, from: body)
        } catch let rejection as SlipRejection {
            throw rejection
        } catch let error as DecodingError {
            throw SlipRejection(.malformed, Self.describe(error))
        } catch {
            throw SlipRejection(.malformed, "the body is not a slip: \(error)")
        }
        try slip.validate(limits: limits)
        return slip
    }

    /// Timestamps are RFC 3339 / ISO 8601 in UTC with milliseconds, e.g. `2026-11-22T05:34:20.123Z`.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(timestampStyle))
        }
        return encoder
    }

    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            if let date = try? timestampStyle.parse(text) { return date }
            if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not an RFC 3339 timestamp such as 2026-11-22T05:34:20.123Z")
        }
        return decoder
    }

    static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    public static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let names = context.codingPath.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }
            return names.isEmpty ? "the body" : "'" + names.joined().dropFirst() + "'"
        }
        switch error {
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the body is not valid JSON" }
            return "\(path(context)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            let parent = context.codingPath.isEmpty ? "the slip" : path(context)
            return "\(parent) has no '\(key.stringValue)'"
        case .typeMismatch(let type, let context):
            return "\(path(context)) is not of type \(type)"
        case .valueNotFound(let type, let context):
            return "\(path(context)) is null where \(type) is required"
        @unknown default:
            return "the body is not a slip: \(error)"
        }
    }
}

/// Size limits enforced on receive (and, from a later issue, on send).
public struct SlipLimits: Sendable, Hashable {
    public var maxMessageBytes: Int
    public var maxItinerarySteps: Int

    public init(maxMessageBytes: Int = 1 << 20, maxItinerarySteps: Int = 1_000) {
        self.maxMessageBytes = maxMessageBytes
        self.maxItinerarySteps = maxItinerarySteps
    }
}

struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}
