@testable import SlipwayAMQP
import Testing

/// The consumer's delivery bookkeeping, driven event by event: what is sent for the hops' settlements, which are
/// dropped, and how a start and a stop end.
@Suite("Consumer deliveries: settlements, connections, stopping")
struct ConsumerDeliveriesTests {
    typealias Sends = ConsumerDeliveries.Sends
    typealias Ack = ConsumerDeliveries.Ack

    /// Consuming on a first connection, with deliveries `tags` received.
    func consuming(_ tags: [UInt64]) -> ConsumerDeliveries {
        var deliveries = ConsumerDeliveries()
        _ = deliveries.connected()
        for tag in tags { _ = deliveries.received(tag) }
        return deliveries
    }

    func acks(_ tags: [UInt64], generation: Int = 1) -> [ConsumerDeliveries.Requested] {
        tags.map { (generation, .ack($0)) }
    }

    @Test("acks below every open delivery go as one multiple ack")
    func multipleAck() {
        var deliveries = consuming([1, 2, 3, 4])
        #expect(deliveries.settled(acks([3, 1, 2])) == Sends(ack: Ack(tag: 3, multiple: true)))
        #expect(deliveries.settled(acks([4])) == Sends(ack: Ack(tag: 4, multiple: false)))
    }

    @Test("acks above a delivery still open go one by one; once it is settled, the next multiple ack covers it")
    func acksAboveAnOpenDelivery() {
        var deliveries = consuming([1, 2, 3, 4, 5])
        #expect(deliveries.settled(acks([1, 3, 5])) == Sends(ack: Ack(tag: 1, multiple: false), singleAcks: [3, 5]))
        #expect(deliveries.settled(acks([4, 2])) == Sends(ack: Ack(tag: 4, multiple: true)))
    }

    @Test("releases go one by one, in the order asked, and free the acks above them for a multiple ack")
    func releases() {
        var deliveries = consuming([1, 2, 3, 4])
        let batch: [ConsumerDeliveries.Requested] = [(1, .release(2)), (1, .ack(4)), (1, .release(1)), (1, .ack(3))]
        #expect(deliveries.settled(batch) == Sends(releases: [2, 1], ack: Ack(tag: 4, multiple: true)))
    }

    @Test("nothing settled, nothing sent")
    func emptyBatch() {
        var deliveries = consuming([1])
        #expect(deliveries.settled([]).isEmpty)
    }

    @Test("settlements of a lost connection's deliveries are dropped, during the outage and after the reconnect")
    func settlementsOfALostConnection() {
        var deliveries = consuming([1, 2])
        deliveries.connectionLost()
        #expect(deliveries.settled(acks([1])).isEmpty)
        #expect(deliveries.connected() == false)  // a reconnect, not a start
        #expect(deliveries.generation == 2)
        _ = deliveries.received(1)
        // Tag 2 of the first connection, and tag 1 asked by a hop of it, mean nothing here.
        #expect(deliveries.settled(acks([2, 1], generation: 1)).isEmpty)
        #expect(deliveries.settled(acks([1], generation: 2)) == Sends(ack: Ack(tag: 1, multiple: false)))
    }

    @Test("the deliveries still open on a lost connection do not hold back acks on the next one")
    func openTagsForgottenOnReconnect() {
        var deliveries = consuming([1, 2, 3])
        deliveries.connectionLost()
        _ = deliveries.connected()
        for tag: UInt64 in [5, 6] { _ = deliveries.received(tag) }
        #expect(deliveries.settled(acks([5, 6], generation: 2)) == Sends(ack: Ack(tag: 6, multiple: true)))
    }

    @Test("the first connection starts the consumer; a start refused for good is abandoned, a passing refusal retried")
    func starting() {
        var refused = ConsumerDeliveries()
        #expect(refused.connectFailed(passing: false) == .abandonStart)
        #expect(refused.isFinished)

        var waiting = ConsumerDeliveries()
        #expect(waiting.connectFailed(passing: true) == .retry)
        #expect(waiting.phase == .starting)
        let started = waiting.connected()
        #expect(started)
        #expect(waiting.phase == .consuming)
        #expect(waiting.generation == 1)
    }

    @Test("once consuming, every failed reconnect is retried")
    func reconnecting() {
        var deliveries = consuming([])
        deliveries.connectionLost()
        #expect(deliveries.connectFailed(passing: false) == .retry)
        #expect(deliveries.mayReconnect)
    }

    @Test("a stop finishes the stream once; deliveries after it stay open, unacknowledged, and hold back later acks")
    func stopping() {
        var deliveries = consuming([1, 2])
        #expect(deliveries.stopRequested() == .finishStream)
        #expect(deliveries.stopRequested() == .nothing)
        #expect(deliveries.phase == .stopped)
        #expect(deliveries.received(3) == false)
        // The hops still settle what they had: 1 and 2 together, 4 behind the unacknowledged 3.
        _ = deliveries.received(4)
        #expect(deliveries.settled(acks([2, 1, 4])) == Sends(ack: Ack(tag: 2, multiple: true), singleAcks: [4]))
    }

    @Test("a stopped consumer that loses its connection finishes instead of reconnecting")
    func stoppedAndLost() {
        var deliveries = consuming([1])
        _ = deliveries.stopRequested()
        deliveries.connectionLost()
        #expect(!deliveries.mayReconnect)
    }

    @Test("a stop before the first connection abandons the start")
    func stopBeforeStart() {
        var deliveries = ConsumerDeliveries()
        #expect(deliveries.stopRequested() == .abandonStart)
        #expect(deliveries.isFinished)
        #expect(deliveries.stopRequested() == .nothing)
    }

    @Test("a finished consumer sends nothing more")
    func finished() {
        var deliveries = consuming([1])
        deliveries.finished()
        #expect(deliveries.isFinished)
        #expect(deliveries.settled(acks([1])).isEmpty)
    }
}
