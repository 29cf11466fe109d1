import Foundation
import KafkaIO

/// `segmenter dev-broker`: librdkafka's mock cluster, reachable on a fixed loopback port.
///
/// The mock binds ephemeral ports only, so a small forwarder listens on the requested port
/// and relays to the first mock broker; clients then learn every broker's real address from
/// the metadata the broker sends back, and connect to them directly.
public final class DevBroker: @unchecked Sendable {
    public let cluster: MockCluster
    private var forwarder: LoopbackForwarder?

    public init(brokers: Int32, partitions: Int32, topics: [String]) throws {
        cluster = try MockCluster(brokers: brokers)
        for topic in topics { try cluster.createTopic(topic, partitions: partitions) }
    }

    /// The address clients should use: the fixed port if one was opened, else the mock's own.
    public var bootstrapServers: String {
        forwarder.map { "127.0.0.1:\($0.port)" } ?? cluster.bootstrapServers
    }

    public func listen(port: UInt16) throws {
        let target = cluster.bootstrapServers.split(separator: ",")[0]
        let parts = target.split(separator: ":")
        guard let targetPort = UInt16(parts.last ?? "") else { throw DevToolError("unexpected mock bootstrap \(target)") }
        forwarder = try LoopbackForwarder(listenPort: port, targetPort: targetPort)
    }
}
