import Foundation
import Testing

@testable import SlipwayCore

// A dependency-free mutation and generation fuzzer of the slip decoder and validator (docs/fuzzing.md).
//
// Every input is checked against the same properties: decoding never crashes (a hang is a run that does not end; the
// slowest input is reported, not judged), and it either returns a slip that passes `validate()` and re-encodes to
// bytes that decode to an equal slip (and re-encode to the same bytes), or throws a `SlipRejection` with a known code
// and a non-empty reason. Generated slips that validate must also survive encode → decode unchanged, and those that do
// not validate must be refused by the decoder with the same rejection.
//
// SLIPWAY_FUZZ_ITERATIONS (default 20,000), SLIPWAY_FUZZ_SEED (default 0x5119_0A7), SLIPWAY_FUZZ_FIRST (index of
// the first input, to replay a range) and SLIPWAY_FUZZ_ARTIFACTS (a directory where failing inputs are written).
// Input i depends only on the seed and i, so any input can be replayed alone with FIRST=i and ITERATIONS=1.

// MARK: - Reproducible randomness

extension SplitMix64 {
    /// The generator of input `index` of a run: every input can be rebuilt alone.
    static func forInput(_ index: Int, seed: UInt64) -> SplitMix64 {
        var mixer = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: index) &* 0xD1B5_4A32_D192_ED03))
        return SplitMix64(seed: mixer.next())
    }

    mutating func below(_ bound: Int) -> Int { Int.random(in: 0..<max(bound, 1), using: &self) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

// MARK: - A JSON tree that keeps raw text

/// A JSON document as a tree whose leaves and keys are raw JSON text, so that a mutation can put anything there:
/// `1e309`, `-0`, `"\ud800"`, a duplicate key, or text that is not JSON at all.
indirect enum FuzzTree {
    case leaf(String)
    case array([FuzzTree])
    case object([(key: String, value: FuzzTree)])

    var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    func write(to out: inout String) {
        switch self {
        case .leaf(let raw): out += raw
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (index, member) in members.enumerated() {
                if index > 0 { out += "," }
                out += member.key
                out += ":"
                member.value.write(to: &out)
            }
            out += "}"
        }
    }

    /// Paths to every node: indexes into arrays and members.
    func paths(prefix: [Int] = [], into result: inout [[Int]]) {
        result.append(prefix)
        switch self {
        case .leaf: break
        case .array(let items):
            for (index, item) in items.enumerated() { item.paths(prefix: prefix + [index], into: &result) }
        case .object(let members):
            for (index, member) in members.enumerated() { member.value.paths(prefix: prefix + [index], into: &result) }
        }
    }

    subscript(path: [Int]) -> FuzzTree {
        get {
            guard let first = path.first else { return self }
            switch self {
            case .leaf: return self
            case .array(let items): return items[first][Array(path.dropFirst())]
            case .object(let members): return members[first].value[Array(path.dropFirst())]
            }
        }
        set {
            guard let first = path.first else {
                self = newValue
                return
            }
            switch self {
            case .leaf: self = newValue
            case .array(var items):
                items[first][Array(path.dropFirst())] = newValue
                self = .array(items)
            case .object(var members):
                members[first].value[Array(path.dropFirst())] = newValue
                self = .object(members)
            }
        }
    }

    /// A JSON string literal for `text`, escaped as JSON requires.
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Parses well-formed JSON (the fixtures) into a `FuzzTree`, keeping strings, numbers and keys as written.
struct FuzzTreeParser {
    let bytes: [UInt8]
    var index = 0

    static func parse(_ bytes: [UInt8]) -> FuzzTree? {
        var parser = FuzzTreeParser(bytes: bytes)
        guard let tree = parser.value() else { return nil }
        parser.skipSpace()
        return parser.index == bytes.count ? tree : nil
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func skipSpace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    mutating func value() -> FuzzTree? {
        skipSpace()
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var members: [(key: String, value: FuzzTree)] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipSpace()
                guard let key = string() else { return nil }
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                guard let member = value() else { return nil }
                members.append((key, member))
                skipSpace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                return nil
            }
        case UInt8(ascii: "["):
            index += 1
            var items: [FuzzTree] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                guard let item = value() else { return nil }
                items.append(item)
                skipSpace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                return nil
            }
        case UInt8(ascii: "\""):
            return string().map(FuzzTree.leaf)
        default:
            let start = index
            while index < bytes.count, !",]} \t\n\r".utf8.contains(bytes[index]) { index += 1 }
            guard index > start else { return nil }
            return .leaf(String(decoding: bytes[start..<index], as: UTF8.self))
        }
    }

    /// A string literal, as raw text with its quotes.
    mutating func string() -> String? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        let start = index
        index += 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: bytes[start..<index], as: UTF8.self)
            default: index += 1
            }
        }
        return nil
    }
}

// MARK: - The fuzzer

/// What a decode of one input came to.
enum FuzzOutcome: Hashable, Comparable, CustomStringConvertible {
    case accepted
    case rejected(String)

    var description: String {
        switch self {
        case .accepted: "accepted"
        case .rejected(let code): "rejected \(code)"
        }
    }
}

/// A broken property: which input, which strategy, what went wrong, and the input itself.
struct FuzzFailure: CustomStringConvertible {
    let index: Int
    let strategy: String
    let problem: String
    let input: [UInt8]

    var description: String {
        let preview = String(decoding: input.prefix(300), as: UTF8.self)
        return "input #\(index) (\(strategy), \(input.count) bytes): \(problem.prefix(800))\n  input starts: \(preview)"
    }
}

struct SlipFuzzer {
    let seed: UInt64
    let codec = SlipCodec()
    let corpus: [[UInt8]]
    let trees: [FuzzTree]

