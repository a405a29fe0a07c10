import Foundation
import SlipwayCore
import Yams

/// Reads a template's YAML into JSON values, each scalar with its type, by the YAML 1.2 core schema (docs/slip-format.md,
/// "Template values"):
/// - `null`, `Null`, `NULL`, `~` or nothing: null;
/// - `true`, `True`, `TRUE`, `false`, `False`, `FALSE`: a boolean (not `yes`, `no`, `on`, `off`: YAML 1.1's, which turn a
///   country code `NO` into false);
/// - `42`, `-7`, `+3`, `007`, `0x1F`, `0o17`: an integer (64 bits);
/// - `2.5`, `-1.5e3`, `.5`: a floating-point number;
/// - anything else, and anything quoted (`"007"`, `'true'`) or written as a block (`|`, `>`): a string.
/// A tag (`!!str 42`, `!!int "42"`) says the type itself. Dates are strings: JSON has no date.
enum TemplateYAML {
    /// Integers and floats that JSON cannot hold (beyond 64 bits, `.inf`, `.nan`) are refused rather than rounded.
    static func read(_ yaml: String) throws -> JSONValue? {
        guard let root = try Yams.compose(yaml: yaml, resolver) else { return nil }
        var reader = Reader()
        return try reader.value(root, depth: 1)
    }

    // The patterns are constants: one that does not compile is a bug here, found by the first template read.
    // swiftlint:disable force_try
    static let resolver: Resolver = try! Resolver.basic
        .appending(.null, "^(?:~|null|Null|NULL|)$")
        .appending(.bool, "^(?:true|True|TRUE|false|False|FALSE)$")
        .appending(.int, "^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
        .appending(.float, "^(?:[-+]?(?:\\.[0-9]+|[0-9]+(?:\\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN))$")
    // swiftlint:enable force_try

    /// Values a template may expand to: aliases can repeat a subtree, and a few nested ones make billions.
    static let maxValues = 100_000

    private struct Reader {
        var count = 0

        mutating func value(_ node: Node, depth: Int) throws -> JSONValue {
            count += 1
            guard count <= TemplateYAML.maxValues else {
                throw TemplateError("the template expands to more than \(TemplateYAML.maxValues) values (aliases?)")
            }
            guard depth <= SlipCodec.maxNestingDepth else {
                throw TemplateError("\(place(node))the template nests deeper than \(SlipCodec.maxNestingDepth) levels")
            }
            switch node {
            case .scalar(let scalar):
                return try Self.scalar(scalar, node: node)
            case .sequence(let sequence):
                return .array(try sequence.map { try value($0, depth: depth + 1) })
            case .mapping(let mapping):
                var object: [String: JSONValue] = [:]
                for (key, item) in mapping {
                    guard case .scalar(let name) = key else {
                        throw TemplateError("\(place(key))a key must be a plain name, not a list or a mapping")
                    }
                    object[name.string] = try value(item, depth: depth + 1)
                }
                return .object(object)
            case .alias:
                throw TemplateError("\(place(node))an alias that names no anchor")
            }
        }

        private static func scalar(_ scalar: Node.Scalar, node: Node) throws -> JSONValue {
            let text = scalar.string
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .str:
                return .string(text)
            case .null:
                return .null
            case .bool:
                switch text.lowercased() {
                case "true": return .bool(true)
                case "false": return .bool(false)
                default: throw TemplateError("\(place(node))'\(text.prefix(40))' is not true or false")
                }
            case .int:
                if let number = integer(text) { return .int(number) }
                throw TemplateError(
                    "\(place(node))\(text.prefix(40)) is not a 64-bit integer; quote it to keep it as text")
            case .float:
                if let number = Double(text), number.isFinite { return .double(number) }
                throw TemplateError("\(place(node))\(text.prefix(40)) is not a JSON number; quote it to keep it as text")
            default:
                throw TemplateError(
                    "\(place(node))the tag '\(node.tag.rawValue)' is not supported: use a plain value, or !!str, "
                        + "!!int, !!float, !!bool, !!null")
            }
        }

        private static func integer(_ text: String) -> Int64? {
            if text.hasPrefix("0x") { return Int64(text.dropFirst(2), radix: 16) }
            if text.hasPrefix("0o") { return Int64(text.dropFirst(2), radix: 8) }
            return Int64(text)
        }
    }
}

/// `line 12, column 5: `, where YAML knows it.
private func place(_ node: Node) -> String {
    node.mark.map { "line \($0.line), column \($0.column): " } ?? ""
}
