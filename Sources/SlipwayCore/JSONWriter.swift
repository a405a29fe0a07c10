// Slips are JSON on the wire and every hop reads one and writes one. Foundation's JSONDecoder and JSONEncoder go
// through Codable's containers, which cost a third of a processor's CPU per hop (docs/performance.md). These two
// types read and write JSON bytes directly. None of the packages this project builds from reads or writes JSON
// without Codable, so they are written here, kept small, and checked against Foundation by the fuzzer.

/// Writes JSON text into a byte array, in the form Foundation's JSONEncoder writes with `.sortedKeys` and
/// `.withoutEscapingSlashes`: the same bytes, so that either writer can produce a slip.
struct JSONWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 1024) {
        bytes.reserveCapacity(capacity)
    }

    /// A value JSON cannot hold (NaN or an infinity).
    struct InvalidValue: Error, CustomStringConvertible {
        var description: String
    }

    mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func byte(_ byte: UInt8) {
        bytes.append(byte)
    }

    /// `"name":`, preceded by a comma unless it opens the object. Names are fixed field names: ASCII, no escapes.
    mutating func key(_ name: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                runStart = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:  // the other controls: \u00XX, lower-case hex as JSONEncoder writes it
                    func hex(_ digit: UInt8) -> UInt8 { digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10 }
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    bytes.append(hex(byte >> 4))
                    bytes.append(hex(byte & 0x0F))
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func int<Integer: BinaryInteger>(_ value: Integer) {
        let value = Int64(value)
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            // Int64.min has no positive counterpart: write its magnitude as unsigned.
            digits(UInt64(bitPattern: 0 &- value))
        } else {
            digits(UInt64(value))
        }
    }

    private mutating func digits(_ value: UInt64) {
        var buffer: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        withUnsafeMutableBytes(of: &buffer) { scratch in
            var value = value
            var index = scratch.count
            repeat {
                index -= 1
                scratch[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0
            bytes.append(contentsOf: scratch[index...])
        }
    }

    /// Swift's shortest round-tripping form, without a trailing `.0`: `2.5`, `100`, `1e-05`, `1.5e+16`.
    mutating func double(_ value: Double) throws(InvalidValue) {
        guard value.isFinite else { throw InvalidValue(description: "\(value) is not a JSON number") }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }

    mutating func bool(_ value: Bool) {
        value ? raw("true") : raw("false")
    }

    mutating func value(_ value: JSONValue) throws(InvalidValue) {
        switch value {
        case .null: raw("null")
        case .bool(let flag): bool(flag)
        case .int(let number): int(number)
        case .double(let number): try double(number)
        case .string(let text): string(text)
        case .array(let items):
            byte(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { byte(UInt8(ascii: ",")) }
                try self.value(item)
            }
            byte(UInt8(ascii: "]"))
        case .object(let fields): try object(fields)
        }
    }

    /// Keys in the order of their UTF-8 bytes, as JSONEncoder's `.sortedKeys` writes them.
    mutating func object(_ fields: [String: JSONValue]) throws(InvalidValue) {
        byte(UInt8(ascii: "{"))
        if fields.count == 1, let (key, value) = fields.first {
            string(key)
            byte(UInt8(ascii: ":"))
            try self.value(value)
        } else if !fields.isEmpty {
            let sorted = fields.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            for (index, field) in sorted.enumerated() {
                if index > 0 { byte(UInt8(ascii: ",")) }
                string(field.key)
                byte(UInt8(ascii: ":"))
                try value(field.value)
            }
        }
        byte(UInt8(ascii: "}"))
    }
}
