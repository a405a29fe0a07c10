import ExampleLedger
import Foundation
import SlipwayStores
import Testing

@Suite("Stores shared between processes")
struct SharedFileTests {
    @Test("eight openers of the same new SQLite file at once all succeed: the migration race is tolerated")
    func concurrentFirstOpen() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-shared-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        for round in 0..<5 {
            let ledger = directory.appendingPathComponent("ledger-\(round).sqlite").path
            let hops = directory.appendingPathComponent("hops-\(round).sqlite").path
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask { _ = try Ledger(path: ledger) }
                    group.addTask { _ = try SQLiteHopRecordStore(path: hops) }
                }
                try await group.waitForAll()
            }
            #expect(try await Ledger(path: ledger).journal(slipID: "none") == [], "the ledger's tables are there")
        }
    }
}
