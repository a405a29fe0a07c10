import ArgumentParser
import Foundation
import Slipway

struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a slip (JSON, as on the wire) the way a processor would, and say why it is refused.")

    @Argument(help: "A file with one slip as JSON, or - for standard input.")
    var file: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let body: Data
        if file == "-" {
            body = FileHandle.standardInput.readDataToEndOfFile()
        } else if let handle = FileHandle(forReadingAtPath: file), let data = try? handle.readToEnd() ?? Data() {
            body = data  // readToEnd() says nil for an empty file. A FileHandle also reads pipes, e.g. <(curl ...).
        } else {
            let why = FileManager.default.fileExists(atPath: file) ? "not readable, or a directory" : "no such file"
            printError("cannot read '\(file)': \(why)")
            throw ExitCodes.badInput
        }
        struct Verdict: Encodable {
            var valid: Bool
            var slipId: String?
            var code: String?
            var reason: String?
        }
        do throws(SlipRejection) {
            guard body.contains(where: { !" \t\r\n".utf8.contains($0) }) else {
                throw SlipRejection(.malformed, "\(file == "-" ? "the input" : "'\(file)'") is empty")
            }
            let slip = try SlipCodec().decode(body)
            if json {
                printJSON(Verdict(valid: true, slipId: slip.id))
            } else {
                print("valid: slip \(slip.id), \(slip.state.rawValue), next hop: \(slip.nextHop.map { "\($0.kind) \($0.step)" } ?? "none")")
            }
        } catch {
            if json {
                printJSON(Verdict(valid: false, code: error.code.rawValue, reason: error.reason))
            } else {
                printError("refused (\(error.code.rawValue)): \(error.reason)")
            }
            throw ExitCodes.badInput
        }
    }
}