    /// The codes `decode` may answer with. `misrouted` is a processor's, never the decoder's.
    static let decoderCodes: Set<SlipRejection.Code> = [.malformed, .unsupportedVersion, .invalid, .tooLarge]

    /// The deepest nesting of arrays and objects in a body, outside strings.
    static func nestingDepth(_ body: [UInt8]) -> Int {
        var depth = 0, deepest = 0, inString = false, escaped = false
        for byte in body {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }

    init(seed: UInt64, corpus: [[UInt8]]) {
        self.seed = seed
        self.corpus = corpus
        self.trees = corpus.compactMap(FuzzTreeParser.parse)
    }

    // MARK: Checking one input

    /// Decodes `body` and checks the properties. Returns the outcome and the broken property, if any.
    func check(_ body: [UInt8]) -> (outcome: FuzzOutcome, problem: String?, reasonLength: Int) {
        let result = checkDecoding(body)
        return (result.outcome, result.problem, result.reasonLength)
    }

    /// `check`, with what `decode` returned.
    func checkDecoding(_ body: [UInt8]) -> (outcome: FuzzOutcome, problem: String?, reasonLength: Int, decoded: Result<Slip, SlipRejection>) {
        let slip: Slip
        do {
            slip = try codec.decode(body)
        } catch {
            let problem = rejectionProblem(error) ?? disagreement(body, .failure(error))
            return (.rejected(error.code.rawValue), problem, error.reason.count, .failure(error))
        }
        return (.accepted, acceptedProblem(slip) ?? disagreement(body, .success(slip)), 0, .success(slip))
    }

    /// `decode` reads common bodies with its own byte reader and hands the rest to Foundation's decoder: both
    /// paths must give the same slip, or the same refusal, for every input.
    func disagreement(_ body: [UInt8], _ decoded: Result<Slip, SlipRejection>) -> String? {
        let foundation = Result { () throws(SlipRejection) -> Slip in try codec.decodeWithFoundation(Data(body)) }
        switch (decoded, foundation) {
        case (.success(let fast), .success(let slow)) where fast == slow: return nil
        case (.failure(let fast), .failure(let slow)) where fast == slow: return nil
        default: return "decode says \(decoded), Foundation's decoder says \(foundation)".prefix(1_000).description
        }
    }

    func rejectionProblem(_ rejection: SlipRejection) -> String? {
        if !Self.decoderCodes.contains(rejection.code) { return "rejected with unknown code '\(rejection.code)'" }
        if rejection.reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return "rejected (\(rejection.code)) without a reason"
        }
        return nil
    }

    /// An accepted slip must validate, re-encode, decode to itself, and re-encode to the same bytes.
    func acceptedProblem(_ slip: Slip) -> String? {
        do {
            try slip.validate()
        } catch {
            return "accepted, but validate() refuses it: \(error)"
        }
        let once: [UInt8]
        do {
            once = try codec.encode(slip)
        } catch {
            return "accepted, but encode throws: \(error)"
        }
        if let foundation = try? SlipCodec.makeEncoder().encode(slip), [UInt8](foundation) != once {
            return "encode and Foundation's encoder write different bytes:\n  encode:     \(String(decoding: once.prefix(300), as: UTF8.self))\n  Foundation: \(String(decoding: foundation.prefix(300), as: UTF8.self))"
        }
        let again: Slip
        do {
            again = try codec.decode(once)
        } catch {
            return "accepted, but its re-encoding is refused: \(error)\n  re-encoded: \(String(decoding: once.prefix(300), as: UTF8.self))"
        }
        if again != slip { return "accepted, but its re-encoding decodes to another slip: \(difference(slip, again))" }
        guard let twice = try? codec.encode(again) else { return "the re-decoded slip does not encode" }
        if twice != once {
            return "re-encoding is not idempotent:\n  once:  \(String(decoding: once.prefix(300), as: UTF8.self))\n  twice: \(String(decoding: twice.prefix(300), as: UTF8.self))"
        }
        return nil
    }

    func difference(_ a: Slip, _ b: Slip) -> String {
        var fields: [String] = []
        if a.createdAt != b.createdAt {
            fields.append("createdAt \(a.createdAt.timeIntervalSince1970) vs \(b.createdAt.timeIntervalSince1970)")
        }
        if a.deadline != b.deadline { fields.append("deadline \(String(describing: a.deadline)) vs \(String(describing: b.deadline))") }
        if a.itinerary != b.itinerary { fields.append("itinerary") }
        if a.log != b.log { fields.append("log \(a.log) vs \(b.log)") }
        if a.compensations != b.compensations { fields.append("compensations") }
        if a.variables != b.variables { fields.append("variables \(a.variables) vs \(b.variables)") }
        if a.fault != b.fault { fields.append("fault") }
        return fields.isEmpty ? "(other fields)" : fields.joined(separator: "; ").prefix(600).description
    }

    // MARK: One input of a run

    /// Input `index`: the strategy's name and the bytes, or a generated slip.
    enum Input {
        case bytes(String, [UInt8])
        case generated(Slip)
    }

    func input(_ index: Int) -> Input {
        var rng = SplitMix64.forInput(index, seed: seed)
        let roll = rng.below(100)
        if roll < 45 { return .bytes("byte mutation", byteMutant(&rng)) }
        if roll < 82 { return .bytes("structure mutation", [UInt8](structureMutant(&rng).utf8)) }
        return .generated(generatedSlip(&rng))
    }

    /// Runs input `index` through its properties.
    func run(_ index: Int) -> (outcome: FuzzOutcome, failure: FuzzFailure?, reasonLength: Int) {
        run(input(index), index: index)
    }

