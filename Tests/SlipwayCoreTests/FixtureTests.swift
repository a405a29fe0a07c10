import Foundation
import Testing

@testable import SlipwayCore

/// The fixtures are the format's examples: `scripts/check-schema.py` checks the same files against
/// `docs/slip.schema.json`, so the Swift reader and the schema agree on them.
@Suite("Slip fixtures")
struct FixtureTests {
    @Test("there are fixtures to check: at least 5 good and 10 bad")
    func fixturesArePresent() {
        #expect(Fixture.good.count >= 5)
        #expect(Fixture.bad.count >= 10)
    }

    @Test("a good fixture decodes", arguments: Fixture.good)
    func goodFixtureDecodes(_ fixture: Fixture) throws {
        let body = try fixture.bytes()
        #expect(throws: Never.self) { try SlipCodec().decode(body) }
    }

    @Test("a good fixture survives re-encoding: decode, encode, decode gives the same slip", arguments: Fixture.good)
    func goodFixtureSurvivesReencoding(_ fixture: Fixture) throws {
        let codec = SlipCodec()
        let slip = try codec.decode(try fixture.bytes())
        #expect(try codec.decode(try codec.encode(slip)) == slip)
    }

    @Test("a bad fixture's name starts with the rejection code it expects", arguments: Fixture.bad)
    func badFixtureNamesItsCode(_ fixture: Fixture) {
        #expect(fixture.expectedCode != nil, "name it <code>-<what>.json, with code one of \(Fixture.codes)")
    }

    @Test("a bad fixture is refused with the code its name starts with and a reason", arguments: Fixture.bad)
    func badFixtureIsRefused(_ fixture: Fixture) throws {
        let code = try #require(fixture.expectedCode)
        let refusal = try #require(rejection(of: try fixture.bytes()), "\(fixture.name) was accepted")
        #expect(refusal.code == code, "\(refusal)")
        #expect(!refusal.reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    }

    @Test("a bad fixture's reason names what is wrong with it", arguments: Fixture.bad)
    func badFixtureReasonNamesTheField(_ fixture: Fixture) throws {
        let expectation = try #require(
            Self.reasons[fixture.name], "add \(fixture.name) to FixtureTests.reasons: what must its reason say?")
        let reason = try #require(rejection(of: try fixture.bytes())).reason
        switch expectation {
        case .anything:
            break
        case .mentions(let text):
            #expect(reason.contains(text), "the reason \"\(reason)\" does not mention \(text)")
        }
    }

    enum ReasonExpectation: Sendable {
        /// The reason must contain this text: the offending field, or the version.
        case mentions(String)
        /// Nothing to name: the body is not JSON, or not an object.
        case anything
    }

    /// What each bad fixture's reason must say. Every bad fixture must be listed.
    static let reasons: [String: ReasonExpectation] = [
        "malformed-not-json.json": .anything,
        "malformed-not-json-nan.json": .anything,
        "malformed-not-an-object.json": .anything,
        "malformed-unknown-field.json": .mentions("'priority'"),
        "malformed-wrong-type-sequence.json": .mentions("'sequence'"),
        "malformed-fractional-sequence.json": .mentions("'sequence'"),
        "malformed-unknown-state.json": .mentions("'state'"),
        "malformed-missing-itinerary.json": .mentions("'itinerary'"),
        "malformed-step-without-arguments.json": .mentions("'arguments'"),
        "malformed-fork-entry.json": .mentions("itinerary[0]"),
        "malformed-bad-timestamp.json": .mentions("'createdAt'"),
        "malformed-compensation-without-data.json": .mentions("'data'"),
        "malformed-log-entry-unknown-kind.json": .mentions("log[0].kind"),
        "malformed-number-out-of-range.json": .mentions("variables.x"),
        "unsupported-version-2.json": .mentions("version 2"),
        "unsupported-version-0.json": .mentions("version 0"),
        "unsupported-version-missing.json": .mentions("'formatVersion'"),
        "unsupported-version-string.json": .mentions("'formatVersion'"),
        "invalid-running-empty-itinerary.json": .mentions("itinerary"),
        "invalid-step-name-with-dot.json": .mentions("'itinerary[1].step'"),
        "invalid-compensating-without-fault.json": .mentions("'fault'"),
        "invalid-compensating-without-compensations.json": .mentions("compensation record"),
        "invalid-negative-sequence.json": .mentions("'sequence'"),
        "invalid-attempt-zero.json": .mentions("'attempt'"),
        "invalid-id-too-long.json": .mentions("'id'"),
        "invalid-id-trailing-newline.json": .mentions("'id'"),
        "invalid-template-with-space.json": .mentions("'template'"),
        "invalid-compensation-empty-address.json": .mentions("'compensations[0].address'"),
        "too-large-itinerary.json": .mentions("itinerary has 1001 steps"),
        "invalid-compensation-timeout-zero.json": .mentions("'compensations[0].timeoutMs'"),
        "invalid-compensate-timeout-over-a-day.json": .mentions("'itinerary[0].compensateTimeoutMs'"),
        "malformed-compensation-unknown-field.json": .mentions("'timeout'"),
    ]

