import Foundation
@testable import Slipway
import SlipwayTesting
import Testing

/// Retries with backoff, timeouts, deadlines, terminate and revise, over the in-memory broker (which simulates the delay
/// queues' message TTL and dead-lettering).
@Suite("Failure semantics")
struct FailureSemanticsTests {
    @Test("a step failing twice then succeeding completes on attempt 3, each retry waiting at least the policy's delay")
    func retriesWaitAtLeastThePolicy() async throws {
        try await withSaga { saga in
            var slip = saga.slip(arguments: ["b": ["throwTimes": 2]])
            slip.itinerary[1].retry = RetryPolicy(maxAttempts: 4, initialDelayMs: 150, multiplier: 2, maxDelayMs: 10_000, jitter: 0.5)
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)

            #expect(event.state == .completed)
            let tries = (event.log ?? []).filter { $0.step == "b" }
            #expect(tries.map(\.attempt) == [1, 2, 3])
            #expect(tries.map(\.outcome) == [.retried, .retried, .completed])
            let policy = slip.itinerary[1].retry!
            for (index, pair) in zip(tries, tries.dropFirst()).enumerated() {
                let waited = pair.1.startedAt.timeIntervalSince(pair.0.startedAt) * 1000
                #expect(waited >= Double(policy.baseDelayMs(afterAttempt: index + 1)), "retry \(index + 1) waited \(waited) ms")
            }
            // The attempt count starts again at the next step.
            #expect((event.log ?? []).filter { $0.step == "c" }.map(\.attempt) == [1])
        }
    }

    @Test("the retry delay grows by the multiplier, is capped, and jitter only ever adds")
    func backoffArithmetic() {
        let policy = RetryPolicy(maxAttempts: 10, initialDelayMs: 100, multiplier: 3, maxDelayMs: 1_000, jitter: 0.2)
        #expect((1...4).map { policy.baseDelayMs(afterAttempt: $0) } == [100, 300, 900, 1_000])
        #expect(policy.delayMs(afterAttempt: 2, random: 0) == 300)
        #expect(policy.delayMs(afterAttempt: 2, random: 0.999) == 359)
        #expect(DelayGrid.level(forMs: 300) >= 300 && Double(DelayGrid.level(forMs: 300)) <= 330)
        #expect(RetryPolicy.immediate(maxAttempts: 3).delayMs(afterAttempt: 2, random: 0.5) == 0)
    }

    @Test("a step that outlives its timeout is cancelled, retried, and faults after its last attempt")
    func timeoutCountsAsAFailedAttempt() async throws {
        try await withSaga { saga in
            var slip = saga.slip(arguments: ["b": ["sleepMs": 5_000]])
            slip.itinerary[1].timeoutMs = 100
            slip.itinerary[1].retry = .immediate(maxAttempts: 2)
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)

            #expect(event.state == .compensated)
            #expect(event.fault?.step == "b")
            #expect(event.fault?.reason.contains("timeout") == true)
            #expect((event.log ?? []).filter { $0.step == "b" }.map(\.outcome) == [.retried, .faulted])
            #expect(await saga.effects.effects(of: slip.id) == [.executed("a", attempt: 1), .compensated("a")])
        }
    }

    @Test("a step that finishes within its timeout on a later attempt completes")
    func timeoutThenSuccess() async throws {
        try await withSaga { saga in
            var slip = saga.slip(arguments: ["b": ["sleepMs": 5_000, "sleepTimes": 1]])
            slip.itinerary[1].timeoutMs = 200
            slip.itinerary[1].retry = .immediate(maxAttempts: 3)
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)
            #expect(event.state == .completed)
            #expect((event.log ?? []).filter { $0.step == "b" }.map(\.outcome) == [.retried, .completed])
        }
    }

    @Test(
        "a handler that finishes within its timeout stops the timer, which would otherwise sleep out the timeout",
        .timeLimit(.minutes(1)))
    func finishedHandlerStopsItsTimer() async throws {
        let (timerStopped, stop) = AsyncStream.makeStream(of: Void.self)
        // The timer: sleeps until cancelled, then says so.
        let sleep: @Sendable (Duration) async throws -> Void = { _ in
            let (forever, _) = AsyncStream.makeStream(of: Void.self)
            await withTaskCancellationHandler {
                for await _ in forever {}
            } onCancel: {
                stop.yield()
            }
        }
        let answer = try await withTimeout(.seconds(3_600), sleep: sleep) { 42 }
        #expect(answer == 42)
        var stops = timerStopped.makeAsyncIterator()
        #expect(await stops.next() != nil, "the timer was cancelled")
    }

    @Test("a slip past its deadline runs no further step and compensates what was done")
    func deadlineStopsTheSlip() async throws {
        try await withSaga { saga in
            // The processors are serving before the clock starts (a loaded machine can take seconds to get there).
            let warmUp = saga.slip()
            #expect(try await saga.sender().sendAndWait(warmUp, timeout: patience).state == .completed)
            // b takes longer than the slip has left: c never starts, a and b are undone.
            var slip = saga.slip(arguments: ["b": ["sleepMs": 4_000]])
            slip.deadline = Date().addingTimeInterval(2)
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)

            #expect(event.state == .compensated)
            #expect(event.fault?.step == "c")
            #expect(event.fault?.reason.contains("deadline") == true)
            #expect(
                await saga.effects.effects(of: slip.id) == [
                    .executed("a", attempt: 1), .executed("b", attempt: 1), .compensated("b"), .compensated("a"),
                ])
        }
    }

    @Test("a step that terminates the slip ends it at once: no further steps, nothing compensated")
    func terminateEndsWithoutCompensation() async throws {
        try await withSaga { saga in
            let slip = saga.slip(arguments: ["b": ["terminate": "the customer cancelled"]])
            let event = try await saga.sender().sendAndWait(slip, timeout: patience)

            #expect(event.state == .terminated)
            #expect(event.fault == nil)
            #expect(await saga.effects.effects(of: slip.id) == [.executed("a", attempt: 1), .executed("b", attempt: 1)])
            #expect(event.log?.last?.outcome == .terminated)
            #expect(event.log?.last?.reason == "the customer cancelled")
        }
    }

    @Test("a step can remove steps still to come, or insert steps to run next")
    func reviseChangesTheStepsToCome() async throws {
        try await withSaga { saga in
            let removed = saga.slip(arguments: ["a": ["removeSteps": ["c"]]])
            let first = try await saga.sender().sendAndWait(removed, timeout: patience)
            #expect(first.state == .completed)
            #expect(
                await saga.effects.effects(of: removed.id) == [
                    .executed("a", attempt: 1), .executed("b", attempt: 1), .executed("d", attempt: 1),
                ])
            #expect(first.log?.first?.reason?.contains("removed") == true)

            let inserted = saga.slip(["a", "b"], arguments: ["a": ["insertNext": ["d"]]])
            let second = try await saga.sender().sendAndWait(inserted, timeout: patience)
            #expect(second.state == .completed)
            #expect(
                await saga.effects.effects(of: inserted.id) == [
                    .executed("a", attempt: 1), .executed("d", attempt: 1), .executed("b", attempt: 1),
                ])
        }
    }

    @Test("a retry policy that breaks the rules is refused when the slip is sent")
    func invalidPolicyIsRefused() async throws {
        try await withSaga { saga in
            var slip = saga.slip()
            slip.itinerary[0].retry = RetryPolicy(maxAttempts: 0)
            await #expect(throws: SlipRejection.self) { try await saga.sender().send(slip) }
        }
    }
}
