import Logging
import SlipwayCore

/// A processor serves one step of a saga: it runs the step (`execute`) and, if the step has an undo, undoes it
/// (`compensate`). One executable per step; any number of instances share the step's queues.
///
/// ```swift
/// struct ChargeCard: StepProcessor {
///     let step = "charge-card"
///     func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome {
///         let charge = try await payments.charge(..., idempotencyKey: hop.idempotencyKey)
///         return .completed(variables: ["chargeId": .string(charge.id)], compensation: ["chargeId": .string(charge.id)])
///     }
///     func compensate(_ hop: CompensateHop) async throws {
///         try await payments.refund(hop.data["chargeId"]!.stringValue!, idempotencyKey: hop.idempotencyKey)
///     }
/// }
/// await ProcessorMain.run(ChargeCard())
/// ```
public protocol StepProcessor: Sendable {
    /// The step this processor serves; its queues are named after it.
    var step: String { get }

    /// Runs the step. Return `.completed` or `.faulted(reason:)`; a thrown error counts as transient: the hop is
    /// tried again, and after the last attempt the step faults.
    func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome

    /// Undoes a completed step, from the data its `execute` left. A thrown error is retried; after the last attempt
    /// the slip is parked as compensation-failed. Steps whose `execute` never returns compensation data need not
    /// implement it.
    func compensate(_ hop: CompensateHop) async throws
}

extension StepProcessor {
    public func compensate(_ hop: CompensateHop) async throws {
        throw ProcessorError("step '\(step)' returned compensation data but has no compensate handler")
    }
}

/// What `execute` sees of the slip.
public struct ExecuteHop: Sendable {
    public var slipID: String
    public var template: String
    public var step: String
    /// This step's arguments, from the itinerary.
    public var arguments: [String: JSONValue]
    /// The slip's shared variables.
    public var variables: [String: JSONValue]
    public var sequence: Int
    /// 1 on the first try of this hop.
    public var attempt: Int
    /// Stable across retries and redeliveries of this hop: pass it to downstream APIs so that they apply an effect once.
    public var idempotencyKey: String
    public var logger: Logger

    /// An argument, or else a variable of the same name.
    public func value(_ name: String) -> JSONValue? {
        arguments[name] ?? variables[name]
    }
}

/// What `compensate` sees of the slip.
public struct CompensateHop: Sendable {
    public var slipID: String
    public var template: String
    public var step: String
    /// What `execute` left for the undo.
    public var data: JSONValue
    public var variables: [String: JSONValue]
    /// The hop that completed the step being undone.
    public var completedSequence: Int
    public var sequence: Int
    public var attempt: Int
    /// Why the slip is compensating.
    public var fault: Fault?
    /// Stable across retries, redeliveries and replays of this undo.
    public var idempotencyKey: String
    public var logger: Logger
}

public enum ExecuteOutcome: Sendable, Hashable {
    /// The step is done. `compensation` is the data its undo needs (nil: the step has nothing to undo);
    /// `variables` are merged into the slip's variables; `revise` changes the steps still to come; `continueAfter`
    /// makes the slip wait that long before its next step (held by the broker in a durable delay queue, so the wait
    /// survives processor and broker restarts).
    case completed(
        variables: [String: JSONValue] = [:], compensation: JSONValue? = nil, revise: ItineraryRevision? = nil,
        continueAfter: Duration? = nil)
    /// A business failure (a declined card, no stock): the slip compensates now, without retries.
    case faulted(reason: String)
    /// Ends the slip here on purpose (nothing more to do), without compensating what was done.
    case terminated(reason: String)

    public static var completed: ExecuteOutcome { .completed() }
}


/// An error of the processor runtime or its configuration, with a message for people.
public struct ProcessorError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure: programs match on it, people read the message.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A step's handler failed: what `ProcessorError(_:)` means, the error handlers throw.
        public static let stepFailed = Code("step-failed")
        /// A command-line option or an environment setting is not valid: the processor does not start (exit 2).
        public static let badOption = Code("bad-option")
        /// A setting the processor cannot start with (signing keys, slip limits): it does not start (exit 2).
        public static let badSetting = Code("bad-setting")
        /// `--store` names a store this processor cannot open (an unknown scheme, no file).
        public static let unknownStore = Code("unknown-store")
        /// The step's name is not a valid one.
        public static let badStepName = Code("bad-step-name")
        /// The runtime met a slip it cannot describe: a bug, reported rather than crashed on.
        public static let internalError = Code("internal-error")
    }

    public var code: Code
    public var message: String

    /// A step's failure (`code` is `.stepFailed`).
    public init(_ message: String) { self.init(.stepFailed, message) }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The processor does not start for it: a bad option or setting (exit 2, not 1).
    public var isSetupError: Bool { code == .badOption || code == .badSetting || code == .unknownStore }
}
