import Foundation
import Slipway

extension HopRecordStoreFactory {
    /// The hop record in PostgreSQL (`--store postgres://...`), shared by every instance of the step:
    /// `await ProcessorMain.run(MyStep(), stores: [.sqlite, .postgres])`.
    public static let postgres = HopRecordStoreFactory(schemes: ["postgres", "postgresql"]) { request in
        let store = try await PostgresHopRecordStore.open(
            url: request.url, step: request.step, keepFor: request.keepFor, logger: request.logger)
        return Opened(store: store, description: store.redactedURL) {
            await store.flush()
            await store.close()
        }
    }
}
