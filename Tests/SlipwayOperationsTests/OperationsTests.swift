import Foundation
import Slipway
import SlipwayOperations
import Testing

/// The parts of the operator's commands that decide without a broker: which parked message an id names, what a
/// replay sends, the RabbitMQ users' script, the addresses of a cluster's nodes.
@Suite("Operations: parked ids, replays, the users' script, broker addresses")
struct OperationsTests {
    struct NoAcks: DeliveryAcknowledger {
        func ack(_ tag: UInt64) async {}
        func release(_ tag: UInt64) async {}
    }

    func parked(_ headers: [String: String], body: String = "{}", messageID: String? = nil) -> Delivery {
        Delivery(
            body: Array(body.utf8), headers: headers, messageID: messageID, routingKey: "slipway.dead-letters",
            acknowledger: NoAcks(), tag: 1)
    }

    @Test("an id names the message it equals, else the one it starts (4 characters at least); otherwise it says why")
    func match() {
        let ids = ["3f2a9c10-aaaa", "3f2a77b1-bbbb", "9d01e2c3-cccc"]
        #expect(DeadLetterScan.match("9d01e2c3-cccc", in: ids) == .one(2))
        #expect(DeadLetterScan.match("9d01", in: ids) == .one(2))
        #expect(DeadLetterScan.match("9d0", in: ids) == .nothing, "under 4 characters only an exact id counts")
        #expect(DeadLetterScan.match("3f2a", in: ids) == .several(["3f2a77b1-bbbb", "3f2a9c10-aaaa"]))
        #expect(DeadLetterScan.match("ffff", in: ids) == .nothing)
        // Messages parked by older versions carry only a message id, which several may share.
        #expect(DeadLetterScan.match("s-1.parked", in: ["s-1.parked", "s-1.parked"]) == .several(["s-1.parked", "s-1.parked"]))
    }

    @Test("a message's parked id is its header, else its message id, else a dash")
    func parkedID() {
        #expect(DeadLetterScan.parkedID(of: parked([ParkedHeaders.parkedID: "p-1"], messageID: "m-1")) == "p-1")
        #expect(DeadLetterScan.parkedID(of: parked([:], messageID: "m-1")) == "m-1")
        #expect(DeadLetterScan.parkedID(of: parked([:])) == "-")
    }

    @Test("a replay sends each body back to its queue byte for byte with its signature; one with no queue is skipped")
    func replay() throws {
        let body = #"{"id":"s-1","formatVersion":1}"#
        let signed = parked(
            [
                ParkedHeaders.parkedID: "p-1", ParkedHeaders.originalQueue: "slipway.charge.compensate",
                ParkedHeaders.slipID: "s-1", ParkedHeaders.reasonCode: "compensation-failed",
                SigningKeys.keyIDHeader: "k1", SigningKeys.signatureHeader: "sig",
            ], body: body)
        let nowhere = parked([ParkedHeaders.parkedID: "p-2"])
        let plan = ReplayPlan([signed, nowhere])
        #expect(plan.skipped.count == 1 && plan.skipped[0].headers[ParkedHeaders.parkedID] == "p-2")
        let message = try #require(plan.replayable.first?.message)
        #expect(plan.replayable.count == 1)
        #expect(message.routingKey == "slipway.charge.compensate" && message.exchange.isEmpty)
        #expect(message.body == Array(body.utf8))
        #expect(message.headers == [SigningKeys.keyIDHeader: "k1", SigningKeys.signatureHeader: "sig"],
            "the parking headers stay behind; the signature goes with the bytes it signs")
        #expect(message.messageID == "s-1.replayed.p-1" && message.correlationID == "s-1")
        #expect(message.contentType == SlipCodec.contentType)
    }

    @Test("a parked message's summary names its slip, from the header or, for older parks, from its body")
    func summary() {
        let named = ParkedMessage(parked([ParkedHeaders.slipID: "s-1", ParkedHeaders.reasonCode: "misrouted"]))
        #expect(named.slipId == "s-1" && named.reasonCode == "misrouted" && named.size == 2)
        let older = ParkedMessage(parked([:], body: #"{"id":"s-9","formatVersion":"x"}"#))
        #expect(older.slipId == "s-9")
    }

    @Test("the users' script gives each step's processors their own user, reads passwords from files, and quotes names")
    func script() {
        let plan = AccessPlan(topology: Topology(prefix: "shop"), steps: ["charge", "ship"], vhost: "/")
        #expect(plan.users.map(\.name) == ["shop.step.charge", "shop.step.ship", "shop.audit-sink", "shop.producer", "shop.operator"])
        let script = plan.script(node: "rabbit@host", passwordDir: "/run/secrets")
        #expect(script.contains("rabbitmqctl -n 'rabbit@host' add_user 'shop.step.charge' < '/run/secrets'/'shop.step.charge'"))
        #expect(!script.contains("$PASSWORD_DIR"))
        let charge = plan.users[0].permissions
        #expect(script.contains("set_permissions -p '/' 'shop.step.charge'"))
        #expect(charge.read.contains("charge") && !charge.read.contains("ship"), "\(charge.read)")
        let withoutDirectory = plan.script(node: "rabbit@host", passwordDir: nil)
        #expect(withoutDirectory.contains(#": "${PASSWORD_DIR:?"#))
    }

    @Test("a cluster's URL list gives each node's address, with the AMQP port by default; a wrong URL says so")
    func addresses() throws {
        let nodes = try BrokerAddress.list("amqp://u:p@10.0.0.1:5673/,amqp://u:p@10.0.0.2/")
        #expect(nodes.map(\.description) == ["10.0.0.1:5673", "10.0.0.2:5672"])
        #expect(try BrokerAddress(url: "amqp://[::1]:5680/").description == "[::1]:5680")
        let error = #expect(throws: OperationsError.self) { try BrokerAddress(url: "http://10.0.0.1/") }
        #expect(error?.code == .invalidBrokerURL)
    }
}
