import Foundation

/// The words a person reads when a slip is refused (by `slip validate`, `slip send`, in a parked message's reason).
/// Codable's errors name Swift types ("Dictionary<String, Any>") and hide where the JSON broke; these say what the
/// slip format wants, in JSON's terms, and where.
enum SlipErrorText {
    /// A decoding error of a slip (or an event), in JSON's terms.
    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return notJSON(context) }
            return "\(SlipCodec.pathText(context.codingPath)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            let parent = context.codingPath.isEmpty ? "the slip" : SlipCodec.pathText(context.codingPath)
            return "\(parent) has no '\(key.stringValue)'"
        case .typeMismatch(let type, let context):
            let found = foundKind(context.debugDescription)
            if context.codingPath.isEmpty && kind(of: type) == "a JSON object" {
                return "the slip must be a JSON object\(found.map { ", not \($0)" } ?? "")"
            }
            return "\(SlipCodec.pathText(context.codingPath)) must be \(kind(of: type))\(found.map { ", not \($0)" } ?? "")"
        case .valueNotFound(let type, let context):
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

    /// Not JSON at all: empty, or broken at a place the parser names (line and column, when it says).
    static func notJSON(_ context: DecodingError.Context) -> String {
        let detail = underlyingText(context.underlyingError) ?? context.debugDescription
        if detail.range(of: "end of file", options: .caseInsensitive) != nil
            && detail.range(of: "line", options: .caseInsensitive) == nil
            || detail.range(of: "empty", options: .caseInsensitive) != nil
        {
            // The parser's only words for "" and "   ", and for a document cut short.
            return "the body is empty or ends before its JSON does (\(sentence(detail)))"
        }
        return "the body is not valid JSON: \(sentence(detail))"
    }

    /// The parser's own message, which says where ("around line 3, column 7"), without the error's type name.
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

    /// What a Swift type is, in JSON's words.
    static func kind(of type: Any.Type) -> String {
        let name = String(describing: type)
        if name.hasPrefix("Dictionary") || name.hasPrefix("[String") && name.contains(":") { return "a JSON object" }
        if name.hasPrefix("Array") || name.hasPrefix("[") { return "a JSON array" }
        switch name {
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
        let kind = String(debugDescription[found.upperBound..<instead.lowerBound])
        switch kind {
        case "a dictionary": return "an object"
        case "a string", "a number", "an array", "a bool", "null", "a null value": return kind == "a bool" ? "true or false" : kind
        default: return kind.count <= 20 ? kind : nil
        }
    }
}
