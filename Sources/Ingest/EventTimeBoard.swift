import Foundation
import KafkaIO
import SegmenterCore

/// Per input partition, how old an event can be before the store rejects it as older than the
/// dedupe horizon, shared by the commit thread (which seeds it from the state when a partition
/// is assigned) and the poll thread (which raises it as it decodes). The poll thread drops a
/// valid event's payload once decoded, but keeps it for an event this board says may be
/// rejected: its dead letter quotes it.
///
/// The poll thread sees every event before the commit thread applies it, so its view is never
/// behind the state's; and each input partition's own latest event is never behind its pair's
/// watermark (the smaller of the two), which the store judges by: every event the store rejects
/// had its payload kept.
final class EventTimeBoard: @unchecked Sendable {
    private let lock = NSLock()
    private var latest: [TopicPartition: Instant] = [:]
    private var floors: [Int32: Instant] = [:]
    let horizon: DedupeHorizon

    init(horizon: DedupeHorizon) { self.horizon = horizon }

    /// From an assigned partition's state: its topics' event times and its evidence floor.
    func seed(partition: Int32, eventTimes: [String: Instant], floor: Instant?) {
        lock.withLock {
            for (topic, time) in eventTimes {
                let tp = TopicPartition(topic: topic, partition: partition)
                latest[tp] = max(latest[tp] ?? time, time)
            }
            floors[partition] = floor
        }
    }

    /// A view for one decoded batch: whether to keep a payload, raised as events go by.
    struct View {
        fileprivate(set) var latest: [TopicPartition: Instant]
        fileprivate let floors: [Int32: Instant]
        fileprivate let horizon: DedupeHorizon

        /// Notes `ts` in `tp`; true when the event may be rejected as too old.
        mutating func mayReject(_ ts: Instant, in tp: TopicPartition) -> Bool {
            let watermark = latest[tp]
            if watermark == nil || ts > watermark! { latest[tp] = ts }
            return !horizon.admits(ts, at: watermark, floor: floors[tp.partition])
        }
    }

    func view() -> View { lock.withLock { View(latest: latest, floors: floors, horizon: horizon) } }

    /// Takes back what a batch's view saw.
    func raise(from view: View) {
        lock.withLock { latest.merge(view.latest) { max($0, $1) } }
    }
}