    func run(_ input: Input, index: Int) -> (outcome: FuzzOutcome, failure: FuzzFailure?, reasonLength: Int) {
        switch input {
        case .bytes(let strategy, let body):
            let result = check(body)
            return (result.outcome, result.problem.map { FuzzFailure(index: index, strategy: strategy, problem: $0, input: body) },
                    result.reasonLength)
        case .generated(let slip):
            return runGenerated(slip, index: index)
        }
    }

    /// A generated slip that validates must round-trip exactly; one that does not must be refused by the decoder with
    /// the rejection `validate()` gives.
    func runGenerated(_ slip: Slip, index: Int) -> (outcome: FuzzOutcome, failure: FuzzFailure?, reasonLength: Int) {
        func failure(_ problem: String, _ body: [UInt8]) -> FuzzFailure {
            FuzzFailure(index: index, strategy: "generated slip", problem: problem, input: body)
        }
        let body: [UInt8]
        do {
            body = try codec.encode(slip)
        } catch {
            return (.rejected("encode"), failure("a generated slip does not encode: \(error)", []), 0)
        }
        var expected: SlipRejection?
        do { try slip.validate() } catch { expected = error }
        let result = checkDecoding(body)
        if let problem = result.problem { return (result.outcome, failure(problem, body), result.reasonLength) }
        switch (expected, result.decoded) {
        case (nil, .success(let decoded)):
            if decoded != slip {
                return (.accepted, failure("a valid generated slip changes in encode → decode: \(difference(slip, decoded))", body), 0)
            }
        case (nil, .failure(let refusal)):
            return (result.outcome, failure("a valid generated slip is refused: \(refusal)", body), result.reasonLength)
        case (let expected?, .success):
            return (.accepted, failure("validate() refuses the generated slip (\(expected)), but decode accepts it", body), 0)
        case (let expected?, .failure(let refusal)):
            if refusal != expected {
                return (result.outcome, failure("validate() says \(expected), decode says \(refusal)", body), result.reasonLength)
            }
        }
        return (result.outcome, nil, result.reasonLength)
    }

    // MARK: (a) Byte-level mutations

    static let interestingBytes: [UInt8] = [
        0x00, 0x01, 0x08, 0x0A, 0x0D, 0x1F, 0x20, 0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xF8,
        0xFE, 0xFF, UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["),
        UInt8(ascii: "]"), UInt8(ascii: ","), UInt8(ascii: ":"), UInt8(ascii: "0"), UInt8(ascii: "9"), UInt8(ascii: "-"),
        UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "u"), UInt8(ascii: "/"),
    ]

    static let interestingTokens: [String] = [
        "1e309", "-1e309", "1e-400", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "-9223372036854775809", "18446744073709551616", "1" + String(repeating: "0", count: 400), "-0", "-0.0", "0.5",
        "1.0", "1E2", "01", "+1", ".5", "1.", "0x10", "NaN", "Infinity", "-Infinity", "null", "true", "false", "{}", "[]",
        "\"\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\u0000\"", "\"\\uffff\"", "\\u", "\\ud83d\\ude80",
        "\\", "\"", "\u{FEFF}", "\u{2028}", "\u{10FFFF}", "\"formatVersion\":1,", "\"formatVersion\":2,", ",\"x\":1",
        String(repeating: "[", count: 600), String(repeating: "{\"a\":", count: 600), String(repeating: "]", count: 50),
    ]

