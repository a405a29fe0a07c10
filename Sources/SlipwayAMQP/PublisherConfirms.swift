/// The publisher's bookkeeping of confirms, without I/O: which requests wait to be sent, which delivery tags each took
/// on the current connection, which of those the broker has confirmed, and which requests ran out of time.
///
/// Events go in (a request asked for, a request sent, a `basic.ack`, the connection lost, the clock) and what to do
/// comes out: the requests to resume, to fail, to send (again). `AMQPPublisher` does the I/O and carries that out.
/// Generic over the request, so that tests drive it without a broker or a continuation.
///
/// Owned by the loop's thread: a value inside the publisher, never shared.
struct PublisherConfirms<Request> {
    private struct Entry {
        let request: Request
        let messageCount: Int
        var giveUpAt: ContinuousClock.Instant
        /// The delivery tag of its last message on the current connection, once sent.
        var lastTag: UInt64 = 0
    }

    /// Waiting to be sent, in order: what was sent on a lost connection first, then the new requests.
    private var unsent: [Entry] = []
    /// Sent on the current connection and not wholly confirmed, in tag order.
    private var unconfirmed: [Entry] = []
    private var isConnected = false
    /// The delivery tag the next message sent on this connection takes (the broker numbers them from 1).
    private var nextTag: UInt64 = 1
    /// Every tag below this is confirmed.
    private var confirmedBelow: UInt64 = 1
    /// Tags confirmed one by one (single acks, out of order) above a gap below them, ascending: they count once the
    /// gap closes. An array: acks come nearly in order, so it stays short and sorted by appending.
    private var confirmedAbove: [UInt64] = []

    var hasUnsent: Bool { !unsent.isEmpty }
    var hasUnconfirmed: Bool { !unconfirmed.isEmpty }
    /// When the oldest request waiting to be sent gives up.
    var firstUnsentDeadline: ContinuousClock.Instant? { unsent.first?.giveUpAt }
    /// When the oldest request waiting for its confirm gives up.
    var firstUnconfirmedDeadline: ContinuousClock.Instant? { unconfirmed.first?.giveUpAt }

    /// A caller asked to publish `messageCount` messages (at least one), and waits until `giveUpAt` at most.
    mutating func asked(_ request: Request, messageCount: Int, giveUpAt: ContinuousClock.Instant) {
        unsent.append(Entry(request: request, messageCount: messageCount, giveUpAt: giveUpAt))
    }

    /// A new connection, with confirms enabled: its delivery tags start again from 1.
    mutating func connected() {
        isConnected = true
        nextTag = 1
        confirmedBelow = 1
        confirmedAbove.removeAll(keepingCapacity: true)
    }

    /// The request to send next, if any: its messages go on the wire in order, then `sentNext()`.
    var nextToSend: Request? { unsent.first?.request }

    /// The messages of `nextToSend` were sent on the current connection: they took the next delivery tags, and the
    /// request waits for their confirms.
    mutating func sentNext() {
        assert(isConnected, "sent without a connection")
        var entry = unsent.removeFirst()
        nextTag += UInt64(entry.messageCount)
        entry.lastTag = nextTag - 1
        unconfirmed.append(entry)
    }

    /// `basic.ack` for `tag`, or for every tag up to it (`multiple`). Returns the requests whose messages are all
    /// confirmed now, in the order they were sent (a request completes only after those sent before it).
    mutating func acked(_ tag: UInt64, multiple: Bool) -> [Request] {
        guard isConnected else { return [] }  // a lost connection's tags mean nothing any more
        if multiple {
            confirmedBelow = max(confirmedBelow, tag + 1)
            confirmedAbove.removeAll { $0 < confirmedBelow }
        } else if tag >= confirmedBelow {
            var index = confirmedAbove.endIndex
            while index > 0, confirmedAbove[index - 1] > tag { index -= 1 }
            if index == 0 || confirmedAbove[index - 1] != tag { confirmedAbove.insert(tag, at: index) }
        }
        var closed = 0
        while closed < confirmedAbove.count, confirmedAbove[closed] == confirmedBelow {
            closed += 1
            confirmedBelow += 1
        }
        if closed > 0 { confirmedAbove.removeFirst(closed) }

        var done = 0
        while done < unconfirmed.count, unconfirmed[done].lastTag < confirmedBelow { done += 1 }
        guard done > 0 else { return [] }
        let requests = unconfirmed[..<done].map(\.request)
        unconfirmed.removeFirst(done)
        return requests
    }

    /// The connection is gone (failed, closed by the broker, or given up on): what it sent and did not see confirmed is
    /// to be sent again on the next one, first and in the same order, with that connection's tags.
    mutating func connectionLost() {
        isConnected = false
        unsent.insert(contentsOf: unconfirmed, at: 0)
        unconfirmed.removeAll(keepingCapacity: true)
    }

    /// True when the oldest request sent has waited for its confirm until its deadline.
    func isConfirmOverdue(at now: ContinuousClock.Instant) -> Bool {
        unconfirmed.first.map { now >= $0.giveUpAt } ?? false
    }

    /// Removes and returns the requests waiting to be sent whose deadline has come: they fail.
    mutating func expired(at now: ContinuousClock.Instant) -> [Request] {
        guard unsent.contains(where: { $0.giveUpAt <= now }) else { return [] }
        let expired = unsent.filter { $0.giveUpAt <= now }.map(\.request)
        unsent.removeAll { $0.giveUpAt <= now }
        return expired
    }

    /// Removes and returns every request waiting to be sent: they fail (an error that trying again cannot help).
    mutating func removeUnsent() -> [Request] {
        defer { unsent.removeAll() }
        return unsent.map(\.request)
    }

    /// The broker blocked publishing from `since` until `now`: that time does not count against any deadline.
    mutating func extendDeadlines(blockedSince since: ContinuousClock.Instant, now: ContinuousClock.Instant, deadline: Duration) {
        for index in unsent.indices {
            unsent[index].giveUpAt = unsent[index].giveUpAt.extended(blockedSince: since, now: now, deadline: deadline)
        }
        for index in unconfirmed.indices {
            unconfirmed[index].giveUpAt = unconfirmed[index].giveUpAt.extended(
                blockedSince: since, now: now, deadline: deadline)
        }
    }
}

extension ContinuousClock.Instant {
    /// This give-up instant of something asked for `deadline` before it, moved later by the part of a block (from
    /// `since` to `now`) that came after it was asked for.
    func extended(blockedSince since: ContinuousClock.Instant, now: ContinuousClock.Instant, deadline: Duration)
        -> ContinuousClock.Instant
    {
        let asked = advanced(by: .zero - deadline)
        let waited = max(since, asked).duration(to: now)
        return waited > .zero ? advanced(by: waited) : self
    }
}
