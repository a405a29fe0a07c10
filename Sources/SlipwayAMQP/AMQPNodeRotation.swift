import Synchronization
import SlipwayTransport

/// Which node of a cluster a transport's next connection tries first. Shared by the transport's connections (its
/// publisher and its consumers), so that they move together: when one finds its node gone, the others, whose
/// connections to it fail too, do not try it again first.
final class AMQPNodeRotation: Sendable {
    let configuration: AMQPConfiguration
    private let current: Mutex<Int>

    init(_ configuration: AMQPConfiguration) {
        self.configuration = configuration
        let count = configuration.nodes.count
        current = Mutex(configuration.nodeOrder == .shuffled && count > 1 ? Int.random(in: 0..<count) : 0)
    }

    /// A connection to the first node that answers, from the current one on, round the list. Throws what every node
    /// said when none did: permanently only if every node refused for good (credentials or a certificate that no
    /// node accepts; a cluster's nodes share users and certificates).
    func connect() throws -> AMQPConnection {
        let nodes = configuration.nodes
        let start = current.withLock { $0 }
        var failures: [TransportError] = []
        for offset in 0..<nodes.count {
            let index = (start + offset) % nodes.count
            do {
                let connection = try AMQPConnection(configuration: configuration, node: nodes[index])
                connection.onBroken = { [weak self] in self?.lost(index) }
                current.withLock { $0 = index }
                return connection
            } catch let error as TransportError {
                failures.append(error)
            }
        }
        guard failures.count > 1 else { throw failures[0] }
        // One code for all when every node failed the same way (a password every node refuses); unreachable if not.
        let codes = Set(failures.map(\.code))
        throw TransportError(
            codes.count == 1 ? failures[0].code : .unreachable,
            "no node of the cluster answered: " + failures.map(\.message).joined(separator: "; "),
            permanent: failures.allSatisfy(\.isPermanent))
    }

    /// The connection to node `index` failed: the next connection tries the node after it first. (If the node is
    /// still up, moving costs nothing; if it is gone, trying it again first would cost a connect timeout.)
    func lost(_ index: Int) {
        let count = configuration.nodes.count
        current.withLock { if $0 == index { $0 = (index + 1) % count } }
    }
}
