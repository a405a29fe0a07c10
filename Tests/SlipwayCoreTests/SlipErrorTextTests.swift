import Foundation
import Testing

@testable import SlipwayCore

/// The reasons a person reads when a slip is refused: in JSON's words, never a Swift type's, and saying where.
@Suite("Refusal reasons people read")
struct SlipErrorTextTests {
    /// Words that only a Swift programmer would understand.
    static let swiftWords = ["Dictionary<", "Array<", "Optional<", "Swift.", "String, Any", "DecodingError", "Int64"]

    static func reason(_ text: String) throws -> SlipRejection {
        try #require(rejection(of: text), "'\(text)' was accepted")
    }

    static func expectPlain(_ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for word in swiftWords {
            #expect(!reason.contains(word), "\"\(reason)\" names a Swift type", sourceLocation: sourceLocation)
        }
    }

    @Test("a JSON array is refused as 'the slip must be a JSON object, not an array'")
    func arrayIsNotASlip() throws {
        let refusal = try Self.reason(#"[{"formatVersion": 1}]"#)
        #expect(refusal.code == .malformed)
        #expect(refusal.reason == "the slip must be a JSON object, not an array")
        Self.expectPlain(refusal.reason)
    }

    @Test("a string, a number or null at the top is refused in the same words")
    func scalarsAreNotASlip() throws {
        #expect(try Self.reason(#""a slip""#).reason == "the slip must be a JSON object, not a string")
        #expect(try Self.reason("42").reason == "the slip must be a JSON object, not a number")
        Self.expectPlain(try Self.reason("null").reason)
    }

    @Test("invalid JSON says where it breaks: its line and column")
    func invalidJSONSaysWhere() throws {
        let refusal = try Self.reason("{\n  \"formatVersion\": 1,\n  \"id\": oops\n}")
        #expect(refusal.code == .malformed)
        #expect(refusal.reason.hasPrefix("the body is not valid JSON: "), "\(refusal.reason)")
        #expect(refusal.reason == "the body is not valid JSON: unexpected 'o' at line 3, column 9 (byte 32)")
        let cut = try Self.reason("{\"formatVersion\": 1,\n\"id\": \"s")
        #expect(cut.reason == "the body is not valid JSON: it ends before its JSON does (line 2, column 9)")
        Self.expectPlain(refusal.reason)
    }

    @Test("empty input is called empty")
    func emptyInput() throws {
        for body in ["", "   \n"] {
            let refusal = try Self.reason(body)
            #expect(refusal.code == .malformed)
            #expect(refusal.reason == "the body is empty")
            Self.expectPlain(refusal.reason)
        }
    }

    @Test("a string formatVersion is refused: it must be an integer")
    func stringFormatVersion() throws {
        let refusal = try Self.reason(#"{"formatVersion": "1", "id": "s-1"}"#)
        #expect(refusal.code == .unsupportedVersion)
        #expect(refusal.reason.contains("'formatVersion' must be an integer, not a string"), "\(refusal.reason)")
        #expect(try Self.reason(#"{"id": "s-1"}"#).reason.contains("has no 'formatVersion'"))
    }

    @Test("a field of the wrong type says what it must be, in JSON's words")
    func wrongFieldType() throws {
        let slip = String(
            decoding: try SlipCodec().encode(Slip(template: "t", itinerary: [ItineraryStep(step: "a")])), as: UTF8.self)
        let refusal = try Self.reason(slip.replacingOccurrences(of: #""sequence":0"#, with: #""sequence":"zero""#))
        #expect(refusal.reason == "'sequence' must be an integer, not a string", "\(refusal.reason)")
        let listed = try Self.reason(slip.replacingOccurrences(of: #""variables":{}"#, with: #""variables":[]"#))
        #expect(listed.reason.contains("'variables' must be a JSON object"), "\(listed.reason)")
        Self.expectPlain(listed.reason)
    }
}
