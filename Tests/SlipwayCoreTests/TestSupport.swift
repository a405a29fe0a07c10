import Foundation
import Testing

@testable import SlipwayCore

/// A slip file under `Fixtures/good` or `Fixtures/bad`.
struct Fixture: Sendable, CustomTestStringConvertible {
    let name: String
    let url: URL

    var testDescription: String { name }

    func bytes() throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }

    /// The rejection code a bad fixture's name starts with: `invalid-attempt-zero.json` → `invalid`.
    var expectedCode: SlipRejection.Code? {
        Fixture.codes.first { name.hasPrefix($0.rawValue + "-") }
    }

    static let codes: [SlipRejection.Code] = [.malformed, .unsupportedVersion, .invalid, .tooLarge, .misrouted]

    static let good = load("good")
    static let bad = load("bad")

    static func named(_ name: String, in folder: String = "good") throws -> Fixture {
        try #require((folder == "good" ? good : bad).first { $0.name == name }, "no fixture \(folder)/\(name)")
    }

    private static func load(_ folder: String) -> [Fixture] {
        guard let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else { return [] }
        let directory = root.appendingPathComponent(folder, isDirectory: true)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map {
            Fixture(name: $0, url: directory.appendingPathComponent($0))
        }
    }
}

/// Decodes with the codec and returns its refusal, or nil when the body is accepted.
func rejection(of body: [UInt8], codec: SlipCodec = SlipCodec()) -> SlipRejection? {
    do {
        _ = try codec.decode(body)
        return nil
    } catch {
        return error
    }
}

func rejection(of text: String, codec: SlipCodec = SlipCodec()) -> SlipRejection? {
    rejection(of: [UInt8](text.utf8), codec: codec)
}

/// An instant on 2026-11-22 at 05:34:20 UTC plus `milliseconds`. Every whole millisecond survives a round trip
/// through the codec (`SlipCodecTests.wholeMillisecondsSurvive`, `timestampsDoNotDrift`).
func instant(plusMilliseconds milliseconds: Int = 0) -> Date {
    Date(timeIntervalSince1970: 1_795_325_660 + Double(milliseconds) / 1_000)
}

/// A new running slip of the example saga.
func orderSlip(id: String = "order-1001", steps: [String] = ["reserve-stock", "charge-card", "ship-order"]) -> Slip {
    Slip(
        id: id, template: "order-fulfillment", itinerary: steps.map { ItineraryStep(step: $0) },
        variables: ["orderId": "ord-1001"], createdAt: instant())
}

/// The log entry a processor writes for the slip's next hop.
func entry(for slip: Slip, _ outcome: HopOutcome, reason: String? = nil) -> LogEntry {
    let hop = slip.nextHop ?? (kind: .execute, step: slip.itinerary.first?.step ?? "none")
    return LogEntry(
        sequence: slip.sequence, step: hop.step, kind: hop.kind, outcome: outcome, attempt: slip.attempt,
        startedAt: instant(plusMilliseconds: 250), durationMicros: 1_500, processor: "test-host:1", reason: reason)
}

extension Slip {
    /// Completes the step at the itinerary's head the way the runtime does.
    mutating func complete(returning data: JSONValue?, variables: [String: JSONValue] = [:], removing: [String] = []) {
        let step = itinerary[0].step
        completeStep(
            compensationData: data, compensateAddress: Topology().compensateQueue(step: step), variableUpdates: variables,
            removedVariables: removing, entry: entry(for: self, .completed))
    }
}
