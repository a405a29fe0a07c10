import Foundation

/// The words a person reads when a slip is refused (by `slip validate`, `slip send`, in a parked message's reason).
/// Codable's errors name Swift types ("Dictionary<String, Any>") and hide where the JSON broke; these say what the
/// slip format wants, in JSON's terms, and where.
enum SlipErrorText {
    /// A decoding error of a slip (or an event), in JSON's terms. With the body, a syntax error says where it is.
    static func describe(_ error: DecodingError, body: Data? = nil) -> String {
        switch error {
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return body.map(notJSON) ?? "the body is not valid JSON" }
            return "\(SlipCodec.pathText(context.codingPath)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            let parent = context.codingPath.isEmpty ? "the slip" : SlipCodec.pathText(context.codingPath)
            return "\(parent) has no '\(key.stringValue)'"
        case .typeMismatch(let type, let context):
            let found = foundKind(context.debugDescription)
            if context.codingPath.isEmpty && kind(of: type) == "a JSON object" {
                return "the slip must be a JSON object\(found.map { ", not \($0)" } ?? "")"
            }
            if context.codingPath.isEmpty && kind(of: type) == yamlMapping {  // a template (Yams names its node types)
                return "the template must be \(yamlMapping)\(found.map { ", not \($0)" } ?? "")"
            }
            return "\(SlipCodec.pathText(context.codingPath)) must be \(kind(of: type))\(found.map { ", not \($0)" } ?? "")"
        case .valueNotFound(let type, let context):
            if context.codingPath.isEmpty { return "the slip must be a JSON object, not null" }
            return "\(SlipCodec.pathText(context.codingPath)) must be \(kind(of: type)), not null"
        @unknown default:
            return "the body is not a slip"
        }
    }

    /// Why the slip has no usable `formatVersion`: missing, or not a whole number (a string "1" is the usual slip).
    static func formatVersionProblem<Key: CodingKey>(_ container: KeyedDecodingContainer<Key>, _ key: Key) -> String {
        guard container.contains(key) else { return "the slip has no 'formatVersion' (an integer: 1)" }
        if let text = try? container.decode(String.self, forKey: key) {
            return "'formatVersion' must be an integer, not a string: write \(text.count <= 20 ? text : "1"), not \"\(text.prefix(20))\""
        }
        if (try? container.decodeNil(forKey: key)) == true { return "'formatVersion' must be an integer, not null" }
        return "'formatVersion' must be an integer (1)"
    }

    /// Not JSON at all: empty, or broken at a place it names (line and column). Foundation's decoder on Linux only
    /// says "The given data was not valid JSON"; its `JSONSerialization` says at which byte, so the body is parsed
    /// again with it (only on this path, for a refusal).
    static func notJSON(_ body: Data) -> String {
        guard body.contains(where: { !isSpace($0) }) else { return "the body is empty" }
        let detail: String
        do {
            _ = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
            return "the body is not valid JSON"  // something only the decoder refuses (a trailing comma, ...)
        } catch {
            detail = underlyingText(error) ?? ""
        }
        if detail.range(of: "end of file", options: .caseInsensitive) != nil {
            let (line, column) = position(of: body.count, in: body)
            return "the body is not valid JSON: it ends before its JSON does (line \(line), column \(column))"
        }
        if let marker = detail.range(of: "character "), let offset = Int(detail[marker.upperBound...].prefix { $0.isNumber }),
            offset >= 0, offset <= body.count
        {
            let (line, column) = position(of: offset, in: body)
            var unexpected = ""
            if offset < body.count, case let byte = body[body.startIndex + offset], byte >= 0x21, byte < 0x7F {
                unexpected = " '\(Character(Unicode.Scalar(byte)))'"
            }
            return "the body is not valid JSON: unexpected\(unexpected.isEmpty ? " input" : unexpected) at line \(line), column \(column) (byte \(offset))"
        }
        return "the body is not valid JSON: \(sentence(detail))"
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\t")
    }

    /// Line and column (from 1) of a byte offset; a column counts characters, not bytes.
    static func position(of offset: Int, in body: Data) -> (line: Int, column: Int) {
        let before = body.prefix(offset)
        let line = before.reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
        let lineStart = before.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? before.startIndex
        let column = String(decoding: before[lineStart...], as: UTF8.self).count + 1
        return (line, column)
    }

    /// The parser's own message, without the error's type name.
    static func underlyingText(_ error: (any Error)?) -> String? {
        guard let error else { return nil }
        let nsError = error as NSError
        if let text = nsError.userInfo[NSDebugDescriptionErrorKey] as? String, !text.isEmpty { return text }
        let text = "\(error)"
        return text.isEmpty ? nil : text
    }

    /// A parser message as part of a sentence: no capital, no full stop.
    private static func sentence(_ text: String) -> String {
        var text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        while text.hasSuffix(".") { text.removeLast() }
        guard let first = text.first else { return text }
        return first.lowercased() + text.dropFirst()
    }

    private static let yamlMapping = "a mapping (key: value lines)"

    /// What a Swift type is, in JSON's words (or YAML's, for a template's node types).
    static func kind(of type: Any.Type) -> String {
        let name = String(describing: type)
        if name.hasPrefix("Dictionary") || name.hasPrefix("[String") && name.contains(":") { return "a JSON object" }
        if name.hasPrefix("Array") || name.hasPrefix("[") { return "a JSON array" }
        switch name {
        case "Mapping": return yamlMapping
        case "Sequence": return "a list"
        case "Scalar": return "a single value"
        case "String": return "a string"
        case "Int", "Int64", "Int32", "Int16", "Int8", "UInt", "UInt64", "UInt32", "UInt16", "UInt8": return "an integer"
        case "Double", "Float", "Decimal": return "a number"
        case "Bool": return "true or false"
        case "Date": return "a timestamp string"
        default: return "another kind of value"
        }
    }

    /// "an array" from Codable's "Expected to decode X but found an array instead.", nil if it does not say.
    static func foundKind(_ debugDescription: String) -> String? {
        guard let found = debugDescription.range(of: "found "), let instead = debugDescription.range(of: " instead")
        else { return nil }
        guard found.upperBound <= instead.lowerBound else { return nil }
        var kind = String(debugDescription[found.upperBound..<instead.lowerBound])
        for article in ["a ", "an "] where kind.hasPrefix(article) { kind.removeFirst(article.count) }
        switch kind.lowercased() {
        case "dictionary", "object": return "an object"
        case "array": return "an array"
        case "string": return "a string"
        case "number": return "a number"
        case "bool", "boolean": return "true or false"
        case "null", "null value": return "null"
        case "mapping": return yamlMapping
        case "sequence": return "a list"
        case "scalar": return "a single value"
        default: return nil
        }
    }
}
