import ArgumentParser
import Foundation
import Slipway
import SlipwayTemplates

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send slips built from a template (Slips/*.yaml) and print their ids.",
        discussion: """
            Examples:
              slip send Slips/order-fulfillment.yaml --var orderId=A-1001 --var quantity=2
              slip send Slips/order-fulfillment.yaml --var orderId=A-1002 --var card=4000-0000-0000-0002 --wait

            With --wait, each slip's end is printed: its final state, or "parked: <code>: <reason>" when a processor \
            parked its message in the dead-letter queue (it goes no further until replayed: slip dlq).

            Exit status: 0 sent (with --wait: every slip completed); 1 a slip ended otherwise (faulted, compensated, \
            compensation-failed, terminated); 2 bad usage or input; 3 the broker could not be reached, or a wait timed \
            out; 4 a slip was parked (and none timed out).
            """)

    @Argument(help: "The slip template (YAML).")
    var template: String

    @Option(name: .customLong("var"), help: "A variable, NAME=VALUE (numbers, true/false and null are typed). Repeatable.")
    var variables: [String] = []

    @Option(help: "The slip id (default: a new UUID). With --count, a suffix -1, -2, ... is added.")
    var id: String?

    @Option(help: "How many slips to send from the template.")
    var count = 1

    @Flag(help: "Wait for each slip's terminal state, or its park; exit non-zero unless every slip completed.")
    var wait = false

    @Option(help: "Seconds to wait with --wait.")
    var timeout = 60

    @Flag(help: "Print JSON (one object per slip).")
    var json = false

    @OptionGroup var broker: BrokerOptions

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        _ = try parsedVariables()
    }

    func parsedVariables() throws -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        for assignment in variables {
            guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
                throw ValidationError("--var takes NAME=VALUE, got '\(assignment)'")
            }
            values[String(assignment[..<equals])] = .parsingScalar(String(assignment[assignment.index(after: equals)...]))
        }
        return values
    }

    func run() async throws {
        let slips: [Slip]
        do {
            let template = try SlipTemplate.load(path: template)
            let values = try parsedVariables()
            slips = try (1...count).map { index in
                let slipID = id.map { count == 1 ? $0 : "\($0)-\(index)" } ?? Slip.newID()
                return try template.makeSlip(values: values, id: slipID)
            }
        } catch {
            printError("\(error)")
            throw ExitCodes.badInput
        }

        let transport = try broker.makeTransport()
        let signing: SigningKeys?
        do {
            signing = try SigningKeys.fromEnvironment()
        } catch {
            printError("\(error)")
            throw ExitCodes.badInput
        }
        let limits: SlipLimits
        do {
            limits = try SlipLimits.fromEnvironment(ProcessInfo.processInfo.environment)
        } catch {
            printError("\(error)")
            throw ExitCodes.badInput
        }
        let sender = SlipSender(transport: transport, topology: broker.topology, limits: limits, signing: signing)
        do {
            let follower =
                wait ? try await SlipEventFollower.endEvents(
                    of: slips.map(\.id), transport: transport, topology: broker.topology) : nil
            // In batches: one confirm wait per batch rather than per slip.
            for start in stride(from: 0, to: slips.count, by: 500) {
                let batch = Array(slips[start..<min(start + 500, slips.count)])
                try await sender.send(batch)
                if !wait { for slip in batch { report(slipID: slip.id, event: nil) } }
            }
            guard let follower else {
                await transport.shutdown()
                return
            }
            var outcomes: [String: SlipEvent] = [:]
            let deadline = ContinuousClock.now.advanced(by: .seconds(timeout))
            while outcomes.count < slips.count, ContinuousClock.now < deadline,
                let event = await follower.next(timeout: ContinuousClock.now.duration(to: deadline))
            {
                guard outcomes[event.slipID] == nil else { continue }
                outcomes[event.slipID] = event
                report(slipID: event.slipID, event: event)
            }
            follower.stop()
            await transport.shutdown()
            let missing = slips.map(\.id).filter { outcomes[$0] == nil }
            if !missing.isEmpty {
                for slipID in missing { report(slipID: slipID, event: nil, timedOut: true) }
                printError("\(missing.count) slip(s) did not end within \(timeout) s")
                throw ExitCodes.unavailable
            }
            let parked = outcomes.values.filter { $0.kind == .parked }.count
            if parked > 0 {
                printError("\(parked) slip(s) parked in the dead-letter queue: see slip dlq list")
                throw ExitCodes.parked
            }
            if outcomes.values.contains(where: { $0.state != .completed }) { throw ExitCodes.slipNotCompleted }
        } catch let exit as ExitCode {
            throw exit
        } catch let rejection as SlipRejection {
            printError("the slip is not valid: \(rejection)")
            throw ExitCodes.badInput
        } catch {
            printError("\(error)")
            throw ExitCodes.unavailable
        }
    }

    private func report(slipID: String, event: SlipEvent?, timedOut: Bool = false) {
        if json {
            struct Parked: Encodable {
                var code: String
                var reason: String?
                var step: String
            }
            struct Line: Encodable {
                var slipId: String
                /// The final state, or "parked".
                var state: String?
                var parked: Parked?
                var fault: Fault?
                var timedOut: Bool?
                var createdAt: Date?
                var endedAt: Date?
                var hops: [LogEntry]?
            }
            printJSON(
                Line(
                    slipId: slipID, state: event.map { $0.kind == .parked ? "parked" : $0.state.rawValue },
                    parked: event.flatMap { $0.kind == .parked ? Parked(code: $0.outcome, reason: $0.reason, step: $0.step) : nil },
                    fault: event?.fault, timedOut: timedOut ? true : nil,
                    createdAt: event?.createdAt, endedAt: event?.at, hops: event?.log))
        } else if let event, event.kind == .parked {
            print("\(slipID) parked: \(event.outcome): \(event.reason ?? "no reason given")")
        } else if let event {
            var line = "\(slipID) \(event.state.rawValue)"
            if let fault = event.fault { line += " (fault at \(fault.step): \(fault.reason))" }
            print(line)
        } else if timedOut {
            print("\(slipID) unknown (timed out)")
        } else {
            print(slipID)
        }
    }
}

extension ExitCodes {
    /// `send --wait`: a slip was parked in the dead-letter queue instead of ending.
    static let parked = ExitCode(4)
}
