/// `outbox-producer (--db PATH | --postgres URL) [--orders N] [--rollback-every K] [--steps a,b] [--relays R]`.
struct Options {
    var db = ""
    var postgres = ""
    var orders = 10
    var rollbackEvery = 0
    var steps = ["a", "b"]
    var relays = 1

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        while let name = rest.popFirst() {
            guard let value = rest.popFirst() else { throw OptionsError("\(name) needs a value") }
            switch name {
            case "--db": db = value
            case "--postgres": postgres = value
            case "--orders": orders = try Self.count(name, value)
            case "--rollback-every": rollbackEvery = try Self.count(name, value)
            case "--steps": steps = value.split(separator: ",").map(String.init)
            case "--relays": relays = try Self.count(name, value)
            default: throw OptionsError("unknown option \(name)")
            }
        }
        guard db.isEmpty != postgres.isEmpty else { throw OptionsError("give either --db PATH or --postgres URL") }
        guard !steps.isEmpty else { throw OptionsError("--steps must name one step") }
        // On SQLite a second relay would publish the same slips: only PostgreSQL's claim lets several share the table.
        guard relays >= 1, relays == 1 || !postgres.isEmpty else { throw OptionsError("--relays N > 1 needs --postgres") }
    }

    static func count(_ name: String, _ value: String) throws -> Int {
        guard let count = Int(value), count >= 0 else { throw OptionsError("\(name) takes a count, got \(value)") }
        return count
    }
}

struct OptionsError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
