/// A pair's watermark as it moves record by record through a batch (SPEC §3), so each record
/// is judged by the time the pair had when it arrived, not by where the batch was cut: the
/// dedupe horizon, and the instant a late event takes effect, are the same in one batch of
/// everything and in batches of one.
///
/// The same reading as `PairWatermark.advance` (without the wall clock, which moves only between
/// batches), kept in flat arrays for the hot loop: a pair has two topics.
struct RunningWatermark {
    /// Per input topic: the greatest admitted event time, the next offset, where the topic ends.
    private var latest: [Instant?]
    private var next: [Int64]
    private let ends: [Int64?]
    private(set) var events: Instant?
    private(set) var clock: Instant?

    /// - Parameter ends: per input topic, the offset at which it is read to its end (nil: unknown,
    ///   so it holds the pair back).
    init(start: PairWatermark, latest: [Instant?], next: [Int64], ends: [Int64?]) {
        self.latest = latest
        self.next = next
        self.ends = ends
        events = start.events
        clock = start.clock
    }

    /// One record of topic `topic` (an index into the pair's input topics) at `offset` was read;
    /// `admitted` is its event time when it counts towards its topic's time.
    mutating func read(topic: Int, offset: Int64, admitted: Instant?) {
        if offset >= next[topic] { next[topic] = offset + 1 }
        if let admitted, latest[topic].map({ admitted > $0 }) ?? true { latest[topic] = admitted }
        var caughtUp = true
        for index in next.indices where !(ends[index].map { next[index] >= $0 } ?? false) { caughtUp = false }
        var reading: Instant?
        if caughtUp {
            reading = latest.compactMap { $0 }.max()
        } else {
            for index in next.indices where !(ends[index].map { next[index] >= $0 } ?? false) {
                guard let time = latest[index] else { return }  // a lagging topic with nothing yet: no time
                if reading == nil || time < reading! { reading = time }
            }
        }
        if let reading, events.map({ reading > $0 }) ?? true { events = reading }
        if let events, clock.map({ events > $0 }) ?? true { clock = events }
    }
}
