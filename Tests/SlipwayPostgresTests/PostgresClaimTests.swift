import Foundation
import PostgresNIO
import SlipwayPostgres
import SlipwayStores
import Testing

/// Two stores on one database, as two processes on two hosts would have.
@Suite("Hop claims in PostgreSQL", .enabled(if: PostgresTestServer.enabled, "set SLIPWAY_POSTGRES_TESTS=1"))
struct PostgresClaimTests {
    @Test("the first claim wins; the other instance sees it held until it is released, then claims it")
    func claimHeldRelease() async throws {
        try await withTwoStores { a, b in
            #expect(try await a.claim(slipID: "s", sequence: 1, owner: "host-a:1", lease: .seconds(30)) == .claimed)
            guard case .held(let holder, let until) = try await b.claim(slipID: "s", sequence: 1, owner: "host-b:2", lease: .seconds(30))
            else { Issue.record("not held"); return }
            #expect(holder == "host-a:1")
            #expect(until > Date())
            #expect(try await a.renewClaim(slipID: "s", sequence: 1, owner: "host-a:1", lease: .seconds(30)))
            #expect(try await b.renewClaim(slipID: "s", sequence: 1, owner: "host-b:2", lease: .seconds(30)) == false)
            try await a.releaseClaim(slipID: "s", sequence: 1, owner: "host-a:1")
            #expect(try await b.claim(slipID: "s", sequence: 1, owner: "host-b:2", lease: .seconds(30)) == .claimed)
            // Another hop of the same slip is a claim of its own.
            #expect(try await a.claim(slipID: "s", sequence: 2, owner: "host-a:1", lease: .seconds(30)) == .claimed)
        }
    }

    @Test("a claim whose lease ran out is taken over, and its old holder can no longer renew it")
    func takeoverAfterExpiry() async throws {
        try await withTwoStores { a, b in
            #expect(try await a.claim(slipID: "s", sequence: 1, owner: "host-a:1", lease: .milliseconds(200)) == .claimed)
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await b.claim(slipID: "s", sequence: 1, owner: "host-b:2", lease: .seconds(30)) == .claimed)
            #expect(try await a.renewClaim(slipID: "s", sequence: 1, owner: "host-a:1", lease: .seconds(30)) == false)
            // Its release does not release the new holder's claim.
            try await a.releaseClaim(slipID: "s", sequence: 1, owner: "host-a:1")
            guard case .held(let holder, _) = try await a.claim(slipID: "s", sequence: 1, owner: "host-a:1", lease: .seconds(30))
            else { Issue.record("not held"); return }
            #expect(holder == "host-b:2")
        }
    }

    @Test("a saved hop is recorded for every instance, and its claim is gone with the save")
    func recordedAfterSave() async throws {
        try await withTwoStores { a, b in
            let step = a.step
            #expect(try await a.claim(slipID: "s", sequence: 1, owner: "host-a:1", lease: .seconds(30)) == .claimed)
            let saved = try await a.save(hopRecord("s", 1, step: step))
            guard case .recorded(let record) = try await b.claim(slipID: "s", sequence: 1, owner: "host-b:2", lease: .seconds(30))
            else { Issue.record("not recorded"); return }
            #expect(record.outgoing == saved.outgoing && record.outcome == saved.outcome)
            let claims = try await PostgresTestServer.admin { client in
                try await client.query("SELECT count(*)::INT8 FROM hop_claim WHERE step = \(step)").decode(Int.self)
                    .reduce(0) { $0 + $1 }
            }
            #expect(claims == 0)
        }
    }

    @Test("claims of many hops at once, batched together, each get their own answer")
    func batchedClaims() async throws {
        try await withTwoStores { a, b in
            let step = a.step
            for hop in 0..<40 where hop % 3 == 0 { try await a.save(hopRecord("m", hop, step: step)) }
            for hop in 0..<40 where hop % 3 == 1 {
                #expect(try await a.claim(slipID: "m", sequence: hop, owner: "host-a:1", lease: .seconds(30)) == .claimed)
            }
            let results = try await withThrowingTaskGroup(of: (Int, HopClaimResult).self) { group in
                for hop in 0..<40 {
                    group.addTask {
                        (hop, try await b.claim(slipID: "m", sequence: hop, owner: "host-b:2", lease: .seconds(30)))
                    }
                }
                return try await group.reduce(into: [Int: HopClaimResult]()) { $0[$1.0] = $1.1 }
            }
            for hop in 0..<40 {
                switch (hop % 3, results[hop]) {
                case (0, .recorded(let record)?): #expect(record.sequence == hop && record.slipID == "m")
                case (1, .held(let holder, _)?): #expect(holder == "host-a:1")
                case (2, .claimed?): break
                default: Issue.record("hop \(hop): \(String(describing: results[hop]))")
                }
            }
        }
    }

    @Test("of many concurrent claims from two stores exactly one gets the hop, while saves race with them")
    func concurrentClaims() async throws {
        try await withTwoStores { a, b in
            let step = a.step
            for hop in 1...20 {
                let results = try await withThrowingTaskGroup(of: HopClaimResult.self) { group in
                    for index in 0..<8 {
                        let store = index % 2 == 0 ? a : b
                        group.addTask {
                            try await store.claim(slipID: "s", sequence: hop, owner: "owner-\(index)", lease: .seconds(30))
                        }
                    }
                    return try await group.reduce(into: [HopClaimResult]()) { $0.append($1) }
                }
                #expect(results.filter { $0 == .claimed }.count == 1, "hop \(hop): \(results)")
            }
            // A claim racing a save: either it is held (before the save) or recorded (after), never claimed.
            for hop in 100..<120 {
                #expect(try await a.claim(slipID: "r", sequence: hop, owner: "a", lease: .seconds(30)) == .claimed)
                async let saved = a.save(hopRecord("r", hop, step: step))
                let seen = try await b.claim(slipID: "r", sequence: hop, owner: "b", lease: .seconds(30))
                _ = try await saved
                if seen == .claimed { Issue.record("hop \(hop) claimed by a second owner while it was being saved") }
            }
        }
    }
}
