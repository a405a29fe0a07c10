import Foundation
import GRDB
import Slipway
import SlipwayOutbox
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The example order API (Processors/order-api) as a process beside the saga's four processors: an order POSTed to
/// it runs through them to the end, a repeated POST starts no second slip, and bad input is refused with a 4xx.
@Suite("the order API: orders through the outbox, processors as processes", .serialized)
struct OrderAPITests {
    /// The port the API reports in its log once it listens (it is started with `--port 0`).
    static func port(_ fleet: SagaFleet) async throws -> Int {
        for _ in 0..<300 {
            let log = fleet.log("order-api")
            if let range = log.range(of: #"listening on http://127\.0\.0\.1:\d+"#, options: .regularExpression),
                let port = Int(log[range].split(separator: ":").last ?? "")
            {
                return port
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError("order-api did not report its port:\n\(fleet.log("order-api"))")
    }

    /// One request; its status and JSON body.
    static func request(
        _ method: String, _ port: Int, _ path: String, body: String? = nil
    ) async throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.httpBody = body.map { Data($0.utf8) }
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let (data, response) = try await URLSession.shared.data(for: request)
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, json)
    }

    static let order = #"{"orderId":"T-100","sku":"gadget","quantity":2,"card":"4242-4242-4242-4242","country":"DE","email":"t@example.com"}"#

    @Test("a POSTed order completes through the processors; a repeat starts no second slip; bad input is a 4xx")
    func orderThroughTheOutbox() async throws {
        let fleet = try SagaFleet(name: "orderapi")
        defer { fleet.stopAll() }
        try fleet.startAll()
        let database = fleet.directory.appendingPathComponent("orders.sqlite").path
        try fleet.start(
            "order-api", executable: "order-api",
            arguments: ["--db", database, "--port", "0", "--template", Producer.templatePath])
        let port = try await Self.port(fleet)
        let producer = try Producer(fleet: fleet)
        let follower = try await SlipEventFollower.terminalEvents(
            of: ["order-T-100"], transport: producer.transport, topology: producer.topology)
        defer { follower.stop() }

        let placed = try await Self.request("POST", port, "/orders", body: Self.order)
        #expect(placed.status == 201)
        #expect(placed.json["slipId"] as? String == "order-T-100")
        let events = try await producer.collect(follower, count: 1, timeout: .seconds(60))
        #expect(events["order-T-100"]?.state == .completed)
        #expect(try await fleet.ledger.journal(slipID: "order-T-100") == ["charge", "ship", "notify"])

        // The same order again: the one already placed, and no second slip anywhere.
        let again = try await Self.request("POST", port, "/orders", body: Self.order)
        #expect(again.status == 200)
        #expect(again.json["slipId"] as? String == "order-T-100")
        let slips = try OutboxInspector(path: database).entries(includingSent: true)
        #expect(slips.map(\.slipID) == ["order-T-100"])
        let orders = try await DatabaseQueue(path: database).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM orders") }
        #expect(orders == 1)
        let extra = await follower.next(timeout: .seconds(3))
        #expect(extra == nil, "a second end: \(String(describing: extra))")
        #expect(try await fleet.ledger.journal(slipID: "order-T-100") == ["charge", "ship", "notify"])

        let shown = try await Self.request("GET", port, "/orders/T-100")
        #expect(shown.status == 200)
        #expect(shown.json["slipId"] as? String == "order-T-100")
        #expect(try await Self.request("GET", port, "/orders/T-999").status == 404)

        // Bad input: not JSON, not an order, a field out of range, the same orderId with other content.
        let notJSON = try await Self.request("POST", port, "/orders", body: #"{"orderId": "T-101", "#)
        #expect(notJSON.status == 400)
        #expect((notJSON.json["error"] as? String)?.isEmpty == false)
        #expect(try await Self.request("POST", port, "/orders", body: #"{"orderId":"T-102"}"#).status == 400)
        let badCountry = Self.order.replacingOccurrences(of: "T-100", with: "T-103")
            .replacingOccurrences(of: #""DE""#, with: #""Germany""#)
        #expect(try await Self.request("POST", port, "/orders", body: badCountry).status == 422)
        let changed = Self.order.replacingOccurrences(of: #""quantity":2"#, with: #""quantity":3"#)
        #expect(try await Self.request("POST", port, "/orders", body: changed).status == 409)
        #expect(try OutboxInspector(path: database).entries(includingSent: true).count == 1)

        // SIGTERM stops the server and the relay gracefully.
        #expect(await fleet.stop("order-api") == 0)
    }
}
