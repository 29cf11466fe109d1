import Foundation
import Testing
import SegmenterCore
import SegmenterService

/// Segments end to end, as separate processes with a SIGKILL mid-stream: the folded
/// `segment-membership` and `segment-kpi-deltas` topics (read with kcat) equal a recomputation
/// from the input, `seq` chains are unbroken and `previous` equals the prior `current`.
///
/// The recomputation folds the produced messages with SegmenterCore's pure decoder and feature
/// maths (tested on their own in SegmenterCoreTests); what is under test here is everything
/// between: Kafka, the outbox, timers, the clock, partials across partitions, restarts.
@Suite(.serialized) struct SegmentOutputsTests {
    static func segmentsYAML(lateCohort: String) -> String {
        """
        segments:
          - name: recent_spenders
            rule: spend(3d) > 100
          - name: inactive_new_users
            rule: hours_since_signup >= 24 and activities_since_signup = 0
          - name: late_cohort
            rule: signup_date >= date('\(lateCohort)')
          - name: multi_account
            rule: accounts >= 2
        kpis:
          - name: spend_3d
            sum: spend(3d)
          - name: minutes
            avg: active_minutes(7d)
          - name: zero_share
            share: activities_since_signup = 0
        kpi_emit_interval: 200ms
        """
    }

    @Test func foldedOutputsEqualARecomputationAfterASigkill() throws {
        try foldedOutputsEqualARecomputation(stoppingWith: SIGKILL)
    }

    /// A graceful stop mid-stream drains the outbox: no output is lost and none is sent twice.
    @Test func aGracefulStopMidStreamLosesAndRepeatsNoOutput() throws {
        try foldedOutputsEqualARecomputation(stoppingWith: SIGTERM, expectNoRepeats: true)
    }

