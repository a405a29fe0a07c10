import Foundation
import GRDB
@testable import Slipway
import SlipwayStores
import SlipwayTesting
import SlipwayTransport
import Testing

/// The claim semantics every store keeps, run against each.
private func checkClaims(_ store: any HopRecordStore, other: (any HopRecordStore)? = nil) async throws {
    let other = other ?? store
    let lease = Duration.seconds(60)
    #expect(try await store.claim(slipID: "s", sequence: 1, owner: "a", lease: lease) == .claimed)
    // The other instance (or process: a second pool on the file) sees the claim.
    guard case .held(let holder, let until) = try await other.claim(slipID: "s", sequence: 1, owner: "b", lease: lease)
    else { Issue.record("a live claim must be held"); return }
    #expect(holder == "a")
    #expect(until > Date().addingTimeInterval(30))
    // Its holder may claim again (one delivery at a time per instance) and renew it; the other may do neither.
    #expect(try await store.claim(slipID: "s", sequence: 1, owner: "a", lease: lease) == .claimed)
    #expect(try await store.renewClaim(slipID: "s", sequence: 1, owner: "a", lease: lease))
    #expect(try await other.renewClaim(slipID: "s", sequence: 1, owner: "b", lease: lease) == false)
    // Another hop of the slip is claimed on its own.
    #expect(try await other.claim(slipID: "s", sequence: 2, owner: "b", lease: lease) == .claimed)

    // The record ends the claim: later claims find it.
    let record = HopRecord(
        slipID: "s", sequence: 1, step: "charge", kind: .execute, outcome: .completed,
        outgoing: [.toQueue("slipway.ship.execute", body: Array("{}".utf8))])
    try await store.save(record)
    guard case .recorded(let found) = try await other.claim(slipID: "s", sequence: 1, owner: "b", lease: lease)
    else { Issue.record("a recorded hop must say so"); return }
    #expect(found.outcome == .completed)
    #expect(try await store.renewClaim(slipID: "s", sequence: 1, owner: "a", lease: lease) == false)

    // A release by someone else changes nothing; its holder's release frees the hop at once.
    try await store.releaseClaim(slipID: "s", sequence: 2, owner: "a")
    #expect(try await store.claim(slipID: "s", sequence: 2, owner: "a", lease: lease) != .claimed)
    try await other.releaseClaim(slipID: "s", sequence: 2, owner: "b")
    #expect(try await store.claim(slipID: "s", sequence: 2, owner: "a", lease: lease) == .claimed)

    // A claim whose holder died runs out and is taken over; the dead holder's renewal then fails.
    #expect(try await store.claim(slipID: "t", sequence: 1, owner: "dead", lease: .milliseconds(100)) == .claimed)
    if case .held = try await other.claim(slipID: "t", sequence: 1, owner: "b", lease: lease) {} else {
        Issue.record("a live claim must be held")
    }
    try await Task.sleep(for: .milliseconds(300))
    #expect(try await other.claim(slipID: "t", sequence: 1, owner: "b", lease: lease) == .claimed)
    #expect(try await store.renewClaim(slipID: "t", sequence: 1, owner: "dead", lease: lease) == false)
    if case .held(let holder, _) = try await store.claim(slipID: "t", sequence: 1, owner: "dead", lease: lease) {
        #expect(holder == "b")
    } else {
        Issue.record("the taken-over claim must be held by its new owner")
    }
}

