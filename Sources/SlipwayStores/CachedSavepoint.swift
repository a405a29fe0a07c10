import GRDB

extension Database {
    /// `body` in a savepoint named `name`, released when it returns true, rolled back when it returns false or throws.
    /// With cached statements: GRDB's `inSavepoint` compiles its SAVEPOINT and RELEASE anew each time. An inbox hop
    /// (two savepoints) cost about 50 µs of CPU more than a plain one with it, about 7 µs with these and the step's
    /// insert cached too (chain-5, 2026-12-07, docs/exactly-once.md).
    package func inCachedSavepoint(_ name: String, _ body: () throws -> Bool) throws {
        try cachedStatement(sql: "SAVEPOINT \(name)").execute()
        let keep: Bool
        do {
            keep = try body()
        } catch {
            try? cachedStatement(sql: "ROLLBACK TO SAVEPOINT \(name)").execute()
            try? cachedStatement(sql: "RELEASE SAVEPOINT \(name)").execute()
            throw error
        }
        if !keep { try cachedStatement(sql: "ROLLBACK TO SAVEPOINT \(name)").execute() }
        try cachedStatement(sql: "RELEASE SAVEPOINT \(name)").execute()
    }
}
