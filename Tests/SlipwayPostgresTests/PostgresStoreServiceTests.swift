import Foundation
import Logging
import ServiceLifecycle
import SlipwayCore
import SlipwayPostgres
import SlipwayStores
import Testing

/// The store as a processor's `ServiceGroup` runs it: its services (the client, and the store) stop at graceful
/// shutdown, the store first.
@Suite("The PostgreSQL hop record as a service", .enabled(if: PostgresTestServer.enabled, "set SLIPWAY_POSTGRES_TESTS=1"))
struct PostgresStoreServiceTests {
    /// A store of a step of its own, and the group that runs its services as a processor's would.
    func storeInGroup() async throws -> (PostgresHopRecordStore, ServiceGroup) {
        let store = try await PostgresHopRecordStore.open(url: try await PostgresTestServer.ready(), step: uniqueStep())
        return (store, ServiceGroup(services: store.services, logger: Logger(label: "test")))
    }

    @Test("at graceful shutdown the store's services return, and a save, claim or read after it fails as 'stopped'")
    func stopsAtGracefulShutdown() async throws {
        let (store, group) = try await storeInGroup()
        let step = store.step
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await store.save(hopRecord("before", 1, step: step))
            await group.triggerGracefulShutdown()
            // The group returns only once the store's services have.
            try await tasks.waitForAll()
        }
        let saveError = await #expect(throws: PostgresStoreError.self) {
            try await store.save(hopRecord("after", 1, step: step))
        }
        #expect(saveError?.code == "stopped")
        #expect(saveError?.description.contains("has stopped") == true)
        let claimError = await #expect(throws: PostgresStoreError.self) {
            try await store.claim(slipID: "after", sequence: 1, owner: "a", lease: .seconds(30))
        }
        #expect(claimError?.code == "stopped")
        let readError = await #expect(throws: PostgresStoreError.self) {
            try await store.record(slipID: "before", sequence: 1)
        }
        #expect(readError?.code == "stopped")
        await #expect(throws: PostgresStoreError.self) { try await store.markForwarded(slipID: "before", sequence: 1) }
        let (before, after) = try await withStore(step: step) { other in
            (try await other.record(slipID: "before", sequence: 1), try await other.record(slipID: "after", sequence: 1))
        }
        #expect(before != nil)
        #expect(after == nil)
    }

    /// What became of a hop at shutdown.
    enum Outcome: Sendable {
        case saved, marked, refused
    }

    @Test("saves and marks in flight at graceful shutdown are written before the connections close, or refused as 'stopped'")
    func writesWhatIsQueuedAtShutdown() async throws {
        let (store, group) = try await storeInGroup()
        let step = store.step
        let hops = 300
        let outcomes = try await withThrowingTaskGroup(of: (hop: Int, outcome: Outcome)?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            // Even hops are saved first and marked forwarded below, odd ones saved below.
            for hop in stride(from: 0, to: hops, by: 2) { try await store.save(hopRecord("s", hop, step: step)) }
            for hop in 0..<hops {
                tasks.addTask {
                    do {
                        if hop % 2 == 0 {
                            try await store.markForwarded(slipID: "s", sequence: hop)
                            return (hop, .marked)
                        }
                        try await store.save(hopRecord("s", hop, step: step))
                        return (hop, .saved)
                    } catch let error as PostgresStoreError where error.code == "stopped" {
                        return (hop, .refused)
                    }
                }
            }
            // Once a hop is done, while others are still coming.
            var outcomes: [Int: Outcome] = [:]
            if case let (hop, outcome)?? = try await tasks.next() { outcomes[hop] = outcome }
            await group.triggerGracefulShutdown()
            for try await case let (hop, outcome)? in tasks { outcomes[hop] = outcome }
            return outcomes
        }
        #expect(outcomes.count == hops)
        try await withStore(step: step) { other in
            for (hop, outcome) in outcomes {
                let record = try await other.record(slipID: "s", sequence: hop)
                switch outcome {
                case .marked: #expect(record?.forwarded == true, "hop \(hop) was marked but is \(String(describing: record))")
                case .saved: #expect(record != nil, "hop \(hop) was saved but is not in the record")
                case .refused where hop % 2 == 1: #expect(record == nil, "hop \(hop) was refused but is in the record")
                case .refused: #expect(record?.forwarded == false, "hop \(hop)'s mark was refused but written")
                }
            }
        }
    }

    @Test("cancelled, the store's services return and later calls fail as 'stopped'")
    func stopsWhenCancelled() async throws {
        let url = try await PostgresTestServer.ready()
        let store = try await PostgresHopRecordStore.open(url: url, step: uniqueStep())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for service in store.services { group.addTask { try await service.run() } }
            try await store.save(hopRecord("s", 1, step: store.step))
            group.cancelAll()
            try await group.waitForAll()
        }
        let error = await #expect(throws: PostgresStoreError.self) { try await store.save(hopRecord("s", 2, step: store.step)) }
        #expect(error?.code == "stopped")
    }
}
