import ExampleLedger
import Slipway
import SlipwayPostgres

/// Reserves the ordered articles in the warehouse; releases them on compensation.
/// Faults when there is not enough stock (the article `sold-out` has none).
struct ReserveStock: StepProcessor {
    let step = "reserve-stock"
    let ledger: Ledger

    func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome {
        await exampleStepDelay()
        guard let sku = hop.value("sku")?.stringValue, let quantity = hop.value("quantity")?.intValue else {
            return .faulted(reason: "the order names no 'sku' and 'quantity'")
        }
        switch try await ledger.reserve(key: hop.idempotencyKey, slipID: hop.slipID, sku: sku, quantity: Int(quantity)) {
        case .done(let id):
            return .completed(variables: ["reservationId": .string(id)], compensation: ["reservationId": .string(id)])
        case .refused(let reason):
            return .faulted(reason: reason)
        }
    }

    func compensate(_ hop: CompensateHop) async throws {
        guard let id = hop.data["reservationId"]?.stringValue else { throw ProcessorError("no reservationId to release") }
        try await ledger.release(reservationID: id)
    }
}

await ProcessorMain.run(ReserveStock(ledger: Ledger.openDefaultOrExit()), stores: [.sqlite, .postgres])