    @Test("the large-number fixture keeps integers beyond 2^53 exact, doubles as doubles, and unicode as written")
    func unicodeAndIntegersFixture() throws {
        let slip = try SlipCodec().decode(try Fixture.named("unicode-nested-and-int64.json").bytes())
        let variables = slip.variables
        #expect(variables["int64Max"] == .int(Int64.max))
        #expect(variables["int64Min"] == .int(Int64.min))
        #expect(variables["twoTo53Plus1"] == .int(9_007_199_254_740_993))
        #expect(variables["tenth"] == .double(0.1))
        #expect(variables["small"] == .double(1.5e-7))
        #expect(variables["huge"] == .double(1e300))
        #expect(variables["nothing"] == .null)
        #expect(variables["größe"] == "XL")
        #expect(variables["🚀"] == "rocket")
        #expect(variables["text with spaces and\nnewline"] == "value")
        #expect(variables["customer"]?["address"]?["city"] == "Zürich")
        #expect(variables["matrix"] == [[1, 2], [3, 4]])

        let arguments = slip.itinerary[0].arguments
        #expect(arguments["title"] == "Crème brûlée für zwölf Personen")
        #expect(arguments["escapes"] == "tab\tquote\"backslash\\slash/é🚀")
        #expect(arguments["languages"] == ["日本語", "العربية", "Ελληνικά"])
        #expect(arguments["nested"]?["deeper"]?["deepest"] == [1, [2, [3, ["four": 4]]]])
        #expect(arguments["emptyObject"] == [:])
        #expect(arguments["emptyArray"] == [])

        // Written back, the integers keep every digit.
        let text = String(decoding: try SlipCodec().encode(slip), as: UTF8.self)
        #expect(text.contains("9223372036854775807"))
        #expect(text.contains("-9223372036854775808"))
        #expect(text.contains("9007199254740993"))
    }

    @Test("the compensating fixture's next hop is the undo of the newest record")
    func compensatingFixture() throws {
        let slip = try SlipCodec().decode(try Fixture.named("compensating.json").bytes())
        #expect(slip.state == .compensating)
        #expect(slip.nextHop?.kind == .compensate)
        #expect(slip.nextHop?.step == "reserve-stock")
        #expect(slip.fault?.step == "ship-order")
    }

    @Test("absent or null optional fields read as empty or none")
    func nullOptionalFields() throws {
        let slip = try SlipCodec().decode(try Fixture.named("optional-fields-null.json").bytes())
        #expect(slip.log.isEmpty && slip.compensations.isEmpty && slip.variables.isEmpty)
        #expect(slip.fault == nil && slip.deadline == nil)
        let minimal = try SlipCodec().decode(try Fixture.named("minimal-running.json").bytes())
        #expect(minimal.log.isEmpty && minimal.compensations.isEmpty && minimal.variables.isEmpty)
    }

    @Test("a step's retry, timeoutMs and compensateTimeoutMs, and a record's timeoutMs, read the same on both paths")
    func timeoutsFixture() throws {
        let codec = SlipCodec()
        let body = try Fixture.named("timeouts-and-retry.json").bytes()
        let slip = try codec.decode(body)
        #expect(slip == (try codec.decodeWithFoundation(Data(body))))
        let charge = slip.itinerary[0]
        #expect(charge.retry == RetryPolicy(maxAttempts: 5, initialDelayMs: 200, multiplier: 2, maxDelayMs: 5_000, jitter: 0.2))
        #expect(charge.timeoutMs == 10_000 && charge.compensateTimeoutMs == 30_000)
        #expect(slip.itinerary[1].retry?.maxAttempts == 2 && slip.itinerary[1].retry?.initialDelayMs == 200)
        #expect(slip.itinerary[1].timeoutMs == nil && slip.itinerary[1].compensateTimeoutMs == nil)
        #expect(slip.compensations[0].timeoutMs == 15_000)
        let written = String(decoding: try codec.encode(slip), as: UTF8.self)
        #expect(written.contains(#""compensateTimeoutMs":30000"#) && written.contains(#""sequence":0,"step":"reserve-stock","timeoutMs":15000"#))
    }

    @Test("a slip written before compensateTimeoutMs existed reads with no compensation timeouts")
    func oldSlipsHaveNoCompensationTimeouts() throws {
        let slip = try SlipCodec().decode(try Fixture.named("compensating.json").bytes())
        #expect(slip.compensations.allSatisfy { $0.timeoutMs == nil })
        #expect(slip.itinerary.allSatisfy { $0.compensateTimeoutMs == nil })
    }

    @Test("timestamps with an offset read as the same instant in UTC")
    func offsetTimestamps() throws {
        let slip = try SlipCodec().decode(try Fixture.named("offset-timestamps-and-null-reason.json").bytes())
        #expect(slip.createdAt == instant())  // 07:34:20+02:00
        #expect(slip.deadline == instant(plusMilliseconds: 500))  // 01:04:20.5-04:30
        #expect(slip.log[0].startedAt == instant(plusMilliseconds: 250))
        #expect(slip.log[0].reason == nil)
    }

    @Test("the example slip in docs/slip-format.md is the producer-example fixture, and is accepted")
    func documentedExample() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/slip-format.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        let marker = try #require(text.range(of: "<!-- example-slip -->"), "the example is marked in the docs")
        let start = try #require(text.range(of: "```json\n", range: marker.upperBound..<text.endIndex))
        let end = try #require(text.range(of: "```", range: start.upperBound..<text.endIndex))
        let example = try SlipCodec().decode([UInt8](text[start.upperBound..<end.lowerBound].utf8))
        let fixture = try SlipCodec().decode(try Fixture.named("producer-example.json").bytes())
        #expect(example == fixture)
    }
}
