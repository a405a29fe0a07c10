/// Any JSON value: step arguments, shared variables and compensation data are free-form JSON.
///
/// Integers are kept apart from floating-point numbers so that ids and amounts in minor units survive a round trip exactly.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

extension JSONValue: Codable {
    /// Codable cannot ask a decoder which JSON type comes next, so each type is tried in turn, and every miss costs a
    /// thrown error. The order puts what slips mostly hold first: strings (variables) and objects (undo records), then
    /// numbers (integers before doubles, so integers stay exact), then the rest.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let object = try? decoder.container(keyedBy: AnyCodingKey.self) {
            self = .object(try JSONValue.decodeObject(object))
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else {
            self = .array(try container.decode([JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONValue {
    /// An object's values, key by key in the order of the keys' bytes: of several bad values, the same one is always
    /// the one reported (a dictionary's order differs from run to run, and with it Foundation's choice).
    static func decodeObject(_ container: KeyedDecodingContainer<AnyCodingKey>) throws -> [String: JSONValue] {
        var object: [String: JSONValue] = [:]
        object.reserveCapacity(container.allKeys.count)
        for key in container.allKeys.sorted(by: { $0.stringValue.utf8.lexicographicallyPrecedes($1.stringValue.utf8) }) {
            object[key.stringValue] = try container.decode(JSONValue.self, forKey: key)
        }
        return object
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue {
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The value as an integer: an `.int`, or a `.double` / `.string` that holds a whole number.
    public var intValue: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value) where value.rounded() == value && abs(value) < 9.0e15: return Int64(value)
        case .string(let value): return Int64(value)
        default: return nil
        }
    }

    /// A scalar as text: a string as it is, a number or boolean as JSON writes it (an order id sent as `1001` or as
    /// `"1001"` reads the same). Nil for null, arrays and objects.
    public var scalarText: String? {
        switch self {
        case .string(let value): value
        case .int(let value): String(value)
        case .double(let value): value.rounded() == value && abs(value) < 9.0e15 ? String(Int64(value)) : "\(value)"
        case .bool(let value): value ? "true" : "false"
        case .null, .array, .object: nil
        }
    }

    public var boolValue: Bool? {
        switch self {
        case .bool(let value): return value
        case .string(let value): return Bool(value)
        default: return nil
        }
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// Reads a command-line or template value: JSON when it parses as a number, boolean or null, a string otherwise.
    public static func parsingScalar(_ text: String) -> JSONValue {
        switch text {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "null": return .null
        default:
            if let int = Int64(text) { return .int(int) }
            if let double = Double(text), double.isFinite, text.contains(".") { return .double(double) }
            return .string(text)
        }
    }
}

extension JSONValue {
    /// About as many bytes as the value's JSON text: cheap to count (no encoding), close enough for a limit.
    public var approximateJSONBytes: Int {
        switch self {
        case .null, .bool: 5
        case .int, .double: 12
        case .string(let text): text.utf8.count + 2
        case .array(let items): items.reduce(2) { $0 + $1.approximateJSONBytes + 1 }
        case .object(let fields): fields.reduce(2) { $0 + $1.key.utf8.count + 4 + $1.value.approximateJSONBytes }
        }
    }
}
