import ExampleLedger
import Slipway
import SlipwayPostgres

/// Books the shipment with the carrier; cancels the booking on compensation.
/// Faults when the carrier does not ship to the order's country (it ships to DE FR NL BE GB US CA ES IT).
struct ShipOrder: StepProcessor {
    let step = "ship-order"
    let ledger: Ledger

    func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome {
        await exampleStepDelay()
        guard let country = hop.value("country")?.stringValue else { return .faulted(reason: "the order names no 'country'") }
        let address = hop.value("address")?.stringValue ?? ""
        switch try await ledger.book(key: hop.idempotencyKey, slipID: hop.slipID, country: country, address: address) {
        case .done(let id):
            return .completed(variables: ["shipmentId": .string(id)], compensation: ["shipmentId": .string(id)])
        case .refused(let reason):
            return .faulted(reason: reason)
        }
    }

    func compensate(_ hop: CompensateHop) async throws {
        guard let id = hop.data["shipmentId"]?.stringValue else { throw ProcessorError("no shipmentId to cancel") }
        try await ledger.cancel(shipmentID: id)
    }
}

await ProcessorMain.run(ShipOrder(ledger: Ledger.openDefaultOrExit()), stores: [.sqlite, .postgres])
