@testable import SlipwayAMQP
import Testing

/// The publisher's confirm bookkeeping, driven event by event: which callers resume, fail, or have their messages
/// sent again.
@Suite("Publisher confirms: acks, connection losses, deadlines")
struct PublisherConfirmsTests {
    let start = ContinuousClock.now
    let deadline = Duration.seconds(60)

    /// A machine with `requests` (name, message count) asked for at `start`, sent on a fresh connection.
    func sent(_ requests: [(String, Int)]) -> PublisherConfirms<String> {
        var confirms = PublisherConfirms<String>()
        for (name, count) in requests { confirms.asked(name, messageCount: count, giveUpAt: start + deadline) }
        confirms.connected()
        sendAll(&confirms)
        return confirms
    }

    /// Sends every request waiting, as the publisher does; returns their names in the order sent.
    @discardableResult
    func sendAll(_ confirms: inout PublisherConfirms<String>) -> [String] {
        var order: [String] = []
        while let next = confirms.nextToSend {
            order.append(next)
            confirms.sentNext()
        }
        return order
    }

    @Test("single acks in order resume each request as its tag is confirmed")
    func singleAcksInOrder() {
        var confirms = sent([("a", 1), ("b", 1), ("c", 1)])
        #expect(confirms.acked(1, multiple: false) == ["a"])
        #expect(confirms.acked(2, multiple: false) == ["b"])
        #expect(confirms.acked(3, multiple: false) == ["c"])
        #expect(!confirms.hasUnconfirmed)
    }

    @Test("a single ack out of order waits for the tags below it")
    func singleAcksOutOfOrder() {
        var confirms = sent([("a", 1), ("b", 1), ("c", 1)])
        #expect(confirms.acked(3, multiple: false).isEmpty)
        #expect(confirms.acked(2, multiple: false).isEmpty)
        #expect(confirms.acked(1, multiple: false) == ["a", "b", "c"])
    }

    @Test("a multiple ack resumes every request it covers, in order, and no other")
    func multipleAck() {
        var confirms = sent([("a", 1), ("b", 2), ("c", 1), ("d", 1)])  // tags 1, 2-3, 4, 5
        #expect(confirms.acked(4, multiple: true) == ["a", "b", "c"])
        #expect(confirms.hasUnconfirmed)
        #expect(confirms.acked(5, multiple: true) == ["d"])
    }

    @Test("a multiple ack that ends inside a request leaves it waiting for the rest of its messages")
    func multipleAckInsideARequest() {
        var confirms = sent([("a", 1), ("b", 3)])  // tags 1, 2-4
        #expect(confirms.acked(3, multiple: true) == ["a"])
        #expect(confirms.acked(4, multiple: false) == ["b"])
    }

    @Test("a request of N messages completes only once all N are confirmed, in whatever order")
    func requestOfSeveralMessages() {
        var confirms = sent([("batch", 4)])
        #expect(confirms.acked(2, multiple: false).isEmpty)
        #expect(confirms.acked(4, multiple: false).isEmpty)
        #expect(confirms.acked(1, multiple: false).isEmpty)
        #expect(confirms.acked(3, multiple: false) == ["batch"])
    }

