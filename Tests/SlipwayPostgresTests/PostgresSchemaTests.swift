import Foundation
import PostgresNIO
import SlipwayPostgres
import Testing

@Suite("PostgreSQL store: schema and connection settings")
struct PostgresSchemaTests {
    @Test("an unknown sslmode is refused with a clear error that does not show the password")
    func unknownSSLMode() throws {
        let error = #expect(throws: PostgresStoreError.self) {
            try PostgresStoreURL("postgres://slipway:s3cret@db.example:5432/slipway?sslmode=sometimes")
        }
        #expect(error?.code == "bad-sslmode")
        #expect(error?.description.contains("verify-full") == true)
        #expect(error?.description.contains("s3cret") == false)
    }

    @Test("URLs are read as libpq reads them, and logged without their password")
    func urls() throws {
        let url = try PostgresStoreURL("postgresql://app:p%40ss@db.internal:6543/records?sslmode=require")
        #expect(url.host == "db.internal" && url.port == 6543 && url.username == "app" && url.password == "p@ss")
        #expect(url.database == "records" && url.sslMode == .require)
        #expect(url.redacted == "postgres://app:***@db.internal:6543/records?sslmode=require")
        #expect(try PostgresStoreURL("postgres://app@db/x").sslMode == .prefer)
        for bad in ["mysql://a:b@h/d", "postgres://a:secret@/d", "postgres://h/d", "postgres://a:secret@h/d?ssl=1"] {
            let error = #expect(throws: PostgresStoreError.self) { try PostgresStoreURL(bad) }
            #expect(error?.description.contains("secret") == false, "\(bad)")
        }
        let missing = #expect(throws: PostgresStoreError.self) {
            try PostgresStoreURL("postgres://a:secret@h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
        }
        #expect(missing?.code == "bad-sslmode")
    }

    @Test(
        "a database whose schema is newer than this build knows is refused",
        .enabled(if: PostgresTestServer.enabled, "set SLIPWAY_POSTGRES_TESTS=1"))
    func newerSchemaRefused() async throws {
        let (name, url) = try await PostgresTestServer.createDatabase()
        defer { Task { await PostgresTestServer.dropDatabase(name) } }
        _ = try await PostgresHopRecordStore.open(url: url, step: "s")
        // A second open of a current schema changes nothing.
        _ = try await PostgresHopRecordStore.open(url: url, step: "s")
        let versions = try await PostgresTestServer.admin(database: name) { client in
            try await client.query("SELECT version::INT8 FROM slipway_schema ORDER BY version").decode(Int.self)
                .reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(versions == [1, 2])
        try await PostgresTestServer.admin(database: name) { client in
            try await client.query("INSERT INTO slipway_schema (version, name) VALUES (99, 'from the future')")
        }
        let error = await #expect(throws: PostgresStoreError.self) {
            try await PostgresHopRecordStore.open(url: url, step: "s")
        }
        #expect(error?.code == "schema-too-new")
        #expect(error?.description.contains("99") == true)
    }

    @Test(
        "a newer schema whose migrations all keep older builds working is used, so a host not yet upgraded can restart",
        .enabled(if: PostgresTestServer.enabled, "set SLIPWAY_POSTGRES_TESTS=1"))
    func newerCompatibleSchemaUsed() async throws {
        let (name, url) = try await PostgresTestServer.createDatabase()
        defer { Task { await PostgresTestServer.dropDatabase(name) } }
        _ = try await PostgresHopRecordStore.open(url: url, step: "s")
        try await PostgresTestServer.admin(database: name) { client in
            try await client.query(
                "INSERT INTO slipway_schema (version, name, keeps_older_builds) VALUES (98, 'an added index', TRUE)")
        }
        try await withStore(url: url, step: "s") { store in
            try await store.save(hopRecord("after", 1, step: "s"))
            #expect(try await store.record(slipID: "after", sequence: 1) != nil)
        }
        // A breaking one after it is refused, naming it.
        try await PostgresTestServer.admin(database: name) { client in
            try await client.query("INSERT INTO slipway_schema (version, name) VALUES (99, 'a changed table')")
        }
        let error = await #expect(throws: PostgresStoreError.self) {
            try await PostgresHopRecordStore.open(url: url, step: "s")
        }
        #expect(error?.code == "schema-too-new")
        #expect(error?.description.contains("version 99 changed") == true)
    }

    @Test(
        "a database of schema version 1 is upgraded to version 2, its records and claims kept",
        .enabled(if: PostgresTestServer.enabled, "set SLIPWAY_POSTGRES_TESTS=1"))
    func upgradeFromVersion1() async throws {
        let (name, url) = try await PostgresTestServer.createDatabase()
        defer { Task { await PostgresTestServer.dropDatabase(name) } }
        // Version 1 as the previous release left it: the tables, a record and a live claim, no claim function.
        try await withStore(url: url, step: "s") { old in try await old.save(hopRecord("done", 1, step: "s")) }
        try await PostgresTestServer.admin(database: name) { client in
            try await client.query("DROP FUNCTION slipway_claim")
            try await client.query("DELETE FROM slipway_schema WHERE version > 1")
            try await client.query(
                """
                INSERT INTO hop_claim (step, slip_id, sequence, owner, expires_at)
                VALUES ('s', 'running', 1, 'host-a:1', now() + interval '1 hour')
                """)
        }
        try await withStore(url: url, step: "s") { store in
            let versions = try await PostgresTestServer.admin(database: name) { client in
                try await client.query("SELECT version::INT8 FROM slipway_schema ORDER BY version").decode(Int.self)
                    .reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(versions == [1, 2])
            guard case .recorded(let record) = try await store.claim(slipID: "done", sequence: 1, owner: "b", lease: .seconds(30))
            else { Issue.record("the old record is not seen"); return }
            #expect(record.outcome == .completed)
            guard case .held(let holder, _) = try await store.claim(slipID: "running", sequence: 1, owner: "b", lease: .seconds(30))
            else { Issue.record("the old claim is not seen"); return }
            #expect(holder == "host-a:1")
            #expect(try await store.claim(slipID: "new", sequence: 1, owner: "b", lease: .seconds(30)) == .claimed)
        }
    }

    @Test(
        "sslmode=require against a server without TLS fails to connect, without the password in the error",
        .enabled(if: PostgresTestServer.enabled, "set SLIPWAY_POSTGRES_TESTS=1"))
    func requireWithoutServerTLS() async throws {
        _ = try await PostgresTestServer.ready()
        let url = "postgres://slipway:slipway@127.0.0.1:\(PostgresTestServer.port)/slipway?sslmode=require"
        let error = await #expect(throws: PostgresStoreError.self) {
            try await PostgresHopRecordStore.open(url: url, step: "s")
        }
        #expect(error?.description.contains("slipway@") == false)
        #expect(error?.description.contains(":slipway") == false)
    }
}
