import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One POST of an order to the example order API, as a client sees it.
enum OrderPost {
    enum Answer: Equatable {
        /// An HTTP status: 201 (placed), 200 (placed before), or a refusal.
        case status(Int)
        /// Nothing came back: the API was down (refused), or died with the request (the order may or may not have
        /// committed: a client asks again with the same orderId).
        case noAnswer
    }

    static func send(_ order: [String: String], quantity: Int, port: Int) async -> Answer {
        var body: [String: AnyEncodable] = order.mapValues(AnyEncodable.string)
        body["quantity"] = .int(quantity)
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/orders")!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try? JSONEncoder().encode(body)
        request.timeoutInterval = 10
        do {
            let (_, response) = try await URLSession.shared.data(for: request)
            return (response as? HTTPURLResponse).map { .status($0.statusCode) } ?? .noAnswer
        } catch {
            return .noAnswer
        }
    }

    enum AnyEncodable: Encodable {
        case string(String)
        case int(Int)

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .string(let text): try container.encode(text)
            case .int(let number): try container.encode(number)
            }
        }
    }
}

/// A TCP port on loopback that nothing listens on now, for the order API (kept across its restarts).
func freeLoopbackPort() throws -> Int {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw ChaosError("cannot open a socket to find a free port") }
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(socket, pointer, length) == 0 && getsockname(socket, pointer, &length) == 0
        }
    }
    guard bound else { throw ChaosError("cannot bind a socket to find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
