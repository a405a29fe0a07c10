import ExampleLedger
import Slipway
import SlipwayPostgres

/// Emails the customer that the order is on its way. Nothing to undo (an email cannot be unsent), so it leaves no
/// compensation record. Faults when the address is not an email address, which walks back the whole order.
struct NotifyCustomer: StepProcessor {
    let step = "notify-customer"
    let ledger: Ledger

    func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome {
        await exampleStepDelay()
        guard let email = hop.value("email")?.stringValue else { return .faulted(reason: "the order names no 'email'") }
        let order = hop.value("orderId")?.scalarText ?? hop.slipID  // "A-1001", or 1001 from --var orderId=1001
        switch try await ledger.notify(
            key: hop.idempotencyKey, slipID: hop.slipID, email: email, message: "Order \(order) is on its way.")
        {
        case .done: return .completed(variables: ["notified": true])
        case .refused(let reason): return .faulted(reason: reason)
        }
    }
}

await ProcessorMain.run(NotifyCustomer(ledger: Ledger.openDefaultOrExit()), stores: [.sqlite, .postgres])
