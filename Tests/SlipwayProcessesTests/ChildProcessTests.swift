import Foundation
import SlipwayProcesses
import Testing

@Suite("Child processes")
struct ChildProcessTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-processes-\(UUID())").path

    init() throws { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }

    func shell(_ script: String, output: Output, errors: Output? = nil, group: Bool = false) throws -> ChildProcess {
        try ChildProcess.spawn(
            "/bin/sh", arguments: ["-c", script], environment: ["PATH": "/usr/bin:/bin"], output: output,
            errors: errors, ownProcessGroup: group)
    }

    @Test("exit codes, and output truncated, appended or split")
    func exitAndOutput() async throws {
        let log = "\(directory)/out.log"
        try "old\n".write(toFile: log, atomically: true, encoding: .utf8)
        let appending = try shell("echo one; echo two >&2; exit 3", output: .append(log))
        #expect(await appending.exitStatus() == .exited(3))
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "old\none\ntwo\n")
        let errors = "\(directory)/err.log"
        let split = try shell("echo three; echo four >&2", output: .truncate(log), errors: .truncate(errors))
        #expect(await split.exitStatus() == .exited(0))
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "three\n")
        #expect(try String(contentsOfFile: errors, encoding: .utf8) == "four\n")
    }

    @Test("stop: SIGTERM, then SIGKILL once the grace period is over")
    func stop() async throws {
        let polite = try shell("exec sleep 30", output: .truncate("/dev/null"))
        #expect(await polite.stop(grace: .seconds(5)) == .signaled(SIGTERM))
        #expect(polite.status?.code == 128 + SIGTERM)
        let stubborn = try shell("trap '' TERM; sleep 30 & wait; sleep 30", output: .truncate("/dev/null"), group: true)
        try await Task.sleep(for: .milliseconds(200))
        #expect(await stubborn.stop(grace: .milliseconds(300)) == .signaled(SIGKILL))
        // Stopping an ended child only tells how it ended.
        #expect(stubborn.stopBlocking(grace: .zero) == .signaled(SIGKILL))
    }

    @Test("blocking waits time out; a missing executable is an error that names it")
    func blockingAndErrors() throws {
        let child = try shell("sleep 30", output: .truncate("/dev/null"))
        #expect(child.waitBlocking(timeout: .milliseconds(100)) == nil)
        #expect(child.isRunning)
        child.send(SIGKILL)
        #expect(child.waitBlocking() == .signaled(SIGKILL))
        let error = #expect(throws: SpawnError.self) {
            try ChildProcess.spawn("/no/such", environment: [:], output: .inherit, name: "ghost")
        }
        #expect(error?.description == "cannot start ghost (/no/such): No such file or directory")
    }
}
