import Foundation
import Testing

@testable import SlipwayCore

@Suite("Size limits")
struct SlipLimitsTests {
    @Test("a body over maxMessageBytes is refused as too-large before it is even parsed")
    func bodyTooLarge() throws {
        let codec = SlipCodec(limits: SlipLimits(maxMessageBytes: 100))
        let refusal = try #require(rejection(of: [UInt8](repeating: UInt8(ascii: "x"), count: 101), codec: codec))
        #expect(refusal.code == .tooLarge)
        #expect(refusal.reason.contains("101") && refusal.reason.contains("100"))
    }

    @Test("a slip over maxMessageBytes is refused as too-large; at exactly the limit it is read")
    func slipAtAndOverTheLimit() throws {
        let body = try SlipCodec().encode(orderSlip())
        let atLimit = SlipCodec(limits: SlipLimits(maxMessageBytes: body.count))
        #expect(throws: Never.self) { try atLimit.decode(body) }
        let belowLimit = SlipCodec(limits: SlipLimits(maxMessageBytes: body.count - 1))
        #expect(rejection(of: body, codec: belowLimit)?.code == .tooLarge)
    }

    @Test("an itinerary over maxItinerarySteps is refused as too-large; at exactly the limit it is read")
    func itineraryTooLong() throws {
        let codec = SlipCodec(limits: SlipLimits(maxItinerarySteps: 3))
        let three = try SlipCodec().encode(orderSlip(steps: ["a", "b", "c"]))
        #expect(throws: Never.self) { try codec.decode(three) }

        let four = try SlipCodec().encode(orderSlip(steps: ["a", "b", "c", "d"]))
        let refusal = try #require(rejection(of: four, codec: codec))
        #expect(refusal.code == .tooLarge)
        #expect(refusal.reason.contains("4 steps") && refusal.reason.contains("limit is 3"))
    }

    @Test("validate applies the itinerary limit it is given")
    func validateAppliesTheLimit() {
        let slip = orderSlip(steps: ["a", "b", "c", "d"])
        #expect(throws: SlipRejection(.tooLarge, "the itinerary has 4 steps; the limit is 2")) {
            try slip.validate(limits: SlipLimits(maxItinerarySteps: 2))
        }
        #expect(throws: Never.self) { try slip.validate() }
    }

    @Test("the default limits are 1 MiB and 1000 steps")
    func defaults() {
        #expect(SlipLimits().maxMessageBytes == 1_048_576)
        #expect(SlipLimits().maxItinerarySteps == 1_000)
    }

    @Test("variables over maxVariablesBytes are refused as too-large; the size counts about as JSON text would")
    func variablesLimit() throws {
        var slip = orderSlip()
        slip.variables = ["note": .string(String(repeating: "x", count: 2_000))]
        #expect(JSONValue.object(slip.variables).approximateJSONBytes >= 2_000)
        do {
            try slip.validate(limits: SlipLimits(maxVariablesBytes: 1_000))
            Issue.record("2 kB of variables passed a 1 kB limit")
        } catch {
            #expect(error.code == .tooLarge && error.reason.contains("variables"))
        }
        #expect(throws: Never.self) { try slip.validate(limits: SlipLimits(maxVariablesBytes: 4_000)) }
        #expect(SlipLimits().maxVariablesBytes == 256 * 1_024)
    }
}