    func foldedOutputsEqualARecomputation(stoppingWith signal: Int32, expectNoRepeats: Bool = false) throws {
        let harness = try Harness()
        let startDay = DayNumber(Int64(Date().timeIntervalSince1970) / 86_400) - 15
        let incident = DayCalendar.isoDate(startDay + 7)
        let produced = try harness.generate(["--users", "300", "--events", "30000", "--days", "10",
                                             "--start", DayCalendar.isoDate(startDay), "--incident-after", incident,
                                             "--invalid-rate", "0.01", "--duplicate-rate", "0.02", "--seed", "11"])
        let yaml = Self.segmentsYAML(lateCohort: incident)
        let config = try harness.writeConfig(batch: 300, extra: yaml)
        // A last event four days after the stream, once everything else is consumed: the clock
        // jumps, and members of spend(3d) > 100 who have no event of their own since must exit by time.
        let lastTs = Instant(seconds: Int64(startDay + 10) * 86_400)
        let tick = #"{"event_id":"tick","user_id":"clock-tick","type":"session","ts":"\#(lastTs.adding(seconds: 4 * 86_400))"}"#
        try harness.runKilledMidStream(config: config, total: produced.total, signal: signal) {
            try harness.produce(topic: "activity", key: "clock-tick", payload: tick)
            return 1
        }

        // Recompute from the input: every valid message once, evaluated at the final event clock.
        let catalog = try SegmenterConfig.parse(yaml: yaml, source: "test", environment: [:]).catalog
        let decoder = EventDecoder(currency: "USD", fxRates: ["EUR": ExchangeRate("1.08")!])
        var profiles: [String: UserProfile] = [:]
        var days: [String: [DayNumber: DayAggregate]] = [:]
        var now = Instant(nanoseconds: 0)
        let input = produced.lines.filter { $0.valid && !$0.duplicate } + [ProducedLog.Line(topic: "activity", valid: true, duplicate: false, payload: tick)]
        for line in input {
            let event = try decoder.decode(Array(line.payload.utf8), from: line.topic == "billing" ? .billing : .activity,
                                           wallClock: Instant(seconds: Int64(Date().timeIntervalSince1970))).get()
            now = max(now, event.ts)
            if let change = profiles[event.userID, default: UserProfile()].apply(event, calendar: .utc) {
                days[event.userID, default: [:]][change.day, default: DayAggregate()] += change.delta
            }
        }
        var expectedMembers: Set<String> = []
        var partials = KPIPartials()
        for (user, profile) in profiles {
            let evaluation = catalog.evaluate(profile: profile, days: days[user] ?? [:], now: now, calendar: .utc)
            for segment in evaluation.segments where segment != SegmentCatalog.allSegment { expectedMembers.insert("\(user)/\(segment)") }
            for (segment, contributions) in evaluation.contributions {
                partials.replace(segment: segment, kpis: catalog.kpis(for: segment), old: nil, new: contributions)
            }
        }

        // Fold segment-membership: the last change per (user, segment) wins.
        var last: [String: String] = [:]
        var causes: [String: Int] = [:]
        let membership = try harness.readTopic("segment-membership")
        if expectNoRepeats {
            // Changes are published only when membership flips, so per (user, segment) they
            // alternate enter/exit; a re-sent row would show up as the same change twice in a row.
            var previous: [String: String] = [:]
            var repeated: [String] = []
            for message in membership {
                let key = "\(message["user_id"]!)/\(message["segment"]!)"
                let change = message["change"] as! String
                if previous[key] == change { repeated.append("\(key) \(change) at \(message["as_of"]!)") }
                previous[key] = change
            }
            #expect(repeated.isEmpty, "a graceful stop must not re-send membership changes: \(repeated.prefix(6))")
        }
        for message in membership {
            last["\(message["user_id"]!)/\(message["segment"]!)"] = message["change"] as? String
            causes["\(message["change"]!) by \(message["cause"]!)", default: 0] += 1
        }
        let folded = Set(last.filter { $0.value == "enter" }.keys)
        #expect(folded == expectedMembers, "missing \(expectedMembers.subtracting(folded).prefix(5)), extra \(folded.subtracting(expectedMembers).prefix(5))")
        #expect((causes["exit by time"] ?? 0) > 0, "days leaving spend(3d) must move users by time alone: \(causes)")

        // Fold segment-kpi-deltas: per pair, seq 1, 2, 3… with previous = the prior current.
        var chains: [String: [Int: [String: Any]]] = [:]
        for message in try harness.readTopic("segment-kpi-deltas") {
            let pair = "\(message["segment"]!)/\(message["kpi"]!)"
            let seq = (message["seq"] as! NSNumber).intValue
            if let seen = chains[pair]?[seq] {
                #expect(NSDictionary(dictionary: seen).isEqual(to: message), "\(pair) seq \(seq) re-sent with other content")
                #expect(!expectNoRepeats, "\(pair) seq \(seq) sent twice after a graceful stop")
            }
            chains[pair, default: [:]][seq] = message
        }
        func number(_ value: Any?) -> Double? { (value as? NSNumber)?.doubleValue }
        for key in catalog.kpiKeys {
            let pair = "\(key.segment)/\(key.kpi)"
            let expected = catalog.value(of: key, in: partials.values)
            guard let chain = chains[pair] else {
                #expect(expected == nil, "\(pair) never published but should be \(String(describing: expected))")
                continue
            }
            #expect(chain.keys.sorted() == Array(1...chain.count), "\(pair): seq must run 1…n without gaps: \(chain.keys.sorted())")
            for seq in 2...max(chain.count, 2) where seq <= chain.count {
                #expect(number(chain[seq]!["previous"]) == number(chain[seq - 1]!["current"]), "\(pair) seq \(seq): previous != prior current")
            }
            let final = number(chain[chain.count]!["current"])
            let matches = switch (expected, final) {
            case (nil, nil): true
            case let (e?, f?): abs(e - f) <= 2e-6 * max(1, abs(e))
            default: false
            }
            #expect(matches, "\(pair): published \(String(describing: final)), recomputed \(String(describing: expected))")
        }
    }
}