    @Test("single acks above a gap count once a multiple ack closes it")
    func singleAcksThenMultiple() {
        var confirms = sent([("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)])
        #expect(confirms.acked(4, multiple: false).isEmpty)
        #expect(confirms.acked(2, multiple: true) == ["a", "b"])
        #expect(confirms.acked(3, multiple: false) == ["c", "d"])
        #expect(confirms.acked(5, multiple: false) == ["e"])
    }

    @Test("an ack repeated, or for tags already confirmed, resumes nothing twice")
    func repeatedAcks() {
        var confirms = sent([("a", 1), ("b", 1)])
        #expect(confirms.acked(1, multiple: false) == ["a"])
        #expect(confirms.acked(1, multiple: false).isEmpty)
        #expect(confirms.acked(1, multiple: true).isEmpty)
        #expect(confirms.acked(2, multiple: true) == ["b"])
        #expect(confirms.acked(2, multiple: true).isEmpty)
    }

    @Test("on a connection loss, what was not confirmed is sent again first, in order, with the new connection's tags")
    func connectionLossResends() {
        var confirms = sent([("a", 1), ("b", 2), ("c", 1)])  // tags 1, 2-3, 4
        #expect(confirms.acked(1, multiple: false) == ["a"])
        confirms.asked("d", messageCount: 1, giveUpAt: start + deadline)  // asked while the connection was up
        confirms.connectionLost()
        confirms.asked("e", messageCount: 1, giveUpAt: start + deadline)  // asked while it was down
        #expect(!confirms.hasUnconfirmed)

        confirms.connected()
        #expect(sendAll(&confirms) == ["b", "c", "d", "e"])
        // b now holds tags 1-2: an ack for 2 alone (b's last tag on the lost connection was 3) completes nothing.
        #expect(confirms.acked(2, multiple: false).isEmpty)
        #expect(confirms.acked(1, multiple: false) == ["b"])
        #expect(confirms.acked(5, multiple: true) == ["c", "d", "e"])
    }

    @Test("acks that come with no connection are ignored: their tags belonged to the one lost")
    func acksOfALostConnection() {
        var confirms = sent([("a", 1), ("b", 1)])
        confirms.connectionLost()
        #expect(confirms.acked(2, multiple: true).isEmpty)

        confirms.connected()
        sendAll(&confirms)
        #expect(confirms.acked(1, multiple: false) == ["a"])
        #expect(confirms.acked(2, multiple: false) == ["b"])
    }

    @Test("out-of-order acks of a lost connection do not count on the next one")
    func pendingSingleAcksForgottenOnReconnect() {
        var confirms = sent([("a", 1), ("b", 1)])
        #expect(confirms.acked(2, multiple: false).isEmpty)  // waits for 1, which never comes
        confirms.connectionLost()
        confirms.connected()
        sendAll(&confirms)
        #expect(confirms.acked(1, multiple: false) == ["a"])  // b is tag 2 now, and not confirmed yet
        #expect(confirms.acked(2, multiple: false) == ["b"])
    }

    @Test("the oldest request sent is overdue from its deadline on")
    func confirmOverdue() {
        var confirms = PublisherConfirms<String>()
        confirms.asked("a", messageCount: 1, giveUpAt: start + .seconds(10))
        confirms.asked("b", messageCount: 1, giveUpAt: start + .seconds(20))
        #expect(!confirms.isConfirmOverdue(at: start + .seconds(30)))  // nothing sent yet
        confirms.connected()
        sendAll(&confirms)
        #expect(confirms.firstUnconfirmedDeadline == start + .seconds(10))
        #expect(!confirms.isConfirmOverdue(at: start + .seconds(9)))
        #expect(confirms.isConfirmOverdue(at: start + .seconds(10)))
        #expect(confirms.acked(1, multiple: false) == ["a"])
        #expect(!confirms.isConfirmOverdue(at: start + .seconds(10)))
    }

    @Test("past their deadline, the requests waiting to be sent give up; the others stay, in order")
    func deadlineGiveUp() {
        var confirms = PublisherConfirms<String>()
        confirms.asked("a", messageCount: 1, giveUpAt: start + .seconds(10))
        confirms.asked("b", messageCount: 1, giveUpAt: start + .seconds(30))
        confirms.asked("c", messageCount: 1, giveUpAt: start + .seconds(20))
        #expect(confirms.firstUnsentDeadline == start + .seconds(10))
        #expect(confirms.expired(at: start + .seconds(5)).isEmpty)
        #expect(confirms.expired(at: start + .seconds(20)) == ["a", "c"])
        #expect(confirms.firstUnsentDeadline == start + .seconds(30))
        confirms.connected()
        #expect(sendAll(&confirms) == ["b"])
    }

    @Test("requests sent on a lost connection give up at their deadline too")
    func deadlineAfterLoss() {
        var confirms = PublisherConfirms<String>()
        confirms.asked("a", messageCount: 1, giveUpAt: start + .seconds(10))
        confirms.asked("b", messageCount: 1, giveUpAt: start + .seconds(30))
        confirms.connected()
        sendAll(&confirms)
        confirms.connectionLost()
        #expect(confirms.expired(at: start + .seconds(10)) == ["a"])
        #expect(confirms.hasUnsent)
    }

    @Test("an error that trying again cannot help fails every request not confirmed")
    func removeUnsent() {
        var confirms = sent([("a", 1), ("b", 1)])
        confirms.asked("c", messageCount: 1, giveUpAt: start + deadline)
        confirms.connectionLost()
        #expect(confirms.removeUnsent() == ["a", "b", "c"])
        #expect(!confirms.hasUnsent && !confirms.hasUnconfirmed)
    }

    @Test("time blocked by the broker does not count against the deadlines it overlapped")
    func blockedTimeExtendsDeadlines() {
        var confirms = PublisherConfirms<String>()
        // a asked at start, b 20 s later; the broker blocks from 10 s to 40 s.
        confirms.asked("a", messageCount: 1, giveUpAt: start + deadline)
        confirms.connected()
        sendAll(&confirms)
        confirms.asked("b", messageCount: 1, giveUpAt: start + .seconds(20) + deadline)
        confirms.extendDeadlines(blockedSince: start + .seconds(10), now: start + .seconds(40), deadline: deadline)
        // a waited 30 s of the block, b the 20 s after it was asked for.
        #expect(confirms.firstUnconfirmedDeadline == start + .seconds(90))
        #expect(confirms.firstUnsentDeadline == start + .seconds(100))
    }
}