    static let invalidUTF8: [[UInt8]] = [
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xF4, 0x90, 0x80, 0x80],
        [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFF], [0xFE, 0xFF], [0xEF, 0xBB, 0xBF], [0xE2, 0x82], [0x80],
    ]

    func byteMutant(_ rng: inout SplitMix64) -> [UInt8] {
        var body = rng.pick(corpus)
        if rng.chance(1) {
            // Over the size limit: refused before parsing.
            return body + [UInt8](repeating: UInt8(ascii: " "), count: codec.limits.maxMessageBytes + 1 - body.count + rng.below(100))
        }
        for _ in 0..<(1 + rng.below(4)) { mutateBytes(&body, &rng) }
        return body
    }

    func mutateBytes(_ body: inout [UInt8], _ rng: inout SplitMix64) {
        let position = rng.below(body.count + 1)
        switch rng.below(12) {
        case 0:  // flip a bit
            guard !body.isEmpty else { return }
            body[min(position, body.count - 1)] ^= 1 << UInt8(rng.below(8))
        case 1:  // overwrite with an interesting byte
            guard !body.isEmpty else { return }
            body[min(position, body.count - 1)] = rng.pick(Self.interestingBytes)
        case 2:  // insert bytes
            let count = 1 + rng.below(4)
            body.insert(contentsOf: (0..<count).map { _ in rng.chance(50) ? rng.pick(Self.interestingBytes) : UInt8.random(in: 0...255, using: &rng) }, at: position)
        case 3:  // delete a range
            guard !body.isEmpty else { return }
            let start = min(position, body.count - 1)
            body.removeSubrange(start..<min(body.count, start + 1 + rng.below(rng.chance(80) ? 8 : 200)))
        case 4:  // duplicate a range somewhere
            guard !body.isEmpty else { return }
            let start = rng.below(body.count)
            let chunk = Array(body[start..<min(body.count, start + 1 + rng.below(64))])
            body.insert(contentsOf: chunk, at: rng.below(body.count + 1))
        case 5:  // splice: the head of this input and the tail of another
            let other = rng.pick(corpus)
            body = Array(body.prefix(position)) + Array(other.suffix(from: rng.below(other.count + 1)))
        case 6:  // truncate
            body = Array(body.prefix(position))
        case 7:  // insert an interesting token
            body.insert(contentsOf: Array(rng.pick(Self.interestingTokens).utf8), at: position)
        case 8:  // replace a number with an interesting one
            let digits = body.indices.filter { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(body[$0]) }
            guard !digits.isEmpty else { return }
            var start = rng.pick(digits)
            var end = start
            while start > 0, "0123456789.-+eE".utf8.contains(body[start - 1]) { start -= 1 }
            while end < body.count, "0123456789.-+eE".utf8.contains(body[end]) { end += 1 }
            body.replaceSubrange(start..<end, with: Array(rng.pick(Array(Self.interestingTokens.prefix(20))).utf8))
        case 9:  // invalid UTF-8
            body.insert(contentsOf: rng.pick(Self.invalidUTF8), at: position)
        case 10:  // wrap in deep nesting
            let depth = rng.pick([1, 2, 10, 100, 511, 512, 513, 1_000, 10_000])
            body = Array(repeating: UInt8(ascii: "["), count: depth) + body + Array(repeating: UInt8(ascii: "]"), count: depth)
        default:  // swap two bytes
            guard body.count > 1 else { return }
            body.swapAt(rng.below(body.count), rng.below(body.count))
        }
    }

    // MARK: (b) Structure-aware mutations

    static let fieldNames = [
        "formatVersion", "id", "template", "createdAt", "sequence", "attempt", "state", "itinerary", "log", "compensations",
        "variables", "fault", "deadline", "step", "arguments", "retry", "timeoutMs", "compensateTimeoutMs", "kind", "outcome", "startedAt",
        "durationMicros", "processor", "reason", "address", "data", "attempts", "maxAttempts", "initialDelayMs",
        "multiplier", "maxDelayMs", "jitter", "fork", "branches", "", "FormatVersion", "formatversion", "id ", "ïd",
    ]

    static let extremeLeaves: [String] = [
        "0", "1", "2", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "-9223372036854775809", "18446744073709551616", "1" + String(repeating: "0", count: 400), "-0", "0.0", "-0.0",
        "1.5", "1e2", "1E+2", "1e309", "-1e309", "1e-400", "4.9e-324", "1.7976931348623157e308", "2.0", "1000", "1001",
        "86400000", "86400001", "604800000", "604800001", "100", "100.0000001", "NaN", "Infinity", "-Infinity", "nan",
        "01", "+1", ".5", "1.", "0x10", "\"NaN\"", "\"1\"", "true", "false", "null", "[]", "{}", "\"\"", "\"\\ud800\"",
        "\"\\udc00\"", "\"a\\ud800b\"", "\"\\ud800\\u0041\"", "\"\\udbff\\udfff\"", "\"\\u0000\"", "\"\\uffff\"",
        "\"\\ufeff\"", "\"\\u2028\"", "\"\\uD83D\\uDE80\"", "\"🚀\"", "\"e\\u0301\"", "\"\\\"\"", "\"a\\/b\"", "\"\\x41\"",
        "\"running\"", "\"compensating\"", "\"completed\"", "\"compensated\"", "\"faulted\"", "\"compensation-failed\"",
        "\"terminated\"", "\"RUNNING\"", "\"execute\"", "\"compensate\"", "\"retried\"", "\"failed\"",
        "\"2026-11-22T05:34:20.123Z\"", "\"2026-11-22T05:34:20Z\"", "\"2026-11-22T05:34:20.1234567891Z\"",
        "\"2026-11-22T05:34:20.9995Z\"", "\"2026-11-22T05:34:20.0005Z\"", "\"2026-11-22T07:34:20.125+02:00\"",
        "\"2026-11-22T05:34:20+25:00\"", "\"2026-02-30T00:00:00Z\"", "\"2026-11-22t05:34:20z\"", "\"2026-11-22 05:34:20Z\"",
        "\"2026-11-22T24:00:00Z\"", "\"2026-11-22T05:34:60Z\"", "\"0000-01-01T00:00:00Z\"", "\"0001-01-01T00:00:00Z\"",
        "\"1969-12-31T23:59:59.999Z\"", "\"9999-12-31T23:59:59.999Z\"", "\"99999-01-01T00:00:00Z\"",
        "\"-2026-11-22T05:34:20Z\"", "\"2026-11-22\"", "\"2026-11-22T05:34:20.Z\"", "\"1e3\"",
        "\"a\"", "\"a.b\"", "\"a b\"", "\"" + String(repeating: "x", count: 64) + "\"",
        "\"" + String(repeating: "x", count: 65) + "\"", "\"x\\n\"", "\"slipway.a.compensate\"",
        "{\"step\":\"a\",\"arguments\":{}}", "{\"fork\":{\"branches\":[]}}",
        "{\"step\":\"a\",\"sequence\":0,\"reason\":\"r\",\"attempts\":1}",
        "{\"step\":\"a\",\"address\":\"q\",\"data\":null,\"sequence\":0}",
        "{\"maxAttempts\":0}", "{\"multiplier\":1e309}", "{\"jitter\":-0.0}",
        "nul", "tru", "\"unterminated", "[1,]", "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "{1:2}",
    ]

    func randomKey(_ rng: inout SplitMix64) -> String {
        if rng.chance(70) { return FuzzTree.quote(rng.pick(Self.fieldNames)) }
        return rng.pick(["\"\\ud800\"", "\"\\u0000\"", "\"🚀\"", FuzzTree.quote(randomString(&rng, maxLength: 12))])
    }

    func randomLeaf(_ rng: inout SplitMix64) -> String {
        switch rng.below(4) {
        case 0: return String(Int64.random(in: .min ... .max, using: &rng) >> Int64(rng.below(64)))
        case 1: return FuzzTree.quote(randomString(&rng, maxLength: 20))
        default: return rng.pick(Self.extremeLeaves)
        }
    }

    func randomTree(_ rng: inout SplitMix64, depth: Int) -> FuzzTree {
        if depth <= 0 || rng.chance(55) { return .leaf(randomLeaf(&rng)) }
        let count = rng.below(4)
        if rng.chance(50) { return .array((0..<count).map { _ in randomTree(&rng, depth: depth - 1) }) }
        return .object((0..<count).map { _ in (randomKey(&rng), randomTree(&rng, depth: depth - 1)) })
    }

    /// `depth` arrays or objects (or both, alternating) around `inner`.
    static func nested(_ depth: Int, kind: Int, inner: String = "1") -> String {
        var open = "", close = ""
        open.reserveCapacity(depth * 6)
        for level in 0..<depth {
            if kind == 0 || (kind == 2 && level % 2 == 0) {
                open += "["
                close += "]"
            } else {
                open += "{\"a\":"
                close += "}"
            }
        }
        return open + inner + String(close.reversed())
    }

    func structureMutant(_ rng: inout SplitMix64) -> String {
        var tree = rng.pick(trees)
        for _ in 0..<(1 + rng.below(3)) { mutateTree(&tree, &rng) }
        return tree.text
    }

    func mutateTree(_ tree: inout FuzzTree, _ rng: inout SplitMix64) {
        var paths: [[Int]] = []
        tree.paths(into: &paths)
        // Prefer the top-level fields and their direct children: that is where the slip's shape is.
        let shallow = paths.filter { $0.count <= 2 }
        let path = rng.chance(60) && !shallow.isEmpty ? rng.pick(shallow) : rng.pick(paths)
        let node = tree[path]
        switch rng.below(11) {
        case 0, 1:  // replace a value: a type change or an extreme value
            tree[path] = .leaf(rng.pick(Self.extremeLeaves))
        case 2:  // replace with a random subtree
            tree[path] = randomTree(&rng, depth: 3)
        case 3:  // drop a member or an element
            switch node {
            case .object(var members) where !members.isEmpty:
                members.remove(at: rng.below(members.count))
                tree[path] = .object(members)
            case .array(var items) where !items.isEmpty:
                items.remove(at: rng.below(items.count))
                tree[path] = .array(items)
            default: tree[path] = .leaf("null")
            }
        case 4:  // add a member (known, unknown or duplicate key) or an element
            switch node {
            case .object(var members):
                let key = rng.chance(30) && !members.isEmpty ? rng.pick(members).key : randomKey(&rng)
                members.insert((key, randomTree(&rng, depth: 2)), at: rng.below(members.count + 1))
                tree[path] = .object(members)
            case .array(var items):
                let item = !items.isEmpty && rng.chance(60) ? rng.pick(items) : randomTree(&rng, depth: 2)
                items.insert(item, at: rng.below(items.count + 1))
                tree[path] = .array(items)
            default: tree[path] = .array([node])
            }
        case 5:  // rename a key
            guard case .object(var members) = node, !members.isEmpty else { return }
            let index = rng.below(members.count)
            members[index].key = randomKey(&rng)
            tree[path] = .object(members)
        case 6:  // deep nesting: around Foundation's parser limit (512), and 2 to 10,000 levels
            // One time in four near 512: the codec refuses anything past `SlipCodec.maxNestingDepth` before parsing.
            let depth = rng.chance(25) ? rng.pick([500, 510, 511, 512, 513, 600]) : rng.pick([2, 20, 50, 100, 2_000, 10_000])
            tree[path] = .leaf(Self.nested(depth, kind: rng.below(3)))
        case 7 where rng.chance(25):  // a huge array of steps, records, or numbers (slow to decode: rarer)
            let count = rng.chance(3) ? rng.pick([5_000, 20_000]) : rng.pick([999, 1_000, 1_001])
            let element = rng.pick([
                "{\"step\":\"s\",\"arguments\":{}}", "1", "{\"step\":\"a\",\"address\":\"q\",\"data\":null,\"sequence\":0}",
            ])
            tree[path] = .leaf("[" + Array(repeating: element, count: count).joined(separator: ",") + "]")
        case 7:  // (most of the time) a small array of steps
            tree[path] = .leaf("[" + Array(repeating: "{\"step\":\"s\",\"arguments\":{}}", count: rng.below(5)).joined(separator: ",") + "]")
        case 8:  // swap two nodes
            let other = rng.pick(paths)
            guard !path.starts(with: other), !other.starts(with: path) else { return }
            let otherNode = tree[other]
            tree[other] = node
            tree[path] = otherNode
        case 9:  // a long or strange string
            tree[path] = .leaf(FuzzTree.quote(randomString(&rng, maxLength: rng.chance(3) ? 100_000 : 100)))
        default:  // wrap in an array or an object
            tree[path] = rng.chance(50) ? .array([node]) : .object([(randomKey(&rng), node)])
        }
    }

    // MARK: (c) Generated slips

    /// Unicode that tends to break things: controls, quotes, the BOM, line separators, astral-plane and combining
    /// characters, noncharacters.
    static let oddScalars: [Unicode.Scalar] = [
        "\u{0}", "\u{1}", "\u{1F}", "\u{7F}", "\"", "\\", "/", "\u{A0}", "\u{FEFF}", "\u{2028}", "\u{2029}", "\u{FFFD}",
        "\u{FFFF}", "\u{10FFFF}", "\u{1F680}", "\u{301}", "é", "ß", "日", "ع", "\u{200D}", "\u{E000}",
    ]

    func randomString(_ rng: inout SplitMix64, maxLength: Int) -> String {
        var text = String.UnicodeScalarView()
        for _ in 0..<rng.below(maxLength + 1) {
            switch rng.below(10) {
            case 0..<6: text.append(Unicode.Scalar(UInt8(0x20 + rng.below(95))))
            case 6..<9: text.append(rng.pick(Self.oddScalars))
            default:
                let value = UInt32(rng.below(0x11_0000))
                text.append(Unicode.Scalar(value) ?? "\u{FFFD}")
            }
        }
        return String(text)
    }

    /// A lowercase UUID from the generator (`Slip.newID()` is not reproducible).
    func randomUUID(_ rng: inout SplitMix64) -> String {
        let a = rng.next(), b = rng.next()
        let uuid = UUID(uuid: (
            UInt8(truncatingIfNeeded: a), UInt8(truncatingIfNeeded: a >> 8), UInt8(truncatingIfNeeded: a >> 16),
            UInt8(truncatingIfNeeded: a >> 24), UInt8(truncatingIfNeeded: a >> 32), UInt8(truncatingIfNeeded: a >> 40),
            UInt8(truncatingIfNeeded: a >> 48), UInt8(truncatingIfNeeded: a >> 56), UInt8(truncatingIfNeeded: b),
            UInt8(truncatingIfNeeded: b >> 8), UInt8(truncatingIfNeeded: b >> 16), UInt8(truncatingIfNeeded: b >> 24),
            UInt8(truncatingIfNeeded: b >> 32), UInt8(truncatingIfNeeded: b >> 40), UInt8(truncatingIfNeeded: b >> 48),
            UInt8(truncatingIfNeeded: b >> 56)))
        return uuid.uuidString.lowercased()
    }

    func randomName(_ rng: inout SplitMix64) -> String {
        if rng.chance(3) { return rng.pick(["", "a.b", "a b", String(repeating: "n", count: 65), "é", "a\n"]) }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        return String((0..<(1 + rng.below(rng.chance(5) ? 64 : 16))).map { _ in rng.pick(alphabet) })
    }

    /// A whole number of milliseconds, built the way the decoder builds instants so that it can compare equal.
    func randomDate(_ rng: inout SplitMix64) -> Date {
        let seconds: Int64 = rng.chance(90)
            ? Int64(1_700_000_000 + rng.below(200_000_000))
            : Int64(rng.below(253_402_300_800)) - 62_135_596_800  // years 0001 to 9999
        let milliseconds = rng.below(1_000)
        return Date(timeIntervalSince1970: Double(seconds) + Double(milliseconds) / 1_000)
    }

    func randomInt(_ rng: inout SplitMix64) -> Int {
        switch rng.below(10) {
        case 0: return rng.pick([.min, .max, -1, 0, 1])
        case 1: return Int.random(in: .min ... .max, using: &rng)
        default: return rng.below(1_000)
        }
    }

    /// A JSON value that survives a round trip exactly: no whole-valued doubles (which may come back as integers).
    func randomJSON(_ rng: inout SplitMix64, depth: Int) -> JSONValue {
        switch rng.below(depth > 0 ? 9 : 6) {
        case 0: return .null
        case 1: return .bool(rng.chance(50))
        case 2: return .int(rng.chance(20) ? rng.pick([.min, .max, 0, -1, 1 << 53 + 1]) : Int64.random(in: -1_000_000...1_000_000, using: &rng))
        case 3:
            var value = rng.chance(20)
                ? rng.pick([0.1, 0.5, -1.5e-7, 1e300, -1e-300, .leastNonzeroMagnitude, .greatestFiniteMagnitude, .pi])
                : Double.random(in: -1e6...1e6, using: &rng)
            if value.rounded() == value { value += 0.5 }
            return .double(value)
        case 4, 5: return .string(randomString(&rng, maxLength: 16))
        case 6, 7:
            return .object(Dictionary((0..<rng.below(4)).map { _ in (randomString(&rng, maxLength: 8), randomJSON(&rng, depth: depth - 1)) }, uniquingKeysWith: { a, _ in a }))
        default: return .array((0..<rng.below(4)).map { _ in randomJSON(&rng, depth: depth - 1) })
        }
    }

    func randomArguments(_ rng: inout SplitMix64) -> [String: JSONValue] {
        Dictionary((0..<rng.below(4)).map { _ in (randomString(&rng, maxLength: 8), randomJSON(&rng, depth: 3)) }, uniquingKeysWith: { a, _ in a })
    }

    func generatedSlip(_ rng: inout SplitMix64) -> Slip {
        let steps = (0..<rng.below(rng.below(200) == 0 ? 1_100 : 5)).map { _ in
            ItineraryStep(
                step: randomName(&rng), arguments: randomArguments(&rng),
                retry: rng.chance(20)
                    ? RetryPolicy(
                        maxAttempts: rng.chance(90) ? 1 + rng.below(10) : randomInt(&rng),
                        initialDelayMs: rng.below(10_000), multiplier: rng.pick([1, 1.5, 2, 100, 0.5, 101]),
                        maxDelayMs: rng.chance(90) ? rng.below(100_000) : randomInt(&rng), jitter: rng.pick([0, 0.2, 1, 1.5, -0.1]))
                    : nil,
                timeoutMs: rng.chance(20) ? (rng.chance(80) ? 1 + rng.below(100_000) : randomInt(&rng)) : nil,
                compensateTimeoutMs: rng.chance(20) ? (rng.chance(80) ? 1 + rng.below(100_000) : randomInt(&rng)) : nil)
        }
        var slip = Slip(
            id: rng.chance(50) ? randomUUID(&rng) : randomName(&rng), template: randomName(&rng), itinerary: steps,
            variables: randomArguments(&rng), deadline: rng.chance(30) ? randomDate(&rng) : nil, createdAt: randomDate(&rng))
        slip.state = rng.pick(SlipState.allCases)
        slip.sequence = rng.chance(90) ? rng.below(100) : randomInt(&rng)
        slip.attempt = rng.chance(90) ? 1 + rng.below(5) : randomInt(&rng)
        slip.log = (0..<rng.below(4)).map { _ in
            LogEntry(
                sequence: randomInt(&rng), step: randomName(&rng), kind: rng.pick([.execute, .compensate]),
                outcome: rng.pick([.completed, .faulted, .retried, .failed, .terminated]), attempt: randomInt(&rng),
                startedAt: randomDate(&rng), durationMicros: Int64(randomInt(&rng)), processor: randomString(&rng, maxLength: 20),
                reason: rng.chance(50) ? randomString(&rng, maxLength: 30) : nil)
        }
        slip.compensations = (0..<rng.below(4)).map { _ in
            CompensationRecord(
                step: randomName(&rng), address: rng.chance(95) ? "slipway.x.compensate" : "", data: randomJSON(&rng, depth: 3),
                sequence: randomInt(&rng),
                timeoutMs: rng.chance(20) ? (rng.chance(80) ? 1 + rng.below(100_000) : randomInt(&rng)) : nil)
        }
        if rng.chance(50) {
            slip.fault = Fault(step: randomName(&rng), sequence: randomInt(&rng), reason: randomString(&rng, maxLength: 30), attempts: randomInt(&rng))
        }
        return slip
    }
}

