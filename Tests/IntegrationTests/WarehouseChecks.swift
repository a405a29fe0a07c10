import ExampleLedger
import Foundation

/// The warehouse of the example saga: reserve-stock, an inbox step, keeps its stock and reservations in its hop record
/// file in the fleet's state directory, not in the ledger.
extension SagaFleet {
    var warehouseFile: String { Warehouse.file(stateDirectory: directory.appendingPathComponent("state").path) }

    func reservations(slipID: String) async throws -> Warehouse.Reservations {
        try await Warehouse.reservations(slipID: slipID, file: warehouseFile)
    }

    func available(sku: String) async throws -> Int? {
        try await Warehouse.available(sku: sku, file: warehouseFile)
    }
}

extension Warehouse.Reservations {
    /// One reservation, in force.
    static let held = Self(made: 1, releases: 0, inForce: 1)
    /// One reservation, released once.
    static let released = Self(made: 1, releases: 1, inForce: 0)
}
