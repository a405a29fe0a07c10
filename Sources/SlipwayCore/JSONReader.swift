// The reading half of JSONWriter.swift's byte-level JSON (that file says why it is written here).

/// Reads JSON bytes for the common case only, and gives up (`Miss`) on anything else: an escape it does not handle,
/// a number with an exponent, a duplicate key, invalid UTF-8, nesting past the limit, an unknown field. The caller
/// then decodes the same bytes with Foundation, which accepts or refuses them with its full error messages. So this
/// reader never needs to explain a refusal, and must never accept what Foundation would refuse or read differently:
/// the fuzzer checks exactly that (Tests/SlipwayCoreTests/FuzzTests.swift).
struct JSONReader {
    struct Miss: Error {}

    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0
    private var depth = 0
    let maxDepth: Int

    init(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private mutating func skipSpace() {
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): position += 1
            default: return
            }
        }
    }

    /// The next byte that is not white space, not consumed; 0 at the end.
    mutating func peek() -> UInt8 {
        skipSpace()
        return position < bytes.count ? bytes[position] : 0
    }

    private mutating func expect(_ byte: UInt8) throws(Miss) {
        guard peek() == byte else { throw Miss() }
        position += 1
    }

    /// Nothing but white space is left.
    mutating func end() throws(Miss) {
        guard peek() == 0, position == bytes.count else { throw Miss() }
    }

    // MARK: Objects and arrays, read as a loop: begin, then a member or element, then `more` until it says no.

    /// Consumes `{`; false when the object is empty (its `}` consumed too).
    mutating func beginObject() throws(Miss) -> Bool {
        try open(UInt8(ascii: "{"), UInt8(ascii: "}"))
    }

    mutating func beginArray() throws(Miss) -> Bool {
        try open(UInt8(ascii: "["), UInt8(ascii: "]"))
    }

    private mutating func open(_ opening: UInt8, _ closing: UInt8) throws(Miss) -> Bool {
        try expect(opening)
        depth += 1
        guard depth <= maxDepth else { throw Miss() }
        if peek() == closing {
            position += 1
            depth -= 1
            return false
        }
        return true
    }

    /// After a member: true at a comma (another member follows), false at the closing brace.
    mutating func moreMembers() throws(Miss) -> Bool {
        try more(UInt8(ascii: "}"))
    }

    mutating func moreElements() throws(Miss) -> Bool {
        try more(UInt8(ascii: "]"))
    }

    private mutating func more(_ closing: UInt8) throws(Miss) -> Bool {
        switch peek() {
        case UInt8(ascii: ","):
            position += 1
            return true
        case closing:
            position += 1
            depth -= 1
            return false
        default:
            throw Miss()
        }
    }

    /// A fixed field's name and its colon, as the range of its bytes. Names with escapes are left to Foundation.
    mutating func key() throws(Miss) -> Range<Int> {
        let range = try plainString()
        try expect(UInt8(ascii: ":"))
        return range
    }

    /// A string without escapes, as the range of its bytes between the quotes.
    mutating func plainString() throws(Miss) -> Range<Int> {
        try expect(UInt8(ascii: "\""))
        let start = position
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") { break }
            guard byte >= 0x20, byte != UInt8(ascii: "\\") else { throw Miss() }
            position += 1
        }
        guard position < bytes.count else { throw Miss() }
        defer { position += 1 }
        return start..<position
    }

    /// The bytes of `range` are exactly `name`.
    func matches(_ range: Range<Int>, _ name: StaticString) -> Bool {
        guard range.count == name.utf8CodeUnitCount else { return false }
        let base = name.utf8Start
        for offset in 0..<range.count where bytes[range.lowerBound + offset] != base[offset] { return false }
        return true
    }

    /// A name read with `key()` as a string: free-form keys (variables, arguments) must be valid UTF-8.
    func text(_ range: Range<Int>) throws(Miss) -> String {
        let slice = UnsafeBufferPointer(rebasing: bytes[range])
        guard let text = String(validating: slice, as: UTF8.self) else { throw Miss() }
        return text
    }

    mutating func isNull() -> Bool {
        guard peek() == UInt8(ascii: "n") else { return false }
        return literal("null")
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { return false }
        for offset in 0..<count where bytes[position + offset] != word.utf8Start[offset] { return false }
        position += count
        return true
    }

    mutating func string() throws(Miss) -> String {
        try expect(UInt8(ascii: "\""))
        let start = position
        var plain = true  // no escapes: the bytes are the string
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") { break }
            guard byte >= 0x20 else { throw Miss() }
            if byte == UInt8(ascii: "\\") {
                plain = false
                position += 2
            } else {
                position += 1
            }
        }
        guard position < bytes.count else { throw Miss() }
        let range = start..<position
        position += 1
        if plain { return try text(range) }
        return try unescaped(range)
    }

    /// The simple escapes; `\u` is left to Foundation (surrogate pairs and their errors).
    private func unescaped(_ range: Range<Int>) throws(Miss) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var index = range.lowerBound
        while index < range.upperBound {
            let byte = bytes[index]
            index += 1
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                continue
            }
            guard index < range.upperBound else { throw Miss() }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            default: throw Miss()
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else { throw Miss() }
        return text
    }

    /// An integer written as one: `-?(0|[1-9][0-9]*)` within Int64. `2.0` and `1e2` are left to Foundation.
    mutating func int64() throws(Miss) -> Int64 {
        let value = try integerPart()
        if position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): throw Miss()
            default: break
            }
        }
        return value
    }

    /// The digits of a number up to a point or an exponent, which are left unread.
    private mutating func integerPart() throws(Miss) -> Int64 {
        _ = peek()
        let negative = position < bytes.count && bytes[position] == UInt8(ascii: "-")
        if negative { position += 1 }
        let start = position
        var magnitude: UInt64 = 0
        while position < bytes.count, bytes[position] &- UInt8(ascii: "0") < 10 {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(bytes[position] &- UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { throw Miss() }
            magnitude = sum
            position += 1
        }
        let count = position - start
        guard count > 0, count == 1 || bytes[start] != UInt8(ascii: "0") else { throw Miss() }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { throw Miss() }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { throw Miss() }
        return Int64(magnitude)
    }

    mutating func int() throws(Miss) -> Int {
        Int(try int64())
    }

    /// A number as a double.
    mutating func double() throws(Miss) -> Double {
        let negative = peek() == UInt8(ascii: "-")
        switch try number() {
        case .int(let value): return value == 0 && negative ? -0.0 : Double(value)
        case .double(let value): return value
        default: throw Miss()
        }
    }

    /// A number as `JSONValue` reads it through Foundation: `.int` when it is a whole number within Int64, in any
    /// notation (`2.0` and `1e2` too), `.double` otherwise. Whole numbers written with a point or an exponent are
    /// left to Foundation, whose parse decides exactly which count as whole.
    private mutating func jsonNumber() throws(Miss) -> JSONValue {
        let number = try number()
        if case .double(let value) = number, value.rounded() == value, value.magnitude <= 0x1p63 { throw Miss() }
        return number
    }

    /// An integer as `.int`; with a fraction or an exponent, as `.double`.
    private mutating func number() throws(Miss) -> JSONValue {
        _ = peek()
        let start = position
        let integer = try integerPart()
        func isDigit(_ index: Int) -> Bool { index < bytes.count && bytes[index] &- UInt8(ascii: "0") < 10 }
        var isInteger = true
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard isDigit(position) else { throw Miss() }
            while isDigit(position) { position += 1 }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard isDigit(position) else { throw Miss() }
            while isDigit(position) { position += 1 }
        }
        if isInteger { return .int(integer) }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw Miss() }
        return .double(value)
    }

    mutating func bool() throws(Miss) -> Bool {
        switch peek() {
        case UInt8(ascii: "t") where literal("true"): return true
        case UInt8(ascii: "f") where literal("false"): return false
        default: throw Miss()
        }
    }

    mutating func value() throws(Miss) -> JSONValue {
        switch peek() {
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "{"): return .object(try object())
        case UInt8(ascii: "["):
            var items: [JSONValue] = []
            if try beginArray() {
                repeat { items.append(try value()) } while try moreElements()
            }
            return .array(items)
        case UInt8(ascii: "n") where literal("null"): return .null
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool(try bool())
        default: return try jsonNumber()
        }
    }

    /// A free-form object. A repeated key is left to Foundation (which keeps the first).
    mutating func object() throws(Miss) -> [String: JSONValue] {
        var fields: [String: JSONValue] = [:]
        guard try beginObject() else { return fields }
        repeat {
            let name = try string()
            try expect(UInt8(ascii: ":"))
            guard fields.updateValue(try value(), forKey: name) == nil else { throw Miss() }
        } while try moreMembers()
        return fields
    }
}
