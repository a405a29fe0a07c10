import ExampleLedger
import Slipway
import SlipwayPostgres

/// Charges the customer's card; refunds the charge on compensation.
/// Faults when the issuer declines the card (the test card 4000-0000-0000-0002 is always declined).
struct ChargeCard: StepProcessor {
    let step = "charge-card"
    let ledger: Ledger

    func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome {
        await exampleStepDelay()
        guard let card = hop.value("card")?.stringValue, let amount = hop.value("amountCents")?.intValue else {
            return .faulted(reason: "the order names no 'card' and 'amountCents'")
        }
        switch try await ledger.charge(key: hop.idempotencyKey, slipID: hop.slipID, card: card, amountCents: Int(amount)) {
        case .done(let id):
            return .completed(variables: ["chargeId": .string(id)], compensation: ["chargeId": .string(id)])
        case .refused(let reason):
            return .faulted(reason: reason)
        }
    }

    func compensate(_ hop: CompensateHop) async throws {
        guard let id = hop.data["chargeId"]?.stringValue else { throw ProcessorError("no chargeId to refund") }
        try await ledger.refund(chargeID: id)
    }
}

await ProcessorMain.run(ChargeCard(ledger: Ledger.openDefaultOrExit()), stores: [.sqlite, .postgres])
