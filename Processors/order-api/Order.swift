import Foundation
import Slipway

/// An order as the API takes and shows it: the variables of Slips/order-fulfillment.yaml that a customer chooses.
struct Order: Codable, Equatable, Sendable {
    var orderId: String
    var sku: String
    var quantity: Int
    var card: String
    var country: String
    var email: String

    /// The slip of an order has an id made from the order's: a second POST of the order cannot start a second slip,
    /// and the outbox's key (the slip id) holds even if the order's own check were bypassed.
    var slipID: String { "order-\(orderId)" }

    /// What is wrong with the order, in words, or nil.
    var problem: String? {
        if orderId.utf8.count > 58 || !Slip.isValidName(orderId) {
            return "orderId must be 1 to 58 characters of A-Z a-z 0-9 _ -"
        }
        if sku.isEmpty || sku.utf8.count > 64 { return "sku must be 1 to 64 characters" }
        if !(1...1_000).contains(quantity) { return "quantity must be 1 to 1000" }
        if card.isEmpty || card.utf8.count > 32 { return "card must be 1 to 32 characters" }
        if country.utf8.count != 2 || !country.allSatisfy(\.isLetter) { return "country must be a two-letter code" }
        if email.isEmpty || email.utf8.count > 254 { return "email must be 1 to 254 characters" }
        return nil
    }

    /// The template's variables for this order.
    var variables: [String: JSONValue] {
        [
            "orderId": .string(orderId), "sku": .string(sku), "quantity": .int(Int64(quantity)), "card": .string(card),
            "country": .string(country), "email": .string(email),
        ]
    }
}

/// What the API answers for an order: the order and the id of the slip it started.
struct OrderReply: Codable, Sendable {
    var order: Order
    var slipId: String
}
