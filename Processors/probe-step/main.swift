import Foundation
import Slipway
import SlipwayPostgres

/// A configurable step for tests, demos of failure handling, and benchmarks: `probe-step --step NAME [processor
/// options]` serves step NAME (or `$SLIPWAY_STEP`). It does nothing by default, and always has an undo. The slip's
/// arguments for the step make it misbehave:
/// - `throwTimes: n` throws on attempts 1 to n (a transient failure);
/// - `sleepMs: n` sleeps n ms first (cancellably, so a timeout ends it), on attempts up to `sleepTimes` if given;
/// - `crashTimes: n` kills the process (abort) on its first n deliveries of the hop: a poison message;
/// - `fault: "why"` faults; `terminate: "why"` ends the slip;
/// - `waitMs: n` completes, and the slip waits n ms (in a durable delay queue) before its next step;
/// - `removeSteps: [names]`, `insertNext: [names]` complete and revise the steps still to come.
/// The slip's variables make its undo misbehave: `failUndo` throws, `undoSleepMs` sleeps (see `knobs`).
struct ProbeStep: StepProcessor {
    let step: String

    func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome {
        let arguments = hop.arguments
        if let times = arguments["crashTimes"]?.intValue, try crashCount(hop) <= times {
            FileHandle.standardError.write(Data("probe-step \(step): crashing on purpose (crashTimes)\n".utf8))
            abort()
        }
        if let sleep = arguments["sleepMs"]?.intValue, hop.attempt <= (arguments["sleepTimes"]?.intValue ?? .max) {
            try await Task.sleep(for: .milliseconds(sleep))
        }
        if let times = arguments["throwTimes"]?.intValue, hop.attempt <= times {
            throw ProcessorError("\(step) throws on attempt \(hop.attempt) of \(times) (throwTimes)")
        }
        if let reason = arguments["fault"]?.stringValue { return .faulted(reason: reason) }
        if let reason = arguments["terminate"]?.stringValue { return .terminated(reason: reason) }
        let wait = arguments["waitMs"]?.intValue.map { Duration.milliseconds($0) }
        var revision: ItineraryRevision?
        if case .array(let names)? = arguments["removeSteps"] { revision = .remove(names.compactMap(\.stringValue)) }
        if case .array(let names)? = arguments["insertNext"] {
            revision = .insertNext(names.compactMap(\.stringValue).map { ItineraryStep(step: $0) })
        }
        return .completed(
            variables: ["\(step)At": .string(SlipCodec.formatTimestamp(Date()))],
            compensation: ["step": .string(step)], revise: revision, continueAfter: wait)
    }

    func compensate(_ hop: CompensateHop) async throws {
        // `undoSleepMs: n` (a variable, or `undoSleepMs:<step>` for one step) makes the undo sleep n ms first,
        // cancellably, on every attempt: with a compensation timeout below n, an undo that hangs.
        if let sleep = (hop.variables["undoSleepMs:\(step)"] ?? hop.variables["undoSleepMs"])?.intValue {
            try await Task.sleep(for: .milliseconds(sleep))
        }
        if hop.variables["failUndo"]?.boolValue == true || hop.variables["failUndo:\(step)"]?.boolValue == true {
            throw ProcessorError("the undo of \(step) fails (failUndo)")
        }
    }

    /// How many times this process tree has started this hop: a file per hop in the state directory, so the count
    /// survives the crashes it causes.
    private func crashCount(_ hop: ExecuteHop) throws -> Int {
        let directory = ProcessInfo.processInfo.environment["SLIPWAY_STATE_DIR"] ?? ".slipway/state"
        let path = "\(directory)/probe-crashes-\(hop.slipID)-\(hop.sequence)"
        let count = (Int((try? String(contentsOfFile: path, encoding: .utf8)) ?? "") ?? 0) + 1
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try String(count).write(toFile: path, atomically: true, encoding: .utf8)
        return count
    }
}

/// What `--help` says before the processor options: the arguments a slip gives the step to make it misbehave.
let knobs = """
    probe-step --step NAME [--inbox] [processor options]: a step for tests, demos of failure handling and benchmarks.
    It does nothing by default and always has an undo; the step's arguments in the slip make it misbehave. With
    --inbox it is an inbox step: each execute and undo adds a row to its table probe_effect in the hop record's
    SQLite file, in the hop's transaction (only throwTimes and fault apply then). With --keyed-ledger PATH it
    writes the same row to the SQLite file PATH instead, keyed by the hop's idempotency key, in a transaction of its
    own, as a step calling an external system with a key does (no argument applies then).
      throwTimes: n           throw on attempts 1 to n (a transient failure; retried as the retry policy says)
      sleepMs: n              sleep n ms before anything else (a timeout ends the sleep)
      sleepTimes: n           sleep (sleepMs) on attempts 1 to n only (default: every attempt)
      crashTimes: n           kill the process (abort) on its first n deliveries of the hop: a poison message
      fault: "why"            fault the step: the slip compensates
      terminate: "why"        end the slip here (terminated)
      waitMs: n               complete, and the slip waits n ms (in a durable delay queue) before its next step
      removeSteps: [names]    complete, and remove those steps from what is still to come
      insertNext: [names]     complete, and run those steps next
    Slip variables (not arguments: an undo sees the variables, not the step's arguments) make the undo misbehave:
      failUndo: true          every probe's undo throws
      failUndo:NAME: true     the undo of step NAME throws
      undoSleepMs: n          every probe's undo sleeps n ms first, on every attempt (with a compensation timeout
                              below n: a hanging compensation)
      undoSleepMs:NAME: n     the undo of step NAME sleeps n ms first

    """

var arguments = Array(CommandLine.arguments.dropFirst())
let help = arguments.contains("--help") || arguments.contains("-h")
if help { print(knobs) }  // the processor options follow, from ProcessorMain.run
var step = ProcessInfo.processInfo.environment["SLIPWAY_STEP"] ?? (help ? "NAME" : nil)
if let index = arguments.firstIndex(of: "--step"), index + 1 < arguments.count {
    step = arguments[index + 1]
    arguments.removeSubrange(index...(index + 1))
}
guard let step else {
    FileHandle.standardError.write(Data("probe-step: name the step with --step NAME (or SLIPWAY_STEP)\n".utf8))
    exit(2)
}
// `--inbox`: the probe as an inbox step, writing its effects in the hop's transaction (InboxProbe.swift).
if let index = arguments.firstIndex(of: "--inbox") {
    arguments.remove(at: index)
    await ProcessorMain.run(InboxProbe(step: step), stores: [.sqlite, .postgres], arguments: arguments)
} else if let index = arguments.firstIndex(of: "--keyed-ledger"), index + 1 < arguments.count {
    // `--keyed-ledger PATH`: the probe writing its effect to an "external" ledger with the hop's key (KeyedLedgerProbe.swift).
    let path = arguments[index + 1]
    arguments.removeSubrange(index...(index + 1))
    do {
        let probe = try KeyedLedgerProbe(step: step, path: path)
        await ProcessorMain.run(probe, stores: [.sqlite, .postgres], arguments: arguments)
    } catch {
        FileHandle.standardError.write(Data("probe-step: cannot open the ledger \(path): \(error)\n".utf8))
        exit(2)
    }
} else {
    await ProcessorMain.run(ProbeStep(step: step), stores: [.sqlite, .postgres], arguments: arguments)
}