// MARK: - The tests

@Suite("Fuzzing the slip decoder and validator")
struct FuzzTests {
    static func environment(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }

    static func seedFromEnvironment() -> UInt64 {
        guard let text = environment("SLIPWAY_FUZZ_SEED") else { return 0x5119_0A7 }
        if text.hasPrefix("0x") { return UInt64(text.dropFirst(2), radix: 16) ?? 0x5119_0A7 }
        return UInt64(text) ?? 0x5119_0A7
    }

    static func corpus() throws -> [[UInt8]] {
        try (Fixture.good + Fixture.bad).map { try $0.bytes() }
    }

    @Test("mutated, spliced and generated inputs: no crash, no hang, every rejection has a known code and a reason")
    func fuzzDecoder() throws {
        let seed = Self.seedFromEnvironment()
        let iterations = Self.environment("SLIPWAY_FUZZ_ITERATIONS").flatMap { Int($0) } ?? 20_000
        let first = Self.environment("SLIPWAY_FUZZ_FIRST").flatMap { Int($0) } ?? 0
        let artifacts = Self.environment("SLIPWAY_FUZZ_ARTIFACTS")
        let fuzzer = SlipFuzzer(seed: seed, corpus: try Self.corpus())
        #expect(fuzzer.trees.count >= Fixture.good.count, "every good fixture parses as a tree")
        print("fuzz: seed \(seed) (SLIPWAY_FUZZ_SEED), inputs \(first)..<\(first + iterations) (SLIPWAY_FUZZ_ITERATIONS)")

        var outcomes: [String: [FuzzOutcome: Int]] = [:]
        var failures: [FuzzFailure] = []
        var failureCount = 0
        var slowest = (seconds: 0.0, index: -1)
        var longestReason = 0
        var timeByStrategy: [String: Double] = [:]
        let clock = ContinuousClock()
        let start = clock.now
        for index in first..<(first + iterations) {
            let input = fuzzer.input(index)
            let strategy: String
            switch input {
            case .bytes(let name, _): strategy = name
            case .generated: strategy = "generated slip"
            }
            let before = clock.now
            let result = fuzzer.run(input, index: index)
            let elapsed = before.duration(to: clock.now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if seconds > slowest.seconds { slowest = (seconds, index) }
            timeByStrategy[strategy, default: 0] += seconds
            longestReason = max(longestReason, result.reasonLength)
            outcomes[strategy, default: [:]][result.outcome, default: 0] += 1
            if let failure = result.failure {
                failureCount += 1
                if failures.count < 20 { failures.append(failure) }
                if let artifacts {
                    try? FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
                    let bytes: [UInt8]
                    switch fuzzer.input(index) {
                    case .bytes(_, let body): bytes = body
                    case .generated(let slip): bytes = (try? fuzzer.codec.encode(slip)) ?? []
                    }
                    _ = FileManager.default.createFile(atPath: "\(artifacts)/input-\(seed)-\(index).json", contents: Data(bytes))
                }
            }
            if iterations >= 100_000, (index - first + 1) % 100_000 == 0 {
                print("fuzz: \(index - first + 1) inputs, \(failureCount) failures, \(start.duration(to: clock.now))")
            }
        }
        let total = start.duration(to: clock.now)
        let totalSeconds = Double(total.components.seconds) + Double(total.components.attoseconds) / 1e18

        var lines = ["fuzz: \(iterations) inputs in \(String(format: "%.1f", totalSeconds)) s (\(Int(Double(iterations) / max(totalSeconds, 1e-9))) inputs/s), seed \(seed), \(failureCount) failures"]
        var all: [FuzzOutcome: Int] = [:]
        for (strategy, counts) in outcomes.sorted(by: { $0.key < $1.key }) {
            let total = counts.values.reduce(0, +)
            lines.append("fuzz:   \(strategy): \(total) in \(String(format: "%.1f", timeByStrategy[strategy] ?? 0)) s — " + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            for (outcome, count) in counts { all[outcome, default: 0] += count }
        }
        lines.append("fuzz:   all: " + all.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        lines.append("fuzz:   slowest input #\(slowest.index): \(String(format: "%.4f", slowest.seconds)) s; longest rejection reason: \(longestReason) characters")
        print(lines.joined(separator: "\n"))

        for failure in failures { Issue.record("\(failure)") }
        #expect(failureCount == 0, "\(failureCount) inputs broke a property (seed \(seed)); replay one with SLIPWAY_FUZZ_FIRST=<index> SLIPWAY_FUZZ_ITERATIONS=1")
        // The run must see every kind of outcome, or the mutators have gone blind.
        #expect(iterations < 5_000 || all[.accepted, default: 0] > 0)
        #expect(iterations < 5_000 || all[.rejected("malformed"), default: 0] > 0)
        #expect(iterations < 5_000 || all[.rejected("invalid"), default: 0] > 0)
        #expect(iterations < 5_000 || all[.rejected("unsupported-version"), default: 0] > 0)
        #expect(iterations < 5_000 || all[.rejected("too-large"), default: 0] > 0)
    }

    @Test("the same seed gives the same inputs, another seed other inputs")
    func inputsAreReproducible() throws {
        let corpus = try Self.corpus()
        let a = SlipFuzzer(seed: 42, corpus: corpus), b = SlipFuzzer(seed: 42, corpus: corpus), c = SlipFuzzer(seed: 43, corpus: corpus)
        func bytes(_ fuzzer: SlipFuzzer, _ index: Int) -> [UInt8] {
            switch fuzzer.input(index) {
            case .bytes(_, let body): body
            case .generated(let slip): (try? fuzzer.codec.encode(slip)) ?? []
            }
        }
        var differ = 0
        for index in 0..<200 {
            #expect(bytes(a, index) == bytes(b, index))
            if bytes(a, index) != bytes(c, index) { differ += 1 }
        }
        #expect(differ > 150)
    }

    @Test("every fixture parses into the fuzzer's tree and prints back as JSON with the same meaning")
    func treeRoundTrip() throws {
        for fixture in Fixture.good {
            let bytes = try fixture.bytes()
            let tree = try #require(FuzzTreeParser.parse(bytes), "\(fixture.name)")
            let reprinted = [UInt8](tree.text.utf8)
            #expect(try SlipCodec().decode(reprinted) == SlipCodec().decode(bytes), "\(fixture.name)")
        }
    }

    /// A valid slip with `value` as the variable `deep`.
    static func slipText(variable value: String) -> String {
        #"{"formatVersion":1,"id":"deep","template":"t","createdAt":"2026-11-22T05:34:20.125Z","sequence":0,"attempt":1,"#
            + #""state":"running","itinerary":[{"step":"a","arguments":{}}],"log":[],"compensations":[],"variables":{"deep":"#
            + value + "}}"
    }

    @Test("nesting 10,000 deep is refused as malformed, with a reason", arguments: [0, 1, 2])
    func deepNestingIsRefused(kind: Int) throws {
        let fuzzer = SlipFuzzer(seed: 0, corpus: try Self.corpus())
        let deep = SlipFuzzer.nested(10_000, kind: kind)
        for body in [deep, Self.slipText(variable: deep)] {
            let refusal = rejection(of: body)
            #expect(refusal?.code == .malformed, "\(String(describing: refusal))")
            #expect(fuzzer.check([UInt8](body.utf8)).problem == nil)
        }
    }

    /// The codec allows `SlipCodec.maxNestingDepth` levels in all (Foundation's parser would take 512 and crash on
    /// one shape past it). Up to the limit, nesting in a free-form value must decode and round-trip; past it, it must
    /// be a rejection.
    @Test("nesting around the codec's depth limit: accepted and round-tripped up to it, refused past it",
          arguments: [10, SlipCodec.maxNestingDepth - 2, SlipCodec.maxNestingDepth - 1, 100, 509, 511, 512, 1_000])
    func nestingAroundTheLimit(depth: Int) throws {
        let fuzzer = SlipFuzzer(seed: 0, corpus: try Self.corpus())
        for kind in 0..<3 {
            let body = [UInt8](Self.slipText(variable: SlipFuzzer.nested(depth, kind: kind)).utf8)
            let result = fuzzer.check(body)
            #expect(result.problem == nil, "\(result.problem ?? "")")
            // The slip itself is one level and `variables` another.
            let limit = SlipCodec.maxNestingDepth
            if depth + 2 <= limit { #expect(result.outcome == .accepted, "depth \(depth) kind \(kind): \(result.outcome)") }
            if depth + 2 > limit { #expect(result.outcome == .rejected("malformed"), "depth \(depth) kind \(kind): \(result.outcome)") }
        }
    }

    /// Regression test for the first bug the fuzzer found (docs/fuzzing.md): a slip whose JSON is nested exactly 512
    /// levels deep (here: the slip, `variables`, and 510 levels in one variable) was accepted by `decode`, but
    /// `encode` threw "Unable to encode the given top-level value to JSON" for it: a processor would take the slip,
    /// run its step, and then fail to forward it. The codec now refuses it before parsing.
    @Test("a slip nested 512 deep (decodable, not encodable by Foundation) is refused", arguments: [0, 1, 2])
    func slipNested512DeepIsRefused(kind: Int) throws {
        let body = [UInt8](Self.slipText(variable: SlipFuzzer.nested(510, kind: kind)).utf8)
        #expect(SlipFuzzer.nestingDepth(body) == 512)
        #expect(rejection(of: body)?.code == .malformed)
    }

    /// Regression test for the crash the long run found (docs/fuzzing.md), minimised: 513 `[` and nothing else.
    /// `SlipCodec().decode` handed the body to `JSONDecoder`, whose scanner hit its depth limit at the last byte and
    /// trapped while computing the error's line and column: the whole process died (signal 4). Any client that could
    /// publish to a processor's queue could crash it with these 513 bytes, and the redelivered message crashed it
    /// again. The codec now counts nesting outside strings and refuses more than `SlipCodec.maxNestingDepth` levels
    /// before any parser sees the body.
    @Test("a body of 513 '[' (which crashed Foundation's parser) is refused as malformed before any parser sees it")
    func bodyNestedPastTheLimitAtItsEndDoesNotCrash() {
        for body in ["[" + String(repeating: "[", count: 512), #"{"formatVersion":1,"variables":"# + String(repeating: "[", count: 512)] {
            let bytes = [UInt8](body.utf8)
            #expect(rejection(of: bytes)?.code == .malformed)
        }
    }
}