@Suite("Hop claims")
struct HopClaimTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("hop-claims-\(UUID().uuidString)/hops.sqlite").path
    }

    @Test("SQLite: claim, held, renewed, recorded after the save, released, taken over after its lease")
    func sqliteClaims() async throws {
        try await checkClaims(try SQLiteHopRecordStore(path: temporaryPath()))
    }

    @Test("SQLite: two stores on one file (two processes) see each other's claims, records and releases")
    func sqliteClaimsAcrossStores() async throws {
        let path = temporaryPath()
        try await checkClaims(try SQLiteHopRecordStore(path: path), other: try SQLiteHopRecordStore(path: path))
    }

    @Test("SQLite: the claim of a process of this host that has ended is taken over at once; a live one's is not")
    func deadHolderOfThisHost() async throws {
        let path = temporaryPath()
        let (one, two) = (try SQLiteHopRecordStore(path: path), try SQLiteHopRecordStore(path: path))
        let host = ProcessInfo.processInfo.hostName
        // No process has this pid (above any pid_max).
        #expect(try await one.claim(slipID: "s", sequence: 1, owner: "\(host):99999999", lease: .seconds(60)) == .claimed)
        #expect(try await two.claim(slipID: "s", sequence: 1, owner: "b", lease: .seconds(60)) == .claimed)
        // pid 1 runs; another host's process cannot be checked: both are waited for.
        #expect(try await one.claim(slipID: "s", sequence: 2, owner: "\(host):1", lease: .seconds(60)) == .claimed)
        #expect(try await two.claim(slipID: "s", sequence: 2, owner: "b", lease: .seconds(60)) != .claimed)
        #expect(try await one.claim(slipID: "s", sequence: 3, owner: "elsewhere:99999999", lease: .seconds(60)) == .claimed)
        #expect(try await two.claim(slipID: "s", sequence: 3, owner: "b", lease: .seconds(60)) != .claimed)
    }

    @Test("in memory: the same claim semantics")
    func inMemoryClaims() async throws {
        try await checkClaims(InMemoryHopRecordStore())
    }

    @Test("concurrent claims of one hop from two stores on one file: exactly one is claimed")
    func oneWinner() async throws {
        let path = temporaryPath()
        let stores = [try SQLiteHopRecordStore(path: path), try SQLiteHopRecordStore(path: path)]
        for hop in 0..<50 {
            let results = try await withThrowingTaskGroup(of: HopClaimResult.self) { group in
                for (index, store) in stores.enumerated() {
                    group.addTask { try await store.claim(slipID: "s", sequence: hop, owner: "p\(index)", lease: .seconds(60)) }
                    group.addTask { try await store.claim(slipID: "s", sequence: hop, owner: "q\(index)", lease: .seconds(60)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { $0 == .claimed }.count == 1)
        }
    }

    @Test("claims whose holder died go with the pruning, live ones stay")
    func pruning() async throws {
        let path = temporaryPath()
        let store = try SQLiteHopRecordStore(path: path, keepFor: nil)
        #expect(try await store.claim(slipID: "old", sequence: 1, owner: "a", lease: .milliseconds(1)) == .claimed)
        #expect(try await store.claim(slipID: "live", sequence: 1, owner: "a", lease: .seconds(60)) == .claimed)
        try await Task.sleep(for: .milliseconds(20))
        try store.prune(recordedBefore: Date())
        let pool = try DatabaseQueue(path: path)
        let left = try await pool.read { try String.fetchAll($0, sql: "SELECT slip_id FROM hop_claim") }
        #expect(left == ["live"])
    }

    @Test("the poison count lives in the file: two stores on it (two processes) count the same redeliveries")
    func sharedPoisonCount() async throws {
        let path = temporaryPath()
        let (one, two) = (try SQLiteHopRecordStore(path: path), try SQLiteHopRecordStore(path: path))
        #expect(try await one.noteRedelivery(slipID: "s", sequence: 1, attempt: 1) == 1)
        #expect(try await two.noteRedelivery(slipID: "s", sequence: 1, attempt: 1) == 2)
        #expect(try await one.noteRedelivery(slipID: "s", sequence: 1, attempt: 1) == 3)
    }

    @Test("SLIPWAY_CLAIM_LEASE_MS sets the claim lease; 30 s by default")
    func leaseOption() throws {
        var configuration = ProcessorConfiguration()
        #expect(configuration.claimLease == .seconds(30))
        try ProcessorOptions(arguments: [], environment: ["SLIPWAY_CLAIM_LEASE_MS": "1500"]).apply(to: &configuration)
        #expect(configuration.claimLease == .milliseconds(1500))
        #expect(throws: ProcessorError.self) {
            try ProcessorOptions(arguments: [], environment: ["SLIPWAY_CLAIM_LEASE_MS": "0"])
        }
    }
}
