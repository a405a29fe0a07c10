import Foundation
import Hummingbird
import Logging
import Slipway

/// `POST /orders` places an order (201 with its slip id; 200 if the same order was placed before; 409 if that
/// orderId was placed with other content); `GET /orders/{id}` shows it (404 if unknown). Bad input is a 400 (not
/// JSON, or not an order) or a 422 (an order with a field out of range), with `{"error": "..."}`.
struct OrderRoutes: Sendable {
    let store: OrderStore
    let logger: Logger

    func add(to router: Router<BasicRequestContext>) {
        router.post("orders") { request, _ in try await place(request) }
        router.get("orders/:id") { _, context in
            let id = try context.parameters.require("id")
            guard let reply = try await store.find(id) else { return Self.json(.notFound, error: "no order \(id)") }
            return Self.json(.ok, reply)
        }
    }

    private func place(_ request: Request) async throws -> Response {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 64 * 1024)
        } catch {
            return Self.json(.contentTooLarge, error: "an order is at most 64 KiB of JSON")
        }
        let order: Order
        do {
            order = try JSONDecoder().decode(Order.self, from: Data(body.readableBytesView))
        } catch {
            return Self.json(.badRequest, error: Self.describe(error))
        }
        if let problem = order.problem { return Self.json(.unprocessableContent, error: problem) }
        do {
            switch try await store.place(order) {
            case .created(let reply):
                logger.info("order \(order.orderId) placed, slip \(reply.slipId)")
                return Self.json(.created, reply)
            case .existing(let reply):
                return Self.json(.ok, reply)
            case .conflict(let reply):
                return Self.json(.conflict, error: "order \(reply.order.orderId) was placed with other content")
            }
        } catch let rejection as SlipRejection {
            return Self.json(.unprocessableContent, error: "the order's slip is refused: \(rejection.reason)")
        }
    }

    /// Why a body is not an order, in the client's terms.
    static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, _)?: "the order has no '\(key.stringValue)'"
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?:
            "'\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type (quantity is a number, the rest strings)"
        default: "the body is not a JSON object"
        }
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data + Data("\n".utf8))))
    }

    static func json(_ status: HTTPResponse.Status, error: String) -> Response {
        json(status, ["error": error])
    }
}
