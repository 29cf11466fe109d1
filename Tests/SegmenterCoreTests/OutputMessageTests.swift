import Foundation
import Testing
@testable import SegmenterCore

/// Each output topic's schema, from its one file (SPEC §5, §6): what the KPI leader writes and a
/// new leader reads back, and what an alert change says.
@Suite struct OutputMessageTests {
    let key = KPIKey(segment: "spenders", kpi: "revenue")
    let noon = Instant(seconds: 1_796_558_400)

    @Test func aKPIChainLinksOnlyWhenTheValueMoves() throws {
        #expect(KPIDelta.next(after: (12.5, 4), key: key, value: 12.5, members: 3, asOf: noon, cause: .event) == nil)
        let first = try #require(KPIDelta.next(after: nil, key: key, value: 7, members: 2, asOf: noon, cause: .time))
        #expect(first.seq == 1 && first.previous == nil && first.delta == nil)
        let next = try #require(KPIDelta.next(after: (12.5, 4), key: key, value: 10.25, members: 3, asOf: noon, cause: .reconciliation))
        #expect(next.seq == 5 && next.previous == 12.5 && next.delta == -2.25)
        // A segment that empties has no average: null, still a link of the chain.
        #expect(KPIDelta.next(after: (10.25, 5), key: key, value: nil, members: 0, asOf: noon, cause: .event)?.seq == 6)
    }

    @Test func aDeltaReadsBackAsItsChainPosition() throws {
        let delta = try #require(KPIDelta.next(after: (1.1, 9), key: key, value: 3.3, members: 4, asOf: noon, cause: .event))
        let json = try #require(try JSONParser.parse(Array(delta.json.utf8)))
        #expect(json["segment"] == .string("spenders") && json["kpi"] == .string("revenue") && json["cause"] == .string("event"))
        #expect(json["as_of"] == .string(noon.description) && json["members"] == .number("4"))
        let position = try #require(KPIDelta.chainPosition(of: Array(delta.json.utf8)))
        #expect(position.key == key && position.seq == 10 && position.current == 3.3)
        #expect(KPIDelta.chainPosition(of: Array(#"{"user_id":"u1","segment":"s"}"#.utf8)) == nil)
    }

    @Test func anAlertMessageCarriesItsRoundedLevelsAndDrillDown() throws {
        let drop = AlertDefinition(name: "minutes", segment: "all", kpi: "avg_minutes", condition: .drop(percent: 30))
        let message = AlertMessage(drop, state: .firing, value: 6.5, baseline: 10.000_000_4, members: 120, asOf: noon,
                                   drillDown: #"[{"dimension":"country","group":"DE"}]"#)
        let json = try #require(try JSONParser.parse(Array(message.json.utf8)))
        #expect(json["state"] == .string("firing") && json["baseline"] == .number("10") && json["threshold"] == .number("7"))
        #expect(json["drill_down"] != nil && json["members"] == .number("120"))
        let resolved = AlertMessage(drop, state: .resolved, value: 9, baseline: 10, members: 120, asOf: noon)
        #expect(try JSONParser.parse(Array(resolved.json.utf8))["drill_down"] == nil)
    }
}
