import Foundation
import GRDB
import Slipway
import SlipwayStores
import SlipwayTesting
import Testing

/// The inbox: a step that keeps its stock in the hop record's SQLite file, writing in the hop's transaction.
@Suite("inbox steps: the step's writes and the hop record in one SQLite transaction")
struct InboxTests {
    /// Reserves `quantity` of `sku` from its own `stock` table; faults when there is not enough. Told by its arguments
    /// to write and then throw (`throwAfterWriting: n`, on attempts up to n), which must leave nothing written.
    struct StockStep: SQLiteInboxStep {
        let step = "stock"

        func migrate(_ migrator: inout DatabaseMigrator) {
            migrator.registerMigration("stock 1: stock and reservations") { db in
                try db.execute(
                    sql: """
                        CREATE TABLE stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL);
                        CREATE TABLE reservation (slip_id TEXT PRIMARY KEY, sku TEXT NOT NULL, quantity INTEGER NOT NULL);
                        INSERT INTO stock VALUES ('apple', 10);
                        """)
            }
        }

        func execute(_ hop: ExecuteHop, in db: Database) throws -> ExecuteOutcome {
            let sku = hop.value("sku")?.stringValue ?? "apple"
            let quantity = hop.value("quantity")?.intValue ?? 1
            try db.execute(
                sql: "UPDATE stock SET available = available - ? WHERE sku = ? AND available >= ?",
                arguments: [quantity, sku, quantity])
            guard db.changesCount == 1 else { return .faulted(reason: "out of stock: \(sku)") }
            try db.execute(
                sql: "INSERT INTO reservation (slip_id, sku, quantity) VALUES (?, ?, ?)",
                arguments: [hop.slipID, sku, quantity])
            if let times = hop.arguments["throwAfterWriting"]?.intValue, hop.attempt <= times {
                throw InjectedFailure(description: "told to throw after writing, attempt \(hop.attempt)")
            }
            return .completed(compensation: ["sku": .string(sku), "quantity": .int(Int64(quantity))])
        }

        func compensate(_ hop: CompensateHop, in db: Database) throws {
            guard case .object(let data) = hop.data, let sku = data["sku"]?.stringValue,
                let quantity = data["quantity"]?.intValue
            else { throw InjectedFailure(description: "no compensation data") }
            try db.execute(sql: "UPDATE stock SET available = available + ? WHERE sku = ?", arguments: [quantity, sku])
            try db.execute(sql: "DELETE FROM reservation WHERE slip_id = ?", arguments: [hop.slipID])
        }
    }

    /// An inbox step whose migration is named like the hop record's own.
    struct BadlyNamedMigrations: SQLiteInboxStep {
        let step = "stock"
        func migrate(_ migrator: inout DatabaseMigrator) {
            migrator.registerMigration("v9: stock") { _ in }
        }
        func execute(_ hop: ExecuteHop, in db: Database) throws -> ExecuteOutcome { .completed }
    }

    /// The saga's other steps run as plain processors; `stock` runs on a SQLite hop record in a temporary directory.
    private func withStock(
        _ body: (Saga, SQLiteHopRecordStore, DatabaseQueue) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inbox-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("stock.sqlite").path
        let store = try SQLiteHopRecordStore(path: path)
        try await withSaga { saga in
            let stock = RunningProcessor(
                StockStep(), broker: saga.broker, store: store, configuration: saga.configuration,
                logger: testLogger("slipway.test.stock"))
            do {
                // A second connection to the same file, as an operator's `sqlite3` would read it.
                let reader = try DatabaseQueue(path: path)
                try await body(saga, store, reader)
            } catch {
                try? await stock.stop()
                throw error
            }
            try await stock.stop()
        }
    }

    private func available(_ reader: DatabaseQueue, _ sku: String = "apple") throws -> Int? {
        try reader.read { db in try Int.fetchOne(db, sql: "SELECT available FROM stock WHERE sku = ?", arguments: [sku]) }
    }

