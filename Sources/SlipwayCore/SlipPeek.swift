/// The slip id (and template and sequence) read from a body that could not be taken as a slip: for reporting only.
///
/// A message parked because it is not a valid slip, or because its signature does not hold, is still usually a slip
/// someone is waiting for. The peek lets the park name it (dead-letter headers, the audit trail, a waiting
/// `slip send --wait`). Nothing else may use it: the values are unverified, a label for the operator, never a reason
/// to run, record or route anything.
///
/// Safe on any input: one forward pass over at most `maxScannedBytes`, no recursion, no allocation but the values it
/// returns; only members of the top-level object are looked at, every nested value is skipped by counting brackets.
public struct SlipPeek: Sendable, Hashable {
    /// A valid slip id (`Slip.isValidName`).
    public var slipID: String
    /// The template, when the body has a valid one.
    public var template: String?
    /// The sequence, when the body has one that is a non-negative integer.
    public var sequence: Int?

    /// Bodies are scanned up to here: a slip's id sits near its start, and a hostile body costs no more than this.
    public static let maxScannedBytes = 1 << 20

    public init(slipID: String, template: String? = nil, sequence: Int? = nil) {
        self.slipID = slipID
        self.template = template
        self.sequence = sequence
    }

    /// The id, template and sequence of a body whose top level is a JSON object with an `id` string that is a valid
    /// slip id; nil otherwise. A field given twice is not read (which one would a parser keep?). What the scan did not
    /// reach, or could not read, is left out.
    public static func read(_ body: [UInt8]) -> SlipPeek? {
        body.withUnsafeBufferPointer { bytes in
            var scanner = PeekScanner(bytes: UnsafeBufferPointer(rebasing: bytes.prefix(maxScannedBytes)))
            return scanner.topLevel()
        }
    }
}

/// The scan behind `SlipPeek.read`. Any surprise ends it, keeping what was read before.
private struct PeekScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    private enum Field {
        case unread, read(String), repeated
        var value: String? { if case .read(let value) = self { value } else { nil } }
        mutating func note(_ value: String?) {
            if case .unread = self, let value { self = .read(value) } else { self = .repeated }
        }
    }

    mutating func topLevel() -> SlipPeek? {
        var id = Field.unread
        var template = Field.unread
        var sequence = Field.unread
        guard take(UInt8(ascii: "{")) else { return nil }
        scan: while true {
            guard peek() == UInt8(ascii: "\""), let key = stringValue(), take(UInt8(ascii: ":")) else { break }
            let start = position
            let value: String? =
                switch key {
                case "id", "template": plainString()
                case "sequence": integer()
                default: nil
                }
            let complete = value != nil && isAtDelimiter()
            switch key {
            case "id": id.note(complete ? value : nil)
            case "template": template.note(complete ? value : nil)
            case "sequence": sequence.note(complete ? value : nil)
            default: break
            }
            if !complete {
                position = start  // not a field read here, or not the kind of value it should be: skipped whole
                guard skipValue() else { break scan }
            }
            guard take(UInt8(ascii: ",")) else { break }
        }
        guard let slipID = id.value, Slip.isValidName(slipID) else { return nil }
        return SlipPeek(
            slipID: slipID, template: template.value.flatMap { Slip.isValidName($0) ? $0 : nil },
            sequence: sequence.value.flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil })
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\t")
    }

    private static func endsScalar(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ":"), UInt8(ascii: "\""),
            UInt8(ascii: "{"), UInt8(ascii: "["):
            true
        default: isSpace(byte)
        }
    }

    private mutating func peek() -> UInt8 {
        while position < bytes.count, Self.isSpace(bytes[position]) { position += 1 }
        return position < bytes.count ? bytes[position] : 0
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard peek() == byte else { return false }
        position += 1
        return true
    }

    /// The string at `position` (its opening quote) when it has no escapes and at most 256 bytes (ids, names and
    /// keys are short and plain); nil otherwise. Either way, a string that ends is consumed.
    private mutating func stringValue() -> String? {
        let start = position + 1
        guard skipString() else { return nil }
        let range = start..<(position - 1)
        guard range.count <= 256, !bytes[range].contains(UInt8(ascii: "\\")) else { return nil }
        return String(validating: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// A value that is a plain string; nil (nothing consumed) for any other value.
    private mutating func plainString() -> String? {
        guard peek() == UInt8(ascii: "\"") else { return nil }
        return stringValue()
    }

    /// After a value: the next byte (white space aside) ends it.
    private mutating func isAtDelimiter() -> Bool {
        switch peek() {
        case UInt8(ascii: ","), UInt8(ascii: "}"): true
        default: false
        }
    }

    /// The digits of an integer as text (at most 18 of them, so it fits an Int); nil for any other value.
    private mutating func integer() -> String? {
        _ = peek()
        let start = position
        while position < bytes.count, bytes[position] &- UInt8(ascii: "0") < 10 { position += 1 }
        let digits = position - start
        guard digits > 0, digits <= 18 else { return nil }
        if position < bytes.count, !Self.endsScalar(bytes[position]) { return nil }  // 1.5, 1e3, 12abc
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    }

    /// Past the string at `position` (its opening quote), escapes included; false if it does not end.
    private mutating func skipString() -> Bool {
        position += 1
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "\""):
                position += 1
                return true
            case UInt8(ascii: "\\"): position += 2
            default: position += 1
            }
        }
        return false
    }

    /// Past one value: a string, a scalar, or an object or array whatever its depth (brackets counted, not nested
    /// calls). False when the value does not end within the bytes scanned.
    private mutating func skipValue() -> Bool {
        var depth = 0
        repeat {
            switch peek() {
            case 0: return false
            case UInt8(ascii: "\""): guard skipString() else { return false }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                position += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard depth > 0 else { return false }
                depth -= 1
                position += 1
            case UInt8(ascii: ","), UInt8(ascii: ":"):
                guard depth > 0 else { return false }
                position += 1
            default:
                // A scalar (number, true, false, null) or stray bytes: up to the next delimiter.
                while position < bytes.count, !Self.endsScalar(bytes[position]) { position += 1 }
            }
        } while depth > 0
        return true
    }
}
