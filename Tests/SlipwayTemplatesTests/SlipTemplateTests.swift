import Foundation
import SlipwayCore
import SlipwayTemplates
import Testing

/// Templates (Slips/*.yaml): what a template says is what goes on the wire, with each value's type.
@Suite("Slip templates")
struct SlipTemplateTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static let typed = """
        template: typed
        variables:
          quantity: 1
          flag: true
          price: 2.5
          nothing: null
          code: "007"
          plainCode: 007
          country: NO
          tilde: ~
          when: 2026-11-22
          big: 9223372036854775807
          words: 'true'
          block: |
            42
          hex: 0x1F
          octal: 0o17
          plus: +3
          half: .5
          yes: yes
          thousand: 1_000
        itinerary:
          - step: a
            arguments:
              quantity: 1
              flag: false
              price: -2.5e-1
              nothing: null
              code: "007"
              list: [1, "2", 3.5, true, null]
              nested: { count: 3, label: "3" }
              whole: "${quantity}"
              inText: "x${quantity}-${flag}"
          - step: b
            arguments: {}
        """

    static func wire(_ slip: Slip) throws -> String {
        String(decoding: try SlipCodec().encode(slip), as: UTF8.self)
    }

    @Test("a loaded template's slip keeps every step's retry, timeoutMs and compensateTimeoutMs")
    func itineraryFieldsReachTheSlip() throws {
        let template = try SlipTemplate.parse(
            """
            template: fields
            itinerary:
              - step: a
                arguments: {}
                retry: { maxAttempts: 5, initialDelayMs: 100, multiplier: 1.5, maxDelayMs: 2000, jitter: 0 }
                timeoutMs: 10000
                compensateTimeoutMs: 20000
              - step: b
                arguments: {}
                retry: { maxAttempts: 2 }
              - step: c
                arguments: {}
            """)
        let slip = try template.makeSlip(values: [:])
        #expect(slip.itinerary[0] == ItineraryStep(
            step: "a", retry: RetryPolicy(maxAttempts: 5, initialDelayMs: 100, multiplier: 1.5, maxDelayMs: 2_000, jitter: 0),
            timeoutMs: 10_000, compensateTimeoutMs: 20_000))
        #expect(slip.itinerary[1].retry == RetryPolicy(maxAttempts: 2))
        #expect(slip.itinerary[2] == ItineraryStep(step: "c"))
        // And on the wire, as a processor reads it.
        let read = try SlipCodec().decode(try SlipCodec().encode(slip))
        #expect(read.itinerary == slip.itinerary)
    }

    @Test("Slips/order-fulfillment.yaml sends charge-card with its retry policy and timeout, and typed amounts")
    func exampleTemplate() throws {
        let template = try SlipTemplate.load(path: Self.repository.appendingPathComponent("Slips/order-fulfillment.yaml").path)
        let slip = try template.makeSlip(values: ["orderId": "A-1001"])
        for entry in template.itinerary {
            let sent = try #require(slip.itinerary.first { $0.step == entry.step })
            #expect(sent.retry == entry.retry && sent.timeoutMs == entry.timeoutMs
                && sent.compensateTimeoutMs == entry.compensateTimeoutMs, "\(entry.step)")
        }
        let charge = try #require(slip.itinerary.first { $0.step == "charge-card" })
        #expect(charge.retry?.maxAttempts == 5)
        #expect(charge.timeoutMs == 10_000)
        #expect(charge.arguments["amountCents"] == .int(4_999))
        #expect(slip.itinerary[0].arguments["quantity"] == .int(1))
        #expect(slip.variables["card"] == "4242-4242-4242-4242")
        #expect(slip.variables["address"] == "Hauptstrasse 1, 10115 Berlin")
    }

    @Test("YAML scalars keep their type: integers, floats, booleans and null; quoted text stays text")
    func valuesKeepTheirType() throws {
        let slip = try SlipTemplate.parse(Self.typed).makeSlip(values: [:])
        let variables = slip.variables
        #expect(variables["quantity"] == .int(1))
        #expect(variables["flag"] == .bool(true))
        #expect(variables["price"] == .double(2.5))
        #expect(variables["nothing"] == .null)
        #expect(variables["code"] == .string("007"))
        #expect(variables["plainCode"] == .int(7), "YAML 1.2: an unquoted 007 is the integer 7")
        #expect(variables["country"] == .string("NO"), "not YAML 1.1's false")
        #expect(variables["tilde"] == .null)
        #expect(variables["when"] == .string("2026-11-22"), "JSON has no dates")
        #expect(variables["big"] == .int(Int64.max))
        #expect(variables["words"] == .string("true"))
        #expect(variables["block"] == .string("42\n"))
        #expect(variables["hex"] == .int(31) && variables["octal"] == .int(15) && variables["plus"] == .int(3))
        #expect(variables["half"] == .double(0.5))
        #expect(variables["yes"] == .string("yes") && variables["thousand"] == .string("1_000"))

        let arguments = slip.itinerary[0].arguments
        #expect(arguments["quantity"] == .int(1))
        #expect(arguments["flag"] == .bool(false))
        #expect(arguments["price"] == .double(-0.25))
        #expect(arguments["nothing"] == .null)
        #expect(arguments["code"] == .string("007"))
        #expect(arguments["list"] == [1, "2", 3.5, true, nil])
        #expect(arguments["nested"] == ["count": 3, "label": "3"])
        #expect(arguments["whole"] == .int(1), "a variable that is the whole value keeps its type")
        #expect(arguments["inText"] == .string("x1-true"), "inside a longer string it is text")

        let wire = try Self.wire(slip)
        #expect(wire.contains(#""quantity":1,"#) && wire.contains(#""flag":false"#) && wire.contains(#""code":"007""#))
    }

    @Test("a --var value replaces a default and keeps its own type through ${name}")
    func givenValuesKeepTheirType() throws {
        let slip = try SlipTemplate.parse(Self.typed).makeSlip(values: ["quantity": .parsingScalar("2")])
        #expect(slip.itinerary[0].arguments["whole"] == .int(2))
        #expect(slip.itinerary[0].arguments["inText"] == .string("x2-true"))
    }

    @Test("a value JSON cannot hold, or a field of the wrong type, is refused with the line or the field", arguments: [
        ("template: t\nitinerary: [{step: a, arguments: {n: 99999999999999999999}}]", "line 2"),
        ("template: t\nitinerary: [{step: a, arguments: {n: .inf}}]", "not a JSON number"),
        ("template: t\ndeadlineSeconds: soon\nitinerary: [{step: a, arguments: {}}]", "'deadlineSeconds' must be an integer"),
        ("template: t\nitinerary: [{step: a, arguments: {}, timeoutMs: \"10\"}]", "'itinerary[0].timeoutMs' must be an integer"),
        ("template: t\nitinerary: [{step: a, arguments: {}, retry: {maxAttempt: 5}}]", "'maxAttempt'"),
        ("template: t\ndeadlineSecond: 5\nitinerary: [{step: a, arguments: {}}]", "unknown field 'deadlineSecond'"),
        ("", "empty"),
        ("- a\n- b\n", "mapping"),
    ])
    func refusals(_ yaml: String, _ expected: String) {
        #expect {
            _ = try SlipTemplate.parse(yaml, source: "t.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("t.yaml: ") && text.contains(expected) && !text.contains("Int")
                && !text.contains("Swift.")
        }
    }
}
