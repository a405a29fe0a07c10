import Slipway
import SlipwayTesting
import Testing

/// A processor under the broker's resource alarm (publishers blocked).
@Suite("Blocked publishers")
struct BlockedPublishersTests {
    @Test("while the broker blocks publishers a processor starts no hop; once it unblocks, every slip completes once")
    func blockedPublishersStartNoHop() async throws {
        try await withSaga(skipping: Set(Saga.steps)) { saga in
            let slips = (1...6).map { _ in saga.slip(["a", "b"]) }
            let sender = saga.sender()
            try await sender.send(slips)  // queued before the alarm; the producer would wait too
            await saga.broker.blockPublishers()
            await saga.startAll(skipping: ["c", "d"])
            // The processor has the deliveries in hand and waits: a hop started now could not forward its slip.
            let queue = saga.topology.executeQueue(step: "a")
            let deadline = ContinuousClock.now.advanced(by: patience)
            while await saga.broker.unackedCount(queue) == 0 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            try await Task.sleep(for: .milliseconds(200))
            for slip in slips { #expect(await saga.effects.effects(of: slip.id).isEmpty) }

            let follower = try await SlipEventFollower.terminalEvents(
                of: slips.map(\.id), transport: saga.producer(), topology: saga.topology)
            defer { follower.stop() }
            await saga.broker.unblockPublishers()
            var ended: Set<String> = []
            while ended.count < slips.count, let event = await follower.next(timeout: patience) {
                #expect(event.state == .completed)
                ended.insert(event.slipID)
            }
            #expect(ended.count == slips.count)
            for slip in slips {
                #expect(await saga.effects.effects(of: slip.id) == [.executed("a", attempt: 1), .executed("b", attempt: 1)])
            }
        }
    }
}