    private func reservations(_ reader: DatabaseQueue, _ slipID: String) throws -> Int {
        try reader.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM reservation WHERE slip_id = ?", arguments: [slipID]) ?? 0
        }
    }

    private func hopRecords(_ reader: DatabaseQueue, _ slipID: String) throws -> [String] {
        try reader.read { db in
            try String.fetchAll(
                db, sql: "SELECT outcome FROM hop_record WHERE slip_id = ? ORDER BY sequence", arguments: [slipID])
        }
    }

    @Test("the step's rows and its hop record are in the same file after the slip completes")
    func completes() async throws {
        try await withStock { saga, _, reader in
            let slip = saga.slip(["stock", "d"], arguments: ["stock": ["quantity": 3]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)
            #expect(event.state == .completed)
            #expect(try available(reader) == 7)
            #expect(try reservations(reader, slip.id) == 1)
            #expect(try hopRecords(reader, slip.id) == ["completed"])
        }
    }

    @Test("a handler that writes and then throws leaves nothing: its retry writes once")
    func throwRollsBack() async throws {
        try await withStock { saga, _, reader in
            let slip = saga.slip(["stock", "d"], arguments: ["stock": ["quantity": 2, "throwAfterWriting": 2]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)
            #expect(event.state == .completed)
            // Three attempts wrote; two were rolled back with their throw.
            #expect(try available(reader) == 8)
            #expect(try reservations(reader, slip.id) == 1)
        }
    }

    @Test("a handler that throws on its last attempt faults the slip, with nothing written")
    func lastAttemptFaultsWithoutWrites() async throws {
        try await withStock { saga, _, reader in
            let slip = saga.slip(["stock", "d"], arguments: ["stock": ["throwAfterWriting": 99]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)
            #expect(event.state == .faulted)
            #expect(event.fault?.step == "stock")
            #expect(try available(reader) == 10)
            #expect(try reservations(reader, slip.id) == 0)
            #expect(try hopRecords(reader, slip.id) == ["faulted"])
        }
    }

    @Test("a fault after the step runs its undo in the undo hop's transaction")
    func compensates() async throws {
        try await withStock { saga, _, reader in
            let slip = saga.slip(["stock", "a", "b"], arguments: ["stock": ["quantity": 4], "b": ["fault": true]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)
            #expect(event.state == .compensated)
            #expect(try available(reader) == 10)
            #expect(try reservations(reader, slip.id) == 0)
            // The execute hop and the undo hop, each recorded with its writes.
            #expect(try hopRecords(reader, slip.id) == ["completed", "compensated"])
        }
    }

    @Test("a business fault returned by the handler is recorded, and the slip compensates what came before")
    func outOfStock() async throws {
        try await withStock { saga, _, reader in
            let slip = saga.slip(["a", "stock", "d"], arguments: ["stock": ["quantity": 11]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)
            #expect(event.state == .compensated)
            #expect(event.fault?.reason == "out of stock: apple")
            #expect(try available(reader) == 10)
            #expect(try hopRecords(reader, slip.id) == ["faulted"])
        }
    }

    @Test("the same slip delivered twice reserves once: the second finds the record")
    func duplicateDeliveryWritesOnce() async throws {
        try await withStock { saga, _, reader in
            let slip = saga.slip(["stock", "d"])
            let sender = saga.sender()
            _ = try await sender.sendAndWait(slip, timeout: patience)
            try await sender.send(slip)
            #expect(await saga.broker.waitUntilIdle(timeout: patience))
            #expect(try available(reader) == 9)
            #expect(try reservations(reader, slip.id) == 1)
        }
    }

    @Test("an inbox step on a store it has no handler for does not start, and says why")
    func wrongStoreDoesNotStart() async throws {
        let broker = InMemoryBroker()
        let runtime = ProcessorRuntime(
            processor: StockStep(), transport: InMemoryTransport(broker: broker), store: InMemoryHopRecordStore(),
            logger: testLogger("slipway.test.stock"))
        let error = await #expect(throws: ProcessorError.self) { try await runtime.run() }
        #expect(error?.code == .unknownStore)
        #expect(error?.message.contains("SQLiteInboxStep") == true)
    }

    @Test("a step migration named like the hop record's own is refused at start")
    func migrationNamesAreTheStepsOwn() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inbox-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteHopRecordStore(path: directory.appendingPathComponent("stock.sqlite").path)
        let runtime = ProcessorRuntime(
            processor: BadlyNamedMigrations(), transport: InMemoryTransport(broker: InMemoryBroker()), store: store,
            logger: testLogger("slipway.test.stock"))
        let error = await #expect(throws: StepMigrationNameError.self) { try await runtime.run() }
        #expect(error?.name == "v9: stock")
    }
}
