import Foundation
import SlipwayCore

/// A reusable itinerary in YAML (`Slips/*.yaml`): the steps, their arguments, and the variables a producer fills in.
///
/// ```yaml
/// template: order-fulfillment
/// variables:            # defaults; a variable listed under `required` must be given
///   currency: EUR
/// required: [orderId, sku, quantity]
/// itinerary:
///   - step: reserve-stock
///     arguments: { sku: "${sku}", quantity: "${quantity}" }
/// ```
///
/// Values keep their YAML type (`quantity: 1` is the number 1, `code: "007"` the string "007"; see `TemplateYAML`).
/// A string argument that is exactly `${name}` becomes the variable's value with its type; `${name}` inside a longer
/// string is replaced by the value's text. Everything else an itinerary entry holds (`retry`, `timeoutMs`,
/// `compensateTimeoutMs`) goes into the slip as written.
public struct SlipTemplate: Sendable, Hashable, Decodable {
    public var template: String
    public var description: String?
    public var variables: [String: JSONValue]
    public var required: [String]
    public var itinerary: [ItineraryStep]
    /// Seconds from sending after which the slip runs no further steps (optional).
    public var deadlineSeconds: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case template, description, variables, required, itinerary, deadlineSeconds
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        template = try container.decode(String.self, forKey: .template)
        description = try container.decodeIfPresent(String.self, forKey: .description)
        variables = try container.decodeIfPresent([String: JSONValue].self, forKey: .variables) ?? [:]
        required = try container.decodeIfPresent([String].self, forKey: .required) ?? []
        itinerary = try container.decode([ItineraryStep].self, forKey: .itinerary)
        deadlineSeconds = try container.decodeIfPresent(Int.self, forKey: .deadlineSeconds)
    }

    /// Reads a template file; errors name the file and what is wrong.
    public static func load(path: String) throws -> SlipTemplate {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw TemplateError("cannot read template '\(path)': no such file or not readable")
        }
        return try parse(text, source: path)
    }

    public static func parse(_ yaml: String, source: String = "template") throws -> SlipTemplate {
        let template: SlipTemplate
        do {
            template = try decode(yaml)
        } catch let error as TemplateError {
            throw TemplateError("\(source): \(error.message)")
        } catch let error as DecodingError {
            throw TemplateError("\(source): \(SlipCodec.describe(error))")
        } catch let rejection as SlipRejection {
            throw TemplateError("\(source): \(rejection.reason)")
        } catch {
            throw TemplateError("\(source): not valid YAML: \(error)")
        }
        guard Slip.isValidName(template.template) else {
            throw TemplateError("\(source): 'template' must be 1 to 64 characters of A-Z a-z 0-9 _ -")
        }
        guard !template.itinerary.isEmpty else { throw TemplateError("\(source): the itinerary has no steps") }
        return template
    }

    /// YAML to typed JSON values (`TemplateYAML`), then to a template by the slip format's own decoding, so that an
    /// itinerary entry means in a template what it means on the wire, and errors name the field.
    private static func decode(_ yaml: String) throws -> SlipTemplate {
        guard let root = try TemplateYAML.read(yaml) else { throw TemplateError("the template is empty") }
        guard case .object(let fields) = root else {
            throw TemplateError("a template is a YAML mapping (template:, itinerary:, ...), not a single value or a list")
        }
        let unknown = fields.keys.filter { CodingKeys(stringValue: $0) == nil }.sorted()
        if let first = unknown.first {
            let known = CodingKeys.allCases.map(\.stringValue).joined(separator: ", ")
            throw TemplateError("unknown field '\(first)' in the template (it may have: \(known))")
        }
        let json = try JSONEncoder().encode(root)
        return try SlipCodec.makeDecoder().decode(SlipTemplate.self, from: json)
    }

    /// A new slip from this template, with `values` over the template's defaults.
    public func makeSlip(values: [String: JSONValue], id: String = Slip.newID(), now: Date = Date()) throws -> Slip {
        let variables = self.variables.merging(values) { _, given in given }
        let missing = required.filter { variables[$0] == nil }
        guard missing.isEmpty else {
            throw TemplateError(
                "template '\(template)' needs \(missing.map { "'\($0)'" }.joined(separator: ", ")): pass --var NAME=VALUE")
        }
        // The entry as written, arguments filled in: whatever else it holds reaches the wire unchanged.
        let steps = try itinerary.map { step in
            var entry = step
            entry.arguments = try step.arguments.mapValues { try substitute($0, variables) }
            return entry
        }
        var slip = Slip(
            id: id, template: template, itinerary: steps, variables: variables,
            deadline: deadlineSeconds.map { now.addingTimeInterval(TimeInterval($0)) }, createdAt: now)
        slip.formatVersion = Slip.currentFormatVersion
        try slip.validate()
        return slip
    }

    private func substitute(_ value: JSONValue, _ variables: [String: JSONValue]) throws -> JSONValue {
        switch value {
        case .string(let text):
            guard text.contains("${") else { return value }
            if text.hasPrefix("${"), text.hasSuffix("}"), text.dropFirst(2).dropLast().allSatisfy({ $0 != "}" && $0 != "$" }) {
                return try lookup(String(text.dropFirst(2).dropLast()), variables)
            }
            var result = ""
            var rest = Substring(text)
            while let open = rest.range(of: "${") {
                result += rest[..<open.lowerBound]
                guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                    throw TemplateError("template '\(template)': unclosed '${' in '\(text)'")
                }
                let replacement = try lookup(String(rest[open.upperBound..<close]), variables)
                result += replacement.stringValue ?? Self.text(of: replacement)
                rest = rest[rest.index(after: close)...]
            }
            return .string(result + rest)
        case .array(let items):
            return .array(try items.map { try substitute($0, variables) })
        case .object(let fields):
            return .object(try fields.mapValues { try substitute($0, variables) })
        default:
            return value
        }
    }

    private func lookup(_ name: String, _ variables: [String: JSONValue]) throws -> JSONValue {
        guard let value = variables[name] else {
            throw TemplateError("template '\(template)' uses ${\(name)}, which has no value: pass --var \(name)=VALUE")
        }
        return value
    }

    private static func text(of value: JSONValue) -> String {
        guard let data = try? JSONEncoder().encode(value) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
}

public struct TemplateError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
