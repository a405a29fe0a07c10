import Foundation
import Testing

@testable import SlipwayCore

@Suite("JSON values")
struct JSONValueTests {
    func roundTrip(_ value: JSONValue) throws -> JSONValue {
        let data = try SlipCodec.makeEncoder().encode([value])
        return try SlipCodec.makeDecoder().decode([JSONValue].self, from: data)[0]
    }

    func decode(_ text: String) throws -> JSONValue {
        try SlipCodec.makeDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    @Test("integers stay integers, exactly, up to Int64's bounds", arguments: [
        Int64.max, Int64.min, 9_007_199_254_740_993, -9_007_199_254_740_993, 0, -1, 42,
    ])
    func integersStayIntegers(_ value: Int64) throws {
        #expect(try roundTrip(.int(value)) == .int(value))
    }

    @Test("a number written without a fraction is read as an integer")
    func integersFromText() throws {
        #expect(try decode("9223372036854775807") == .int(Int64.max))
        #expect(try decode("-9223372036854775808") == .int(Int64.min))
        #expect(try decode("9007199254740993") == .int(9_007_199_254_740_993))
    }

    @Test("fractional numbers stay doubles", arguments: [1.5, 0.1, -2.5e-8, 1e300, -0.125])
    func doublesStayDoubles(_ value: Double) throws {
        #expect(try roundTrip(.double(value)) == .double(value))
    }

    @Test("a whole-valued double comes back as an integer: JSON writes 2.0 as 2")
    func wholeDoubles() throws {
        #expect(try roundTrip(.double(2.0)) == .int(2))
        #expect(try decode("2.0") == .int(2))
    }

    @Test("booleans, null, strings, arrays and objects keep their kind and nesting")
    func structures() throws {
        let value: JSONValue = [
            "yes": true, "no": false, "nothing": nil, "text": "Zoë 🚀", "one": "1", "list": [1, "two", 3.5, nil, [false]],
            "nested": ["deeper": ["deepest": [:]]], "empty": [],
        ]
        #expect(try roundTrip(value) == value)
        #expect(try decode("true") == .bool(true))
        #expect(try decode("1") == .int(1))
        #expect(try decode("\"1\"") == .string("1"))
    }

    @Test("a command-line value is read as a number, boolean or null when it is one, a string otherwise", arguments: [
        ("true", JSONValue.bool(true)), ("false", .bool(false)), ("null", .null),
        ("42", .int(42)), ("-7", .int(-7)), ("9223372036854775807", .int(Int64.max)),
        ("3.25", .double(3.25)), ("-0.5", .double(-0.5)),
        ("9223372036854775808", .string("9223372036854775808")), ("1e3", .string("1e3")),
        ("True", .string("True")), ("abc", .string("abc")), ("", .string("")), ("1.2.3", .string("1.2.3")),
        (" 42", .string(" 42")), ("nan", .string("nan")), ("007", .int(7)),
    ])
    func parsingScalar(_ text: String, _ expected: JSONValue) {
        #expect(JSONValue.parsingScalar(text) == expected)
    }

    @Test("intValue reads integers, whole doubles and integer strings, and nothing else")
    func intValue() {
        #expect(JSONValue.int(5).intValue == 5)
        #expect(JSONValue.double(3.0).intValue == 3)
        #expect(JSONValue.double(2.5).intValue == nil)
        #expect(JSONValue.string("12").intValue == 12)
        #expect(JSONValue.string("twelve").intValue == nil)
        #expect(JSONValue.bool(true).intValue == nil)
    }

    @Test("scalarText reads an id the same whether it came as a string or a number, and refuses containers")
    func scalarText() {
        #expect(JSONValue.string("A-1001").scalarText == "A-1001")
        #expect(JSONValue.int(1001).scalarText == "1001")
        #expect(JSONValue.double(1001.0).scalarText == "1001")
        #expect(JSONValue.double(2.5).scalarText == "2.5")
        #expect(JSONValue.bool(true).scalarText == "true")
        #expect(JSONValue.null.scalarText == nil)
        #expect(JSONValue.array([1]).scalarText == nil)
        #expect(JSONValue.object(["a": 1]).scalarText == nil)
    }

    @Test("boolValue, stringValue and the key subscript read what they name")
    func accessors() {
        #expect(JSONValue.string("true").boolValue == true)
        #expect(JSONValue.bool(false).boolValue == false)
        #expect(JSONValue.int(1).boolValue == nil)
        #expect(JSONValue.string("x").stringValue == "x")
        #expect(JSONValue.int(1).stringValue == nil)
        let object: JSONValue = ["a": ["b": 1]]
        #expect(object["a"]?["b"] == 1)
        #expect(object["missing"] == nil)
        #expect(JSONValue.int(1)["a"] == nil)
    }
}
