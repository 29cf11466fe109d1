import Foundation
import SegmenterCore

/// Handing the KPI chain from one leader to the next.
///
/// The chain's state moves with partition 0, but the copy a new leader opens may be behind what
/// was published: a snapshot taken minutes ago, or its own file from an earlier turn as leader.
/// The topic is the record of what was published, so a new leader reads it from where its copy
/// last saw it and continues each pair after the latest `seq` there.
extension KPIPublisher {
    /// The latest message of one pair found on the topic.
    public struct TopicMessage: Equatable, Sendable {
        public let seq: Int64
        public let value: Double?
        public init(seq: Int64, value: Double?) {
            self.seq = seq
            self.value = value
        }
    }

    /// Notes that one of this chain's messages was delivered at `offset` of `partition`; stored
    /// with the next publish.
    public func noteDelivered(partition: Int32, offset: Int64) {
        if offset > deliveredOffsets[partition] ?? -1 { deliveredOffsets[partition] = offset }
    }

    /// The pair and `seq` of a `segment-kpi-deltas` message (nil for anything else).
    public static func chainPosition(of message: [UInt8]) -> (KPIKey, TopicMessage)? {
        KPIDelta.chainPosition(of: message).map { ($0.key, TopicMessage(seq: $0.seq, value: $0.current)) }
    }

    /// Takes the chain over as the new leader, given the latest message per pair on the topic
    /// after `deliveredOffsets` and where that reading ended. Pairs published further by someone
    /// else continue from there; this database's unsent messages whose `seq` the topic already
    /// has are dropped (sending them would repeat a `seq` with other content; the next publish
    /// carries the current value, so nothing is lost: deltas coalesce). One transaction.
    /// - Returns: pairs moved forward and messages dropped.
    @discardableResult
    public func continueChain(after onTopic: [KPIKey: TopicMessage], readTo: [Int32: Int64]) throws -> (advanced: Int, dropped: Int) {
        var advanced: [(KPIKey, KPIChain.Link)] = []
        for (key, message) in onTopic where message.seq > chain.published[key]?.seq ?? 0 {
            advanced.append((key, KPIChain.Link(value: message.value, seq: message.seq)))
        }
        var stale: [Int64] = []
        let pending = try db.prepare("SELECT id, value FROM outbox WHERE topic = ?")
        pending.bind(1, topic)
        while try pending.step() {
            if let (key, message) = Self.chainPosition(of: pending.blob(1) ?? []), let latest = onTopic[key], message.seq <= latest.seq {
                stale.append(pending.int64(0))
            }
        }
        for (partition, offset) in readTo { noteDelivered(partition: partition, offset: offset) }
        try db.transaction {
            try savePublished(advanced)
            let delete = try db.prepare("DELETE FROM outbox WHERE id = ?")
            for id in stale {
                delete.reset()
                delete.bind(1, id)
                try delete.run()
            }
            try saveDeliveredOffsets()
        }
        for (key, state) in advanced { chain.published[key] = state }
        savedOffsets = deliveredOffsets
        return (advanced.count, stale.count)
    }
}
