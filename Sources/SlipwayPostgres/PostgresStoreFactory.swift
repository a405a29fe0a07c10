import Foundation
import Slipway

extension HopRecordStoreFactory {
    /// The hop record in PostgreSQL (`--store postgres://...`), shared by every instance of the step:
    /// `await ProcessorMain.run(MyStep(), stores: [.sqlite, .postgres])`. The store's client and the store itself are
    /// services of the processor's group: at shutdown the store writes what is queued before the client closes the
    /// connections.
    public static let postgres = HopRecordStoreFactory(schemes: ["postgres", "postgresql"]) { request in
        let store = try await PostgresHopRecordStore.open(
            url: request.url, step: request.step, keepFor: request.keepFor, logger: request.logger)
        return Opened(
            store: store, description: store.redactedURL, services: store.services,
            transactions: { PostgresHopTransactions.bind($0, store) })
    }
}
