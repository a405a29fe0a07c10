import ExampleLedger
import Foundation
import Slipway
import SlipwayTemplates

/// How an order of the example saga is meant to end, decided by its input (see Processors/ and ExampleLedger).
enum Fate: String, Sendable, Codable, CaseIterable {
    /// Every step completes.
    case completes
    /// Nothing in stock: reserve-stock faults; no step completed, so nothing to undo and the slip ends faulted.
    case soldOut = "sold-out"
    /// The card is declined: charge-card faults; the stock is released.
    case cardDeclined = "card-declined"
    /// No carrier to that country: ship-order faults; the charge is refunded, the stock released.
    case unshippable
    /// Not an email address: notify-customer faults; the shipment is cancelled, the charge refunded, the stock released.
    case badEmail = "bad-email"

    var expectedState: SlipState {
        switch self {
        case .completes: .completed
        case .soldOut: .faulted
        case .cardDeclined, .unshippable, .badEmail: .compensated
        }
    }

    /// The template variables that make an order take this path.
    var values: [String: JSONValue] {
        switch self {
        case .completes: [:]
        case .soldOut: ["sku": "sold-out"]
        case .cardDeclined: ["card": .string(Ledger.declinedCard)]
        case .unshippable: ["country": "AQ"]
        case .badEmail: ["email": "nobody"]
        }
    }
}

/// One slip of the run and the end its input calls for.
struct Order: Sendable, Codable {
    var slipID: String
    var fate: Fate
}

enum OrderMix {
    /// `count` orders from the template: a share `compensating` of them fail at one of the four steps (evenly), the
    /// rest complete. Quantities and articles vary; the seed decides everything.
    /// Orders for which `viaAPI` is true go in through the example order API: their slip ids are the API's.
    static func make(
        count: Int, compensating: Double, template: SlipTemplate, random: inout SplitMix64,
        viaAPI: (Int) -> Bool = { _ in false }
    ) throws -> [(slip: Slip, order: Order)] {
        let failing: [Fate] = [.soldOut, .cardDeclined, .unshippable, .badEmail]
        let articles = ["widget", "gadget", "gizmo"]
        return try (0..<count).map { index in
            let fate = Double.random(in: 0..<1, using: &random) < compensating
                ? failing[Int.random(in: 0..<failing.count, using: &random)] : .completes
            var values: [String: JSONValue] = [
                "orderId": .string("C-\(index + 1)"),
                "sku": .string(articles[Int.random(in: 0..<articles.count, using: &random)]),
                "quantity": .int(Int64.random(in: 1...3, using: &random)),
                "amountCents": .int(Int64.random(in: 100...20_000, using: &random)),
            ]
            values.merge(fate.values) { _, forced in forced }
            let slip = try template.makeSlip(
                values: values, id: viaAPI(index) ? ProducerRecord.slipID(order: "C-\(index + 1)") : Slip.newID())
            return (slip, Order(slipID: slip.id, fate: fate))
        }
    }
}
