import Testing
@testable import SegmenterCore

/// The watermark rule (SPEC §3) as a table: what holds a pair's time back and what does not.
@Suite struct PairWatermarkTests {
    static let t = Instant(seconds: 1_795_000_000)
    static func at(_ hours: Int64) -> Instant { t.adding(seconds: hours * 3600) }

    struct Row: Sendable, CustomTestStringConvertible {
        let name: String
        let inputs: [InputProgress]
        let before: Instant?
        let expected: Instant?
        var testDescription: String { name }
    }

    @Test(arguments: [
        Row(name: "both lagging: the smaller", inputs: [.init(latestEventTime: at(5), caughtUp: false), .init(latestEventTime: at(2), caughtUp: false)],
            before: nil, expected: at(2)),
        Row(name: "a caught-up partition does not hold it back", inputs: [.init(latestEventTime: at(5), caughtUp: false), .init(latestEventTime: at(2), caughtUp: true)],
            before: nil, expected: at(5)),
        Row(name: "both caught up: the greater", inputs: [.init(latestEventTime: at(5), caughtUp: true), .init(latestEventTime: at(2), caughtUp: true)],
            before: nil, expected: at(5)),
        Row(name: "an empty partition read to its end does not hold it back", inputs: [.init(latestEventTime: at(5), caughtUp: false), .init(latestEventTime: nil, caughtUp: true)],
            before: nil, expected: at(5)),
        Row(name: "a partition that has delivered nothing yet but has a backlog holds it back",
            inputs: [.init(latestEventTime: at(5), caughtUp: true), .init(latestEventTime: nil, caughtUp: false)], before: nil, expected: nil),
        Row(name: "a late event below the watermark does not move it back", inputs: [.init(latestEventTime: at(1), caughtUp: false), .init(latestEventTime: at(9), caughtUp: false)],
            before: at(3), expected: at(3)),
        Row(name: "nothing read at all", inputs: [.init(latestEventTime: nil, caughtUp: true), .init(latestEventTime: nil, caughtUp: true)], before: nil, expected: nil),
    ])
    func theRule(_ row: Row) {
        var watermark = PairWatermark(events: row.before)
        watermark.advance(row.inputs)
        #expect(watermark.events == row.expected && watermark.clock == row.expected)
    }

    @Test func theHybridClockMovesOnlyAPairReadToItsEnd() {
        let wall = Self.at(100)
        var caughtUp = PairWatermark()
        caughtUp.advance([.init(latestEventTime: Self.at(5), caughtUp: true), .init(latestEventTime: Self.at(2), caughtUp: true)], wallClock: wall)
        #expect(caughtUp.clock == wall && caughtUp.events == Self.at(5))  // the horizon still measures event time
        var backlog = PairWatermark()
        backlog.advance([.init(latestEventTime: Self.at(5), caughtUp: false), .init(latestEventTime: Self.at(2), caughtUp: true)], wallClock: wall)
        #expect(backlog.clock == Self.at(5))
        var empty = PairWatermark()
        empty.advance([.init(latestEventTime: nil, caughtUp: true), .init(latestEventTime: nil, caughtUp: true)], wallClock: wall)
        #expect(empty.clock == nil)  // no users yet: nothing to move
        // and a backlog arriving later never moves the clock back
        caughtUp.advance([.init(latestEventTime: Self.at(50), caughtUp: false), .init(latestEventTime: Self.at(2), caughtUp: true)], wallClock: wall)
        #expect(caughtUp.clock == wall && caughtUp.events == Self.at(50))
    }

    @Test func theGroupRunsOnItsSlowestPair() {
        let ahead = PairWatermark(events: Self.at(9), caughtUp: true)
        let behind = PairWatermark(events: Self.at(2), caughtUp: false)
        let emptyAndDone = PairWatermark(caughtUp: true)
        let notStarted = PairWatermark(caughtUp: false)
        #expect(PairWatermark.group([ahead, behind, emptyAndDone]) == Self.at(2))
        #expect(PairWatermark.group([ahead, notStarted]) == nil)
        let view = GroupPartials.Watermark(owned: [0: ahead, 3: behind, 4: emptyAndDone])
        #expect(view.time == Self.at(2) && view.heldBackBy == 3)
    }
}
