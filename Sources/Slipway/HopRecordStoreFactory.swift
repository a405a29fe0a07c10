import Foundation
import Logging
import ServiceLifecycle
import SlipwayStores

/// Opens a processor's hop record for the URL schemes it claims. A processor passes the factories it was built with to
/// `ProcessorMain.run` or `runProcessor(_:configuration:stores:services:arguments:)`: `.sqlite` (the default), and, from SlipwayPostgres, `.postgres`, so that only
/// the processors that want PostgreSQL link its client.
public struct HopRecordStoreFactory: Sendable {
    public struct Request: Sendable {
        /// The `--store` URL, or the SQLite file's path in the state directory when none was given.
        public var url: String
        public var step: String
        /// How long a record is kept; nil keeps every record.
        public var keepFor: Duration?
        public var logger: Logger

        public init(url: String, step: String, keepFor: Duration?, logger: Logger) {
            self.url = url
            self.step = step
            self.keepFor = keepFor
            self.logger = logger
        }
    }

    public struct Opened: Sendable {
        public var store: any HopRecordStore
        /// Where the record is, for logs: never a password.
        public var description: String
        /// The store's background work (checkpoints, pruning), run in the processor's `ServiceGroup` before the
        /// runtime: on graceful shutdown they stop after it, once its last hop is recorded.
        public var services: [any Service]
        /// Called once the processor has stopped.
        public var close: @Sendable () async -> Void
        /// How an inbox step of this store's kind runs in its transaction (nil for other steps). SQLite's is the
        /// runtime's own.
        public var transactions: @Sendable (any StepProcessor) -> (any HopTransactions)?

        public init(
            store: any HopRecordStore, description: String, services: [any Service] = [],
            close: @escaping @Sendable () async -> Void = {},
            transactions: @escaping @Sendable (any StepProcessor) -> (any HopTransactions)? = { _ in nil }
        ) {
            self.store = store
            self.description = description
            self.services = services
            self.transactions = transactions
            self.close = close
        }
    }

    /// Lower-case URL schemes this factory opens (`postgres`, `postgresql`).
    public var schemes: [String]
    public var open: @Sendable (Request) async throws -> Opened

    public init(schemes: [String], open: @escaping @Sendable (Request) async throws -> Opened) {
        self.schemes = schemes.map { $0.lowercased() }
        self.open = open
    }

    /// The SQLite file: the default, in the state directory; `--store sqlite:PATH` names a file.
    public static let sqlite = HopRecordStoreFactory(schemes: ["sqlite"]) { request in
        var path = request.url
        if path.lowercased().hasPrefix("sqlite://") {
            path = String(path.dropFirst("sqlite://".count))
        } else if path.lowercased().hasPrefix("sqlite:") {
            path = String(path.dropFirst("sqlite:".count))
        }
        guard !path.isEmpty else { throw ProcessorError(.unknownStore, "--store sqlite:PATH names no file") }
        let store = try SQLiteHopRecordStore(path: path, keepFor: request.keepFor)
        return Opened(store: store, description: "sqlite:\(path)", services: [store])
    }

    /// The factory for `url`: SQLite when there is none, else the first that claims its scheme.
    static func choose(for url: String?, among factories: [HopRecordStoreFactory]) throws -> HopRecordStoreFactory {
        guard let url else { return .sqlite }
        guard let colon = url.firstIndex(of: ":"), colon != url.startIndex else {
            throw ProcessorError(.unknownStore, "--store must be a URL such as postgres://HOST/DATABASE or sqlite:PATH")
        }
        let scheme = url[..<colon].lowercased()
        if let factory = factories.first(where: { $0.schemes.contains(scheme) }) { return factory }
        let known = Set(factories.flatMap(\.schemes)).sorted().joined(separator: ", ")
        // Only the scheme: the rest of the URL may hold a password.
        throw ProcessorError(.unknownStore, "--store: this processor has no '\(scheme)' store (it was built with: \(known))")
    }
}
